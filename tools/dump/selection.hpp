// Which records a journal tool works on, and the walk over them in sync order.
//
// Both tools take the same filters (flightlog-dump prints the selection, flightlog-replay
// sends or copies it):
//   --priority CRITICAL,HIGH   (repeatable, any letter case)   default: every priority
//   --state queued|failed                                      default: both
//   --since T / --until T      ts >= since and ts < until (time_text.hpp for T)
//   --id <journal id>-<seq>    (repeatable) these records only
//   --limit N                  the first N selected records, in sync order
//
// The walk reads the journal in sync order (CRITICAL, HIGH, NORMAL, LOW, oldest first
// within each; then the failed set) in read transactions of at most --chunk records, so
// it never pins pages a live logger wants to reuse, and calls back between chunks, when
// no transaction is open: the place for slow work (posting a batch, writing a copy).
//
// A live logger goes on between chunks, so the walk is not one snapshot. A record it
// moves from a queue to the failed set (its upload failed) after the walk read it is
// visited once: the failed set skips seqs the walk read in a queue. A record it moves
// back (retry_failed()) after the walk passed its queue, or delivers and deletes before
// the walk reaches it, is not visited: the logger's own uploader has it in hand. For an
// exact copy of a journal, stop its logger first.
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"

namespace flightlog::tools {

// The filters as typed on the command line.
struct SelectionArgs {
  std::vector<std::string> priorities;
  std::string state;
  std::string since;
  std::string until;
  std::vector<std::string> ids;
  std::size_t limit = 0;
  std::size_t chunk = 1024;  // --chunk: records per read transaction
};

// Adds the filter options above to `app`, all in the option group "Selection", and
// --chunk.
void add_selection_options(CLI::App& app, SelectionArgs& args);

// The filters, parsed.
struct Selection {
  std::array<bool, 4> priorities{true, true, true, true};
  bool queued = true;
  bool failed = true;
  std::int64_t since_ns = std::numeric_limits<std::int64_t>::min();
  // Exclusive, so no value can stand for "no --until": a record may be stamped with the
  // largest one.
  std::optional<std::int64_t> until_ns;
  // --id: the journal id each names, and the sequence numbers (sorted, unique).
  std::vector<std::string> id_journals;
  std::vector<std::uint64_t> seqs;
  std::size_t limit = 0;     // 0: no limit
  std::size_t chunk = 1024;  // records per read transaction

  bool by_id() const { return !seqs.empty(); }
  // Whether the walk visits this set at all.
  bool walks(detail::RecordSet set) const;
  // Whether a record that decoded passes the priority and time filters.
  bool matches(const detail::DecodedRecord& rec) const;
};

// Records a walk of `sel` will read (for a progress display): the entries of the sets
// it walks, or the number of ids asked for.
std::uint64_t records_to_read(const detail::Journal& journal, const Selection& sel);

// Parses `args`. Returns an empty string, or the problem (naming the option).
std::string parse_selection(const SelectionArgs& args, Selection& out);

// Checks that every --id names the journal `journal_id`. Returns an empty string or the
// problem.
std::string check_ids(const Selection& sel, std::string_view journal_id);

// detail::RecordState of a record set.
inline detail::RecordState state_of(detail::RecordSet set) {
  return set == detail::RecordSet::Failed ? detail::RecordState::Failed
                                          : detail::RecordState::Queued;
}

struct Visited {
  detail::RecordSet set;
  std::uint64_t seq;
  std::span<const std::byte> bytes;  // valid during the callback only
  const detail::DecodedRecord& rec;  // views into `bytes`
};

struct WalkOptions {
  // Only keys in [from_seq, below_seq) (--follow reads what is new since the last poll).
  std::uint64_t from_seq = 0;
  std::uint64_t below_seq = std::numeric_limits<std::uint64_t>::max();
  std::size_t limit = 0;  // stop after this many selected records; 0: no limit
  // Every record read, selected or not, damaged or not (a progress display).
  std::function<void()> on_read;
  // Between read transactions; false stops the walk.
  std::function<bool()> between_chunks;
};

struct WalkResult {
  std::size_t selected = 0;
  std::size_t damaged = 0;
  bool stopped = false;  // between_chunks said stop
  // Sets the journal could not be read on (a damaged page): Journal::scan's reason for
  // each. The walk visits what it read before, then goes on with the next set.
  std::vector<std::string> read_errors;
};

// Prints each of `w.read_errors` as "<tool>: <reason>" on stderr; returns how many.
std::size_t report_read_errors(std::string_view tool, const WalkResult& w);

using OnRecord = std::function<void(const Visited&)>;
// A record that does not decode (checksum, format): its set, key and what is wrong. It
// is reported whenever its set is walked (and, with --id, its key is asked for): its
// priority and time cannot be trusted for filtering.
using OnDamaged =
    std::function<void(detail::RecordSet set, std::uint64_t seq, const std::string& error)>;

WalkResult walk(const detail::Journal& journal, const Selection& sel, const WalkOptions& opts,
                const OnRecord& on_record, const OnDamaged& on_damaged);

}  // namespace flightlog::tools
