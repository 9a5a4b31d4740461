#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

namespace flightlog::demo {

namespace {

// Records one run may log: the demo keeps every call's latency (4 bytes), so this is at
// most 1 GB of them. The command line allows rates and durations whose product is more.
constexpr double kMaxCalls = 250e6;

constexpr const char* kDescription =
    "flightlog-demo: an inference service that logs its predictions with flightlog.\n"
    "\n"
    "Several threads log W2 predictions (4 double features, 1 double prediction;\n"
    "5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW) at --rate records/s for --duration\n"
    "seconds, timing every call. The upload endpoint is a loopback HTTPS receiver that is\n"
    "down for the first --offline-seconds: records pile up in the journal while the\n"
    "uploader backs off. Then the receiver comes up and the backlog drains, CRITICAL\n"
    "first. A status line shows the pipeline while it runs; at the end the demo prints\n"
    "the hot-path latency percentiles and the totals, checks that every accepted record\n"
    "arrived (and the backlog in priority order), and writes data files and plots.";

constexpr const char* kFooter =
    "Examples:\n"
    "  flightlog-demo                                 the default run (about 21 s)\n"
    "  flightlog-demo --duration 5 --rate 5000        a short, light run\n"
    "  flightlog-demo --threads 2 --offline-seconds 10 --duration 15\n"
    "  flightlog-demo --dir /tmp/j --out /tmp/demo    keep the journal, plots in /tmp/demo\n"
    "  FLIGHTLOG_CLICKHOUSE_PASSWORD=secret flightlog-demo \\\n"
    "      --clickhouse https://127.0.0.1:8443/ --user flightlog --ca-file server.crt\n"
    "\n"
    "Output: a status line (redrawn in place every 0.5 s on a terminal; otherwise a plain\n"
    "line every 2 s and whenever the uploader's state changes); then the latency table,\n"
    "the totals and the checks. In --out: latency.dat (the latency distribution),\n"
    "queue.dat (the status samples), plot.gp and, where gnuplot is installed,\n"
    "latency.svg and queue.svg.\n"
    "\n"
    "Exit codes:\n"
    "  0  every accepted record arrived (on loopback: the backlog in priority order)\n"
    "  1  bad command line\n"
    "  2  could not start (bad option, journal directory, receiver, ClickHouse)\n"
    "  3  an accepted record did not arrive (lost, failed, or not drained in time)\n"
    "  4  the offline backlog did not arrive in priority order\n";

}  // namespace

std::optional<DemoConfig> parse_command_line(int argc, char** argv, int& exit_code) {
  DemoConfig c;
  CLI::App app{kDescription, "flightlog-demo"};
  app.footer(kFooter);
  app.get_formatter()->column_width(32);

  app.add_option("--threads", c.threads, "Logging threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--rate", c.rate, "Records per second, all threads together")
      ->check(CLI::Range(1.0, 10e6))
      ->capture_default_str();
  app.add_option("--duration", c.duration_s, "Seconds of logging")
      ->check(CLI::Range(0.5, 3600.0))
      ->capture_default_str();
  app.add_option("--offline-seconds", c.offline_s,
                 "Seconds the receiver stays down at the start (default: a third of "
                 "--duration; loopback only)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--drain-timeout", c.drain_timeout_s,
                 "Seconds to wait after logging for the journal to drain")
      ->check(CLI::Range(1.0, 3600.0))
      ->capture_default_str();
  app.add_option("--dir", c.dir,
                 "Journal directory, kept (default: a temporary one, removed at the end)");
  app.add_option("--out", c.out, "Directory for the data files and plots")->capture_default_str();
  app.add_flag("--gzip", c.gzip, "gzip upload bodies (Options::upload_gzip)");
  app.add_option("--batch-records", c.batch_records,
                 "Most records per upload request (Options::upload_batch_max_records)")
      ->check(CLI::Range(std::size_t{1}, Options::kMaxUploadBatchRecords))
      ->capture_default_str();

  auto* ch = app.add_option("--clickhouse", c.clickhouse_url,
                            "Ship to this ClickHouse HTTPS interface instead "
                            "(e.g. https://127.0.0.1:8443/); no offline phase");
  app.add_option("--user", c.clickhouse_user, "ClickHouse user")->needs(ch)->capture_default_str();
  app.add_option("--password", c.clickhouse_password,
                 "ClickHouse password (prefer the environment variable: a command line "
                 "is visible to other users)")
      ->envname("FLIGHTLOG_CLICKHOUSE_PASSWORD");
  app.add_option("--table", c.clickhouse_table,
                 "ClickHouse table; created (ReplacingMergeTree by id) if missing")
      ->needs(ch)
      ->capture_default_str();
  app.add_option("--ca-file", c.ca_file, "PEM file of CAs to trust for ClickHouse")
      ->needs(ch)
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e) == 0 ? kExitOk : kExitUsage;
    return std::nullopt;
  }
  if (c.rate * c.duration_s > kMaxCalls) {
    std::cerr << "flightlog-demo: --rate x --duration is "
              << static_cast<long long>(c.rate * c.duration_s) << " records, more than the demo's "
              << static_cast<long long>(kMaxCalls)
              << " (it keeps every call's latency, 4 bytes a call)\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  if (!c.clickhouse() && c.offline_s >= c.duration_s) {
    std::cerr << "flightlog-demo: --offline-seconds (" << c.offline_s
              << ") must be shorter than --duration (" << c.duration_s << ")\n";
    exit_code = kExitUsage;
    return std::nullopt;
  }
  return c;
}

}  // namespace flightlog::demo
