// flightlog-dump's standard output, checked: a dump that could not be written (a full
// disk, a file system error) must not end with exit status 0 as if it were complete.
#pragma once

#include <string>

namespace flightlog::tools {

// Writes `text` to stdout and clears it. Returns false once stdout has failed; the
// caller stops walking the journal (nothing more could be written).
bool write_stdout(std::string& text);

// Flushes stdout (progress on a terminal, --follow). Returns false once stdout has
// failed. Every flush goes through here or output_failed(): a failure's errno is read
// at once, before a later call can clear or replace it.
bool flush_stdout();

// Call after the last write. Flushes stdout; if that or any write failed, prints
// "<tool>: cannot write the output: <reason>" on stderr and returns true.
bool output_failed(const char* tool);

}  // namespace flightlog::tools
