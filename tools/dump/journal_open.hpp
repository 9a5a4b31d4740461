// What the journal tools share about opening a journal and ending: the exit codes of
// flightlog-dump and flightlog-replay, and a read-only open that names the problem.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string_view>

#include "journal/journal.hpp"

namespace flightlog::tools {

// Exit codes, documented in each tool's --help. When several apply, a tool returns the
// highest (except 0).
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,          // bad command line, bad option value, refused endpoint
  kExitCannotOpen = 2,     // no journal there, not a flightlog journal, unreadable, locked
  kExitDamaged = 3,        // damaged records found (each reported; the others processed)
  kExitNewerFormat = 4,    // the journal was written by a newer flightlog
  kExitNotDelivered = 5,   // replay: records rejected or given up after max attempts
  kExitMisconfigured = 6,  // replay: TLS verification, 401/403/404..., redirect: nothing more sent
  kExitCannotWrite = 7,    // dump: its output could not be written (full disk, I/O error)
  kExitInterrupted = 130,  // replay: SIGINT or SIGTERM before the end
};

// Parses the command line. Returns -1 to go on, or the code to exit with at once
// (kExitOk after --help, kExitUsage after a message about a bad command line).
int parse_command_line(CLI::App& app, int argc, char** argv);

// Opens `dir` read-only, without the directory lock (Journal::open_read_only). On
// failure prints "<tool>: <reason>" on stderr and returns kExitCannotOpen or
// kExitNewerFormat; on success sets `out` and returns kExitOk.
int open_journal_read_only(std::string_view tool, const std::filesystem::path& dir,
                           std::unique_ptr<detail::Journal>& out);

// The exit code for an error of Journal::open_*: kExitNewerFormat when the journal's
// format version is newer than this flightlog reads, else kExitCannotOpen.
int open_error_exit_code(const Error& e) noexcept;

}  // namespace flightlog::tools
