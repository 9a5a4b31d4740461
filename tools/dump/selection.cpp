#include "selection.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <iostream>

#include "flightlog/error.hpp"
#include "time_text.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

void add_selection_options(CLI::App& app, SelectionArgs& args) {
  const std::string group = "Selection (filters combine: a record must pass all)";
  app.add_option("--priority", args.priorities,
                 "Only these priorities: CRITICAL, HIGH, NORMAL, LOW (any case); repeat the "
                 "option or give a comma list")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->group(group);
  app.add_option("--state", args.state, "queued or failed: only records of that state")
      ->group(group);
  app.add_option("--since", args.since,
                 "Only records stamped at or after this time: RFC 3339 "
                 "(2026-11-27T23:28:25Z, 2026-11-27) or Unix nanoseconds")
      ->group(group);
  app.add_option("--until", args.until, "Only records stamped before this time (same forms)")
      ->group(group);
  app.add_option("--id", args.ids,
                 "Only this record, by its id <journal id>-<seq> as printed; repeatable")
      ->allow_extra_args(false)
      ->group(group);
  app.add_option("--limit", args.limit, "At most this many records (the first in sync order)")
      ->check(CLI::PositiveNumber)
      ->group(group);
  app.add_option("--chunk", args.chunk, "Records read per read transaction of the journal")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
}

bool Selection::walks(fd::RecordSet set) const {
  if (set == fd::RecordSet::Failed) return failed;
  return queued && priorities[static_cast<std::size_t>(set)];
}

bool Selection::matches(const fd::DecodedRecord& rec) const {
  return priorities[static_cast<std::size_t>(rec.priority)] && rec.ts_ns >= since_ns &&
         (!until_ns || rec.ts_ns < *until_ns);
}

std::uint64_t records_to_read(const fd::Journal& journal, const Selection& sel) {
  if (sel.by_id()) return sel.seqs.size();
  const auto counts = journal.counts();
  std::uint64_t n = 0;
  for (std::size_t s = 0; s < fd::kRecordSets; ++s) {
    if (sel.walks(static_cast<fd::RecordSet>(s))) n += counts.entries[s];
  }
  return n;
}

std::string parse_selection(const SelectionArgs& args, Selection& out) {
  out = Selection{};
  if (!args.priorities.empty()) {
    out.priorities = {false, false, false, false};
    for (const auto& name : args.priorities) {
      const auto p = parse_priority(name);
      if (!p) {
        return "--priority: unknown priority '" + name +
               "' (expected CRITICAL, HIGH, NORMAL or LOW)";
      }
      out.priorities[static_cast<std::size_t>(*p)] = true;
    }
  }
  if (!args.state.empty()) {
    std::string state = args.state;
    for (char& c : state) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (state != "queued" && state != "failed") {
      return "--state: '" + args.state + "' is neither queued nor failed";
    }
    const bool failed = state == "failed";
    out.failed = failed;
    out.queued = !failed;
  }
  if (!args.since.empty()) {
    const auto t = parse_time_ns(args.since);
    if (!t) return "--since: '" + args.since + "' is not an RFC 3339 time or Unix nanoseconds";
    out.since_ns = *t;
  }
  if (!args.until.empty()) {
    const auto t = parse_time_ns(args.until);
    if (!t) return "--until: '" + args.until + "' is not an RFC 3339 time or Unix nanoseconds";
    out.until_ns = *t;
  }
  for (const auto& id : args.ids) {
    const auto dash = id.rfind('-');
    std::uint64_t seq = 0;
    const char* first = id.data() + dash + 1;
    const char* last = id.data() + id.size();
    if (dash == std::string::npos || dash == 0 || first == last ||
        std::from_chars(first, last, seq).ptr != last || seq == 0) {
      return "--id: '" + id + "' is not a record id of the form <journal id>-<seq>";
    }
    out.id_journals.push_back(id.substr(0, dash));
    out.seqs.push_back(seq);
  }
  std::sort(out.seqs.begin(), out.seqs.end());
  out.seqs.erase(std::unique(out.seqs.begin(), out.seqs.end()), out.seqs.end());
  out.limit = args.limit;
  out.chunk = args.chunk;
  return {};
}

std::string check_ids(const Selection& sel, std::string_view journal_id) {
  for (const auto& j : sel.id_journals) {
    if (j != journal_id) {
      return "--id: '" + j + "-...' names journal " + j + ", but this journal's id is " +
             std::string(journal_id);
    }
  }
  return {};
}

WalkResult walk(const fd::Journal& journal, const Selection& sel, const WalkOptions& opts,
                const OnRecord& on_record, const OnDamaged& on_damaged) {
  WalkResult result;
  fd::DecodedRecord rec;
  bool done = false;  // the limit is reached
  // The seqs read in each queued set, ascending (a set is read in key order), kept only
  // when the failed set is walked too. A record keeps its seq when it moves, and a live
  // logger may move one from its queue to the failed set between two chunks: it is then
  // skipped there, not visited twice (see selection.hpp).
  const bool walks_failed = sel.walks(fd::RecordSet::Failed);
  std::array<std::vector<std::uint64_t>, 4> read_in_queue;
  auto read_before = [&](std::uint64_t seq) {
    return std::any_of(read_in_queue.begin(), read_in_queue.end(), [&](const auto& seqs) {
      return std::binary_search(seqs.begin(), seqs.end(), seq);
    });
  };
  // Visits one record of `set`; returns false once keys reach below_seq.
  auto visit = [&](fd::RecordSet set, std::uint64_t seq, std::span<const std::byte> bytes) {
    if (done || seq >= opts.below_seq) {
      done = done || seq >= opts.below_seq;
      return;
    }
    if (set == fd::RecordSet::Failed) {
      if (read_before(seq)) return;
    } else if (walks_failed) {
      read_in_queue[static_cast<std::size_t>(set)].push_back(seq);
    }
    if (opts.on_read) opts.on_read();
    const std::string err = fd::decode_record(bytes, rec);
    if (!err.empty()) {
      ++result.damaged;
      on_damaged(set, seq, err);
      return;
    }
    if (!sel.matches(rec)) return;
    on_record(Visited{set, seq, bytes, rec});
    ++result.selected;
    if (opts.limit != 0 && result.selected >= opts.limit) done = true;
  };
  // Walks one set. Journal::scan throws when the set cannot be read on (a damaged page).
  auto walk_set = [&](fd::RecordSet set) {
    if (sel.by_id()) {
      for (std::size_t i = 0; i < sel.seqs.size() && !done; ++i) {
        const std::uint64_t want = sel.seqs[i];
        if (want < opts.from_seq) continue;
        journal.scan(set, want, 1, [&](std::uint64_t seq, std::span<const std::byte> bytes) {
          if (seq == want) visit(set, seq, bytes);
        });
        if (opts.between_chunks && !opts.between_chunks()) {
          result.stopped = true;
          return;
        }
      }
      return;
    }
    std::uint64_t from = opts.from_seq;
    do {
      from = journal.scan(
          set, from, sel.chunk,
          [&](std::uint64_t seq, std::span<const std::byte> bytes) { visit(set, seq, bytes); });
      if (opts.between_chunks && !opts.between_chunks()) {
        result.stopped = true;
        return;
      }
    } while (from != 0 && !done);
  };
  bool limit_reached = false;
  for (std::size_t s = 0; s < fd::kRecordSets && !limit_reached && !result.stopped; ++s) {
    const auto set = static_cast<fd::RecordSet>(s);
    if (!sel.walks(set)) continue;
    done = false;
    try {
      walk_set(set);
    } catch (const Error& e) {
      // What was read before the failure is visited; the other sets are still walked.
      result.read_errors.emplace_back(e.what());
    }
    limit_reached = opts.limit != 0 && result.selected >= opts.limit;
  }
  return result;
}

std::size_t report_read_errors(std::string_view tool, const WalkResult& w) {
  for (const auto& e : w.read_errors) std::cerr << tool << ": " << e << "\n";
  return w.read_errors.size();
}

}  // namespace flightlog::tools
