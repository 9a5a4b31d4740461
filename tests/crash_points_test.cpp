// SIGKILL at each named crash point (core/crash_point.hpp), at random hit counts.
//
// The parent re-runs this test binary as a child (a clean exec, so FLIGHTLOG_CRASH_AT is
// read at the child's start) with the child role below selected by environment. The
// child logs numbered records, flushes every chunk and prints "ACK <begin> <end>" for
// each chunk flush() acknowledged, until the armed point kills it. After each kill the
// parent reads the journal back: it opens, every record decodes, no n is there twice,
// and every acknowledged n is there, or was delivered, or was removed on purpose
// (eviction, cleanup: at most as many as the journal's persistent counters say). For
// the upload points a last clean child drains the journal into the receiver, and every
// acknowledged n must have been delivered at least once.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "flightlog/flightlog.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kRoleVar = "FLIGHTLOG_CRASH_TEST_ROLE";  // "log" or "drain"
constexpr const char* kPointVar = "FLIGHTLOG_CRASH_AT";

std::string env_or(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

// The options every child of one point uses, rebuilt from the environment.
fl::Options child_options() {
  fl::Options o = ft::blocking_options(env_or("FLIGHTLOG_CRASH_TEST_DIR"));
  const std::string point = env_or("FLIGHTLOG_CRASH_TEST_SETUP");
  const std::string port = env_or("FLIGHTLOG_CRASH_TEST_PORT");
  if (!port.empty()) {
    o.endpoint = "https://127.0.0.1:" + port + "/ingest";
    o.api_key = "crash-points-key";
    o.ca_file = env_or("FLIGHTLOG_CRASH_TEST_CA");
    o.offline_sync_interval = 1s;
    o.upload_batch_max_records = 100;
    o.backoff_base = 10ms;
    o.backoff_cap = 100ms;
  }
  if (point == "map_growth") {
    o.journal_initial_bytes = std::size_t{1} << 20;
    o.journal_max_bytes = std::size_t{256} << 20;
  }
  if (point == "eviction") o.offline_max_queue_size = 300;
  return o;
}

void print_line(const std::string& s) {
  const std::string line = s + "\n";
  if (::write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    _exit(3);
}

// Logs chunks of numbered records until killed (or for a few seconds, if the armed
// point is never reached that often).
[[noreturn]] void run_logger() {
  const fl::Options o = child_options();
  const bool big = env_or("FLIGHTLOG_CRASH_TEST_SETUP") == "map_growth";
  const bool cleanup = env_or("FLIGHTLOG_CRASH_TEST_SETUP") == "cleanup";
  const std::string pad(big ? 600 : 8, 'p');
  std::int64_t n = std::strtoll(env_or("FLIGHTLOG_CRASH_TEST_FIRST", "0").c_str(), nullptr, 10);
  fl::Client c(o);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::int64_t begin = n;
    for (int i = 0; i < 200; ++i, ++n) {
      const auto p = static_cast<fl::Priority>(n % 4);
      if (c.log_prediction({{"n", n}, {"pad", std::string_view(pad)}}, {{"p", 1.0}}, p) !=
          fl::LogResult::Ok) {
        _exit(4);
      }
    }
    c.flush();
    print_line("ACK " + std::to_string(begin) + " " + std::to_string(n));
    if (cleanup) c.cleanup_offline_queue(0s);
    std::this_thread::sleep_for(1ms);
  }
  _exit(0);
}

// Syncs until the journal's queues are empty.
[[noreturn]] void run_drainer() {
  fl::Client c(child_options());
  for (int i = 0; i < 300 && c.get_offline_status().queue_size > 0; ++i) {
    c.sync_offline_queue();
    std::this_thread::sleep_for(20ms);
  }
  _exit(c.get_offline_status().queue_size == 0 ? 0 : 5);
}

struct ScopedEnv {
  std::vector<std::string> names;
  void set(const char* name, const std::string& value) {
    setenv(name, value.c_str(), 1);
    names.emplace_back(name);
  }
  ~ScopedEnv() {
    for (const auto& n : names) unsetenv(n.c_str());
  }
};

ft::ProcessResult run_child(const std::map<std::string, std::string>& vars) {
  ScopedEnv env;
  for (const auto& [k, v] : vars) env.set(k.c_str(), v);
  return ft::run_process({"/proc/self/exe", "--gtest_filter=CrashPointsChild.Run"});
}

void collect_acks(const std::string& out, std::set<std::int64_t>& acked, std::int64_t& next_n) {
  std::istringstream in(out);
  std::string word;
  std::int64_t b = 0, e = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ACK ", 0) != 0) continue;
    std::istringstream l(line);
    l >> word >> b >> e;
    for (std::int64_t n = b; n < e; ++n) acked.insert(n);
    next_n = std::max(next_n, e);
  }
}

std::int64_t n_of(const ft::OwnedRecord& r) {
  for (const auto& f : r.inputs)
    if (f.name == "n") return f.i;
  return -1;
}

// Every n the receiver was sent (each request body is NDJSON records).
std::set<std::int64_t> delivered_ns(const ft::TlsReceiver& rx) {
  std::set<std::int64_t> out;
  simdjson::dom::parser parser;
  for (const auto& q : rx.requests()) {
    for (const auto& line : ft::split_lines(q.body)) {
      if (line.empty()) continue;
      simdjson::dom::element doc;
      if (parser.parse(line).get(doc) != simdjson::SUCCESS) continue;
      std::int64_t n = -1;
      if (doc["inputs"]["n"].get(n) == simdjson::SUCCESS) out.insert(n);
    }
  }
  return out;
}

void run_point(const std::string& point, bool upload, std::uint64_t max_nth) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  const auto ca = tmp / "ca.pem";
  std::ofstream(ca) << ft::test_certs().ca_pem;
  std::unique_ptr<ft::TlsReceiver> rx;
  std::map<std::string, std::string> vars{{kRoleVar, "log"},
                                          {"FLIGHTLOG_CRASH_TEST_DIR", dir.string()},
                                          {"FLIGHTLOG_CRASH_TEST_SETUP", point},
                                          {"FLIGHTLOG_CRASH_TEST_CA", ca.string()}};
  if (upload) {
    rx = std::make_unique<ft::TlsReceiver>();
    vars["FLIGHTLOG_CRASH_TEST_PORT"] = std::to_string(rx->port());
  }
  std::mt19937_64 rng(std::random_device{}());
  std::set<std::int64_t> acked;
  std::int64_t next_n = 0;
  int kills = 0;
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    const std::uint64_t nth = 1 + rng() % max_nth;
    vars[kPointVar] = point + ":" + std::to_string(nth);
    vars["FLIGHTLOG_CRASH_TEST_FIRST"] = std::to_string(next_n);
    const ft::ProcessResult r = run_child(vars);
    ASSERT_TRUE(r.exit_code == 128 + SIGKILL || r.exit_code == 0)
        << point << ":" << nth << " child exit " << r.exit_code << "\n"
        << r.out << r.err;
    if (r.exit_code == 128 + SIGKILL) ++kills;
    collect_acks(r.out, acked, next_n);
    next_n += 1'000'000;  // unacknowledged records of the killed child keep their n

    // The journal opens, every record decodes, no n twice, nothing acknowledged lost.
    const auto records = ft::read_journal(dir);
    auto j = fl::detail::Journal::open_read_only(dir);
    const auto counts = j->counts();
    std::uint64_t removed_on_purpose = counts.cleaned_up;
    for (auto e : counts.evicted) removed_on_purpose += e;
    std::set<std::int64_t> present;
    for (const auto& rec : records) {
      ASSERT_TRUE(rec.error.empty()) << point << ": record " << rec.seq << ": " << rec.error;
      EXPECT_TRUE(present.insert(n_of(rec)).second)
          << point << ":" << nth << ": n=" << n_of(rec) << " is in the journal twice";
    }
    const std::set<std::int64_t> delivered = rx ? delivered_ns(*rx) : std::set<std::int64_t>{};
    std::uint64_t missing = 0;
    for (std::int64_t n : acked) {
      if (present.count(n) == 0 && delivered.count(n) == 0) ++missing;
    }
    EXPECT_LE(missing, removed_on_purpose)
        << point << ":" << nth << ": " << missing << " acknowledged records are gone";
  }
  EXPECT_GT(kills, 0) << point << " was never reached";
  EXPECT_FALSE(acked.empty());
  if (!upload) return;

  vars.erase(kPointVar);
  vars[kRoleVar] = "drain";
  const ft::ProcessResult d = run_child(vars);
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  const auto delivered = delivered_ns(*rx);
  std::size_t missing = 0;
  for (std::int64_t n : acked) {
    if (delivered.count(n) == 0 && ++missing <= 5)
      ADD_FAILURE() << point << ": acknowledged n=" << n << " never delivered";
  }
  EXPECT_EQ(missing, 0u);
  std::printf("[ crash points ] %s: %d kills, %zu acknowledged, %zu delivered\n", point.c_str(),
              kills, acked.size(), delivered.size());
}

}  // namespace

// The child side; skipped when the test binary runs normally.
TEST(CrashPointsChild, Run) {
  const std::string role = env_or(kRoleVar);
  if (role == "log") run_logger();
  if (role == "drain") run_drainer();
  GTEST_SKIP() << "runs only as a child of the CrashPoints tests";
}

TEST(CrashPoints, DuringBatchCommit) {
  run_point("commit", false, 40);
}
TEST(CrashPoints, DuringMapGrowth) {
  run_point("map_growth", false, 3);
}
TEST(CrashPoints, DuringEviction) {
  run_point("eviction", false, 20);
}
TEST(CrashPoints, DuringCleanup) {
  run_point("cleanup", false, 20);
}
TEST(CrashPoints, BetweenAcceptedUploadAndDelete) {
  run_point("before_delete", true, 15);
}
TEST(CrashPoints, DuringDelete) {
  run_point("delete", true, 15);
}
