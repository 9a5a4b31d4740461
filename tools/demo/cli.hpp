// flightlog-demo's command line: what a run does, with its defaults, and the exit codes.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "flightlog/options.hpp"

namespace flightlog::demo {

// Exit codes (also listed by --help).
enum ExitCode : int {
  kExitOk = 0,          // every accepted record was delivered (and, on loopback, the
                        // offline backlog drained in priority order)
  kExitUsage = 1,       // bad command line
  kExitSetup = 2,       // could not start: a bad option, an unusable journal directory,
                        // the receiver, or ClickHouse unreachable or refusing the table
  kExitLost = 3,        // an accepted record did not arrive: lost, moved to the failed
                        // set, or still queued when --drain-timeout ran out
  kExitOutOfOrder = 4,  // the backlog did not arrive in priority order
};

struct DemoConfig {
  int threads = 4;
  double rate = 20000;     // records per second, all threads together
  double duration_s = 20;  // of logging
  double offline_s = -1;   // < 0: a third of duration_s
  double drain_timeout_s = 30;
  std::filesystem::path dir;  // journal; empty = a temporary one, removed at the end
  std::filesystem::path out = "flightlog-demo-out";  // data files and plots
  bool gzip = false;
  std::size_t batch_records = Options{}.upload_batch_max_records;  // the library's default

  // ClickHouse instead of the loopback receiver.
  std::string clickhouse_url;  // empty = loopback
  std::string clickhouse_user = "default";
  std::string clickhouse_password;  // never printed
  std::string clickhouse_table = "flightlog_records";
  std::filesystem::path ca_file;  // empty = the system's CAs

  bool clickhouse() const { return !clickhouse_url.empty(); }
  double offline_seconds() const { return offline_s < 0 ? duration_s / 3 : offline_s; }
};

// Parses argv. Returns the configuration, or the code to exit with (0 after --help,
// kExitUsage after an error, both already reported).
std::optional<DemoConfig> parse_command_line(int argc, char** argv, int& exit_code);

}  // namespace flightlog::demo
