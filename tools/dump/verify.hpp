// flightlog-dump --verify: reads every selected record and checks it, without printing
// the records: the record format's checksum and structure (decode_record), that a queued
// record sits in the set of its own priority, and that its key is a sequence number the
// journal has handed out. Prints a summary and every damaged record's set, key and id.
#pragma once

#include <string>

#include "journal/journal.hpp"
#include "selection.hpp"

namespace flightlog::tools {

struct VerifyOutcome {
  std::uint64_t ok = 0;
  std::uint64_t damaged = 0;
};

// Appends the report to `out`: a line per damaged record, then the summary.
// `progress_tick` runs per record read.
VerifyOutcome verify_journal(detail::Journal& journal, const Selection& sel,
                             const std::function<void()>& progress_tick, std::string& out);

}  // namespace flightlog::tools
