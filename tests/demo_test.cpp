// Tests of flightlog-demo, run as a separate process: a short run goes through the
// whole offline story (receiver down, backlog, receiver up, drain) and must report that
// every acknowledged record arrived, in priority order, with its latency table and data
// files; with --clickhouse it ships to the real server of FLIGHTLOG_CLICKHOUSE_DIR (see
// clickhouse_test.cpp; skipped without it) and counts the arrivals by SQL; and its
// command line answers --help and refuses bad options with exit code 1.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace ft = flightlog::test;
using ft::contains;

namespace {

// The demo is built beside the dump tool (build/tools/demo, build/tools/dump).
std::string demo_path() {
  return (std::filesystem::path(FLIGHTLOG_DUMP_PATH).parent_path().parent_path() / "demo" /
          "flightlog-demo")
      .string();
}

ft::ProcessResult run_demo(const std::vector<std::string>& args) {
  std::vector<std::string> argv{demo_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return ft::run_process(argv);
}

TEST(Demo, ShortRunDeliversEveryRecordInPriorityOrder) {
  ASSERT_TRUE(std::filesystem::exists(demo_path())) << demo_path() << " is not built";
  ft::TempDir tmp;
  // Light enough for a sanitizer build on a loaded machine; the checks are the same. The
  // uploader first tries after a second (offline_sync_interval), so 2 s offline shows it
  // failing at least once, with a second to spare for a slow machine. Small batches make the
  // backlog many batches long, as it is in the default run, so the order shows across batches.
  const std::string rate = std::to_string(4000 / ft::kSanitizerSlowdown);
  const ft::ProcessResult r =
      run_demo({"--duration", "3", "--offline-seconds", "2", "--rate", rate, "--threads", "2",
                "--batch-records", "25", "--dir", (tmp / "journal").string(), "--out",
                (tmp / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Not a terminal: plain status lines, never a carriage return.
  EXPECT_FALSE(contains(r.out, "\r"));
  EXPECT_TRUE(contains(r.out, "| offline")) << r.out;  // the uploader found no receiver
  EXPECT_TRUE(contains(r.out, "receiver up: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "journal drained")) << r.out;
  // The latency table and the totals.
  for (const char* column : {"p50", "p90", "p99", "p99.9", "p99.99", "max"}) {
    EXPECT_TRUE(contains(r.out, column)) << column;
  }
  EXPECT_TRUE(contains(r.out, "committed (acknowledged)")) << r.out;
  EXPECT_TRUE(contains(r.out, "check: every acknowledged record arrived, once by id: yes"))
      << r.out;
  EXPECT_TRUE(contains(r.out,
                       "check: the backlog drained in priority order (CRITICAL, then HIGH, then "
                       "NORMAL, then LOW): yes"))
      << r.out;
  // Data files (and plots only where gnuplot is installed).
  for (const char* f : {"latency.dat", "queue.dat", "plot.gp"}) {
    const auto p = tmp / "out" / f;
    EXPECT_TRUE(std::filesystem::exists(p) && std::filesystem::file_size(p) > 0) << p;
  }
  // Everything was delivered: the kept journal holds no record.
  const ft::ProcessResult dump = ft::run_dump(tmp / "journal");
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_EQ(dump.out, "");
}

// A reused --dir journal brings the persistent counts of earlier runs (here 190
// evictions and 10 cleaned up); the check counts only this run's.
TEST(Demo, ReusedJournalIsCheckedForThisRunsRecordsOnly) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  {
    flightlog::Options o = ft::blocking_options(dir);
    o.offline_max_queue_size = 10;
    flightlog::Client c(o);
    for (int i = 0; i < 200; ++i) c.log_event("earlier", {{"i", i}});
    c.flush();
    ASSERT_EQ(c.cleanup_offline_queue(std::chrono::seconds{0}), 10u);
    const auto st = c.get_offline_status();
    ASSERT_EQ(st.dropped.evicted[2], 190u);
    ASSERT_EQ(st.dropped.cleaned_up, 10u);
  }
  const std::string rate = std::to_string(2000 / ft::kSanitizerSlowdown);
  const ft::ProcessResult r =
      run_demo({"--duration", "1", "--offline-seconds", "0", "--rate", rate, "--threads", "1",
                "--dir", dir.string(), "--out", (tmp / "out").string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "check: every acknowledged record arrived, once by id: yes"))
      << r.out;
}

// The value of KEY=value in the server directory's ports.env, or "".
std::string ports_env(const std::filesystem::path& dir, const std::string& key) {
  std::istringstream env(ft::read_whole_file(dir / "ports.env"));
  for (std::string line; std::getline(env, line);) {
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

TEST(Demo, ShipsToClickHouseAndCountsBySql) {
  const char* dir = std::getenv("FLIGHTLOG_CLICKHOUSE_DIR");
  if (dir == nullptr || *dir == '\0') {
    GTEST_SKIP() << "FLIGHTLOG_CLICKHOUSE_DIR is not set (see clickhouse_test.cpp)";
  }
  const std::filesystem::path server(dir);
  const std::string port = ports_env(server, "HTTPS_PORT");
  const std::string user = ports_env(server, "CLICKHOUSE_USER");
  std::string password = ft::read_whole_file(server / "password");
  while (!password.empty() && password.back() == '\n') password.pop_back();
  ASSERT_FALSE(port.empty() || user.empty() || password.empty()) << "incomplete " << dir;
  ft::TempDir tmp;
  const std::string rate = std::to_string(2000 / ft::kSanitizerSlowdown);
  // The table is shared by runs; the demo counts only its own journal's records.
  const ft::ProcessResult r =
      run_demo({"--duration", "2", "--rate", rate, "--threads", "2", "--clickhouse",
                "https://127.0.0.1:" + port + "/", "--user", user, "--password", password,
                "--ca-file", (server / "server.crt").string(), "--table", "flightlog_demo_test",
                "--out", (tmp / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "rows in flightlog_demo_test (SQL)")) << r.out;
  EXPECT_TRUE(contains(r.out, "check: every acknowledged record arrived, once by id: yes"))
      << r.out;
  EXPECT_FALSE(contains(r.out, password) || contains(r.err, password))
      << "the password was printed";
}

TEST(Demo, HelpListsExamplesAndExitCodes) {
  const ft::ProcessResult r = run_demo({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(contains(r.out, "Examples:")) << r.out;
  EXPECT_TRUE(contains(r.out, "Exit codes:")) << r.out;
  EXPECT_TRUE(contains(r.out, "--clickhouse")) << r.out;
}

TEST(Demo, BadOptionsExitWithUsageError) {
  EXPECT_EQ(run_demo({"--rate", "0"}).exit_code, 1);
  EXPECT_EQ(run_demo({"--no-such-option"}).exit_code, 1);
  EXPECT_EQ(run_demo({"--user", "someone"}).exit_code, 1);  // needs --clickhouse
  // The Client's own limit, refused as a bad command line, not by the Client.
  EXPECT_EQ(run_demo({"--batch-records", "500000"}).exit_code, 1);
  // Every call's latency is kept: a run too long for memory is refused up front.
  const ft::ProcessResult huge = run_demo({"--rate", "1e7", "--duration", "3600"});
  EXPECT_EQ(huge.exit_code, 1);
  EXPECT_TRUE(contains(huge.err, "--rate x --duration")) << huge.err;
  const ft::ProcessResult r = run_demo({"--duration", "2", "--offline-seconds", "5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "--offline-seconds")) << r.err;
}

}  // namespace
