#include "verify.hpp"

#include "format/json.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

VerifyOutcome verify_journal(fd::Journal& journal, const Selection& sel,
                             const std::function<void()>& progress_tick, std::string& out) {
  VerifyOutcome result;
  std::string problems;
  auto report = [&](fd::RecordSet set, std::uint64_t seq, std::string_view what) {
    ++result.damaged;
    problems += "damaged: set '";
    problems += fd::record_set_name(set);
    problems +=
        "' key " + std::to_string(seq) + " (id " + fd::record_id(journal.journal_id(), seq) + "): ";
    problems += what;
    problems.push_back('\n');
  };
  WalkOptions opts;
  opts.limit = sel.limit;
  opts.on_read = progress_tick;
  // A key at or past next_seq is checked again against next_seq as of the end of the
  // walk: a live logger may have committed it meanwhile.
  const std::uint64_t next_seq_at_start = journal.counts().next_seq;
  std::vector<std::pair<fd::RecordSet, std::uint64_t>> late_keys;
  const WalkResult w = walk(
      journal, sel, opts,
      [&](const Visited& v) {
        if (v.seq == 0) {
          report(v.set, v.seq, "its key is not an 8-byte sequence number");
          return;
        }
        if (v.set != fd::RecordSet::Failed &&
            static_cast<std::size_t>(v.rec.priority) != static_cast<std::size_t>(v.set)) {
          report(v.set, v.seq,
                 "it is queued in set '" + std::string(fd::record_set_name(v.set)) +
                     "' but its priority is " + std::string(to_string(v.rec.priority)));
          return;
        }
        if (v.seq >= next_seq_at_start) late_keys.emplace_back(v.set, v.seq);
        ++result.ok;
      },
      [&](fd::RecordSet set, std::uint64_t seq, const std::string& error) {
        report(set, seq, error);
      });
  for (const auto& e : w.read_errors) {
    ++result.damaged;  // an unreadable set fails the verification like a damaged record
    problems += "unreadable: " + e + "\n";
  }
  journal.refresh_counts();
  const std::uint64_t next_seq = journal.counts().next_seq;
  for (const auto& [set, seq] : late_keys) {
    if (seq >= next_seq) {
      --result.ok;
      report(set, seq, "its key is not below the journal's next_seq " + std::to_string(next_seq));
    }
  }
  out += problems;
  out += "verified " + std::to_string(result.ok + result.damaged) + " record(s) of journal " +
         journal.journal_id() + " at '" + journal.dir().string() +
         "': " + std::to_string(result.ok) + " ok, " + std::to_string(result.damaged) +
         " damaged\n";
  return result;
}

}  // namespace flightlog::tools
