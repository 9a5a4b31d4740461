// Integration with a real ClickHouse (Debian 12's clickhouse-server 18.16): a Client
// ships W2 records over HTTPS into a ReplacingMergeTree, through a server restart, and
// SQL shows that every id arrived, intact.
//
// Needs a server started by scripts/clickhouse-test-server.sh; scripts/test.sh (the
// README's test command, and so .ci/run) starts one and exports FLIGHTLOG_CLICKHOUSE_DIR
// (its directory: ports.env, server.crt, password).
// Without that variable every test here is skipped, so a plain ctest still passes:
//   scripts/clickhouse-test-server.sh start /tmp/ch
//   FLIGHTLOG_CLICKHOUSE_DIR=/tmp/ch ctest --preset release -R ClickHouse
//   scripts/clickhouse-test-server.sh stop /tmp/ch
// One test restarts the server: do not run these tests in parallel with each other.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"
#include "uploader/endpoint.hpp"
#include "uploader/https_client.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

// The server's control script, found from this file's place in the source tree.
std::filesystem::path server_script() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "scripts" /
         "clickhouse-test-server.sh";
}

std::string read_trimmed(const std::filesystem::path& p) {
  std::string s = ft::read_whole_file(p);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// What the test needs to know about the running server.
struct ServerInfo {
  std::filesystem::path dir;
  unsigned https_port = 0;
  std::string user;
  std::string password;

  std::filesystem::path ca_file() const { return dir / "server.crt"; }
  std::string endpoint() const { return "https://127.0.0.1:" + std::to_string(https_port) + "/"; }
  std::string pid() const { return read_trimmed(dir / "server.pid"); }
};

// Reads DIR/ports.env and DIR/password; an empty string on success, else what is wrong.
std::string load_server(const std::filesystem::path& dir, ServerInfo& info) {
  info.dir = dir;
  std::ifstream env(dir / "ports.env");
  if (!env) return (dir / "ports.env").string() + " is missing";
  std::string line;
  while (std::getline(env, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "HTTPS_PORT") info.https_port = static_cast<unsigned>(std::stoul(value));
    if (key == "CLICKHOUSE_USER") info.user = value;
  }
  if (info.https_port == 0 || info.user.empty()) return "ports.env has no HTTPS_PORT or user";
  info.password = read_trimmed(dir / "password");
  if (info.password.empty()) return (dir / "password").string() + " is missing or empty";
  if (!std::filesystem::exists(info.ca_file())) return info.ca_file().string() + " is missing";
  return {};
}

// SQL over the server's HTTPS interface, with the library's own HTTPS client (which
// verifies the server's certificate against server.crt, like the uploader does).
class Sql {
 public:
  explicit Sql(const ServerInfo& server) : server_(server), client_(config_for(server)) {}

  // Runs `query`; the response body, or nullopt (and a test failure) for anything but 200.
  std::optional<std::string> run(const std::string& query) {
    fd::HttpRequest req;
    req.target = "/";
    req.content_type = "text/plain; charset=utf-8";
    req.headers = {{"X-ClickHouse-User", server_.user}, {"X-ClickHouse-Key", server_.password}};
    req.body = query;
    const fd::HttpOutcome out = client_.post(std::move(req));
    if (out.result != fd::HttpResult::Response || out.status != 200) {
      ADD_FAILURE() << "ClickHouse query failed: " << query.substr(0, 200) << "\n  -> "
                    << fd::http_result_name(out.result) << " " << out.status << " " << out.error
                    << " " << out.body.substr(0, 500);
      return std::nullopt;
    }
    EXPECT_FALSE(out.body_truncated) << query;
    return out.body;
  }

  // The first line of a TabSeparated answer, split at tabs.
  std::vector<std::string> row(const std::string& query) {
    std::vector<std::string> cells;
    const auto body = run(query + " FORMAT TabSeparated");
    if (!body) return cells;
    std::istringstream in(body->substr(0, body->find('\n')));
    std::string cell;
    while (std::getline(in, cell, '\t')) cells.push_back(cell);
    return cells;
  }

 private:
  static fd::HttpClientConfig config_for(const ServerInfo& server) {
    fd::HttpClientConfig c;
    c.endpoint = fd::parse_endpoint(server.endpoint(), /*allow_plain_http=*/false);
    c.ca_file = server.ca_file().string();
    c.connect_timeout = 5000ms;
    c.handshake_timeout = 5000ms;
    c.request_timeout = 120000ms;
    c.max_response_body = std::size_t{256} << 20;  // the whole table, in one answer
    c.kept_response_body = c.max_response_body;
    return c;
  }

  const ServerInfo& server_;
  fd::HttpsClient client_;
};

// The record table of the README, as ClickHouse 18.16 accepts it.
std::string table_ddl(const std::string& table, const std::string& name_type = "String") {
  return "CREATE TABLE " + table +
         " (id String, seq UInt64, priority String, ts String, ts_ns Int64, type String, name " +
         name_type +
         ", inputs String, output String)"
         " ENGINE = ReplacingMergeTree() ORDER BY id";
}

// A table of our own per test and run: runs under several builds share one server.
std::string unique_table(const std::string& stem) {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string t = "flightlog_" + stem + "_";
  for (int i = 0; i < 12; ++i) t.push_back(kHex[rd() % 16]);
  return t;
}

class ClickHouseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("FLIGHTLOG_CLICKHOUSE_DIR");
    if (dir == nullptr || *dir == '\0') {
      GTEST_SKIP() << "FLIGHTLOG_CLICKHOUSE_DIR is not set: no ClickHouse server to test "
                      "against. Start one with `scripts/clickhouse-test-server.sh start DIR` "
                      "and set FLIGHTLOG_CLICKHOUSE_DIR=DIR (scripts/test.sh does both).";
    }
    // Set but unusable is a failure, not a skip: CI must not pass by skipping.
    const std::string why = load_server(dir, server_);
    ASSERT_TRUE(why.empty()) << "FLIGHTLOG_CLICKHOUSE_DIR=" << dir << ": " << why;
    sql_.emplace(server_);
    const auto one = sql_->run("SELECT 1");
    ASSERT_TRUE(one.has_value() && *one == "1\n")
        << "the ClickHouse server in " << dir << " does not answer SELECT 1";
  }

  fl::Options options_for(const std::string& table) {
    fl::Options o = ft::blocking_options(tmp_ / "journal");
    o.upload_format = fl::UploadFormat::ClickHouse;
    o.endpoint = server_.endpoint();
    o.ca_file = server_.ca_file();
    o.clickhouse_user = server_.user;
    o.clickhouse_table = table;
    o.api_key = server_.password;
    o.offline_auto_sync = false;
    o.backoff_base = 100ms;
    o.backoff_cap = 1000ms;
    o.connect_timeout = 2000ms;
    o.handshake_timeout = 2000ms;
    o.request_timeout = 30000ms;
    return o;
  }

  ServerInfo server_;
  std::optional<Sql> sql_;
  ft::TempDir tmp_;
};

// One W2 record: W1's four features and prediction, and a priority drawn 5% CRITICAL,
// 15% HIGH, 60% NORMAL, 20% LOW. feature1 is the record's number, so a row found in
// ClickHouse names the record it must equal.
struct W2Record {
  std::array<double, 4> features{};
  double prediction = 0;
  fl::Priority priority = fl::Priority::Normal;
};

std::vector<W2Record> make_w2(std::size_t count) {
  std::mt19937_64 rng(20261127);
  std::uniform_real_distribution<double> value(-1.0, 1.0);
  std::uniform_int_distribution<int> percent(0, 99);
  std::vector<W2Record> out(count);
  for (std::size_t n = 0; n < count; ++n) {
    W2Record& r = out[n];
    r.features = {static_cast<double>(n), value(rng), value(rng), value(rng)};
    r.prediction = value(rng) * 1e3;
    const int p = percent(rng);
    r.priority = p < 5    ? fl::Priority::Critical
                 : p < 20 ? fl::Priority::High
                 : p < 80 ? fl::Priority::Normal
                          : fl::Priority::Low;
  }
  return out;
}

// A ClickHouse row as JSONEachRow gives it back (64-bit integers come quoted).
struct ChRow {
  std::string id;
  std::uint64_t seq = 0;
  std::string priority;
  std::string ts;
  std::int64_t ts_ns = 0;
  std::string type;
  std::string name;
  std::string inputs;
  std::string output;
};

std::vector<ChRow> parse_rows(const std::string& body) {
  std::vector<ChRow> rows;
  simdjson::dom::parser parser;
  for (const std::string& line : ft::split_lines(body)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc) != simdjson::SUCCESS) {
      ADD_FAILURE() << "not JSON: " << line.substr(0, 200);
      continue;
    }
    auto str = [&](const char* key) {
      std::string_view v;
      if (doc[key].get(v) != simdjson::SUCCESS) ADD_FAILURE() << key << " missing: " << line;
      return std::string(v);
    };
    ChRow r;
    r.id = str("id");
    r.seq = std::stoull(str("seq"));
    r.priority = str("priority");
    r.ts = str("ts");
    r.ts_ns = std::stoll(str("ts_ns"));
    r.type = str("type");
    r.name = str("name");
    r.inputs = str("inputs");
    r.output = str("output");
    rows.push_back(std::move(r));
  }
  return rows;
}

double field_of(simdjson::dom::parser& parser, const std::string& json, const char* key) {
  simdjson::dom::element doc;
  double v = std::numeric_limits<double>::quiet_NaN();
  if (parser.parse(json).get(doc) != simdjson::SUCCESS || doc[key].get(v) != simdjson::SUCCESS) {
    ADD_FAILURE() << "no number " << key << " in " << json;
  }
  return v;
}

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// The acceptance test: 100,000 W2 records through TLS into a ReplacingMergeTree,
// the server restarted while they are being logged and shipped, every id checked by SQL.
TEST_F(ClickHouseTest, ShipsW2RecordsThroughAServerRestartAndEveryIdArrives) {
  constexpr std::size_t kRecords = 100'000;
  constexpr std::size_t kChunk = 1000;
  const std::string table = unique_table("w2");
  ASSERT_TRUE(sql_->run(table_ddl(table)).has_value());

  const std::vector<W2Record> w2 = make_w2(kRecords);
  std::array<std::size_t, fl::kPriorityCount> logged_by_priority{};
  for (const auto& r : w2) ++logged_by_priority[static_cast<std::size_t>(r.priority)];

  fl::Options o = options_for(table);
  o.offline_auto_sync = true;
  o.offline_sync_interval = 1s;       // and at once whenever a full batch waits
  o.upload_batch_max_records = 2000;  // ~50 INSERTs: the restart lands between some
  const std::int64_t started_ns = wall_ns();
  const auto started = std::chrono::steady_clock::now();
  fl::Client c(o);
  const std::string journal_id = c.get_offline_status().journal_id;
  ASSERT_FALSE(journal_id.empty());
  const auto schema = c.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});

  // Watches the uploader through the restart: what failures it met. (jthreads: an
  // assertion that returns early still joins them before the Client goes.)
  std::atomic<int> most_consecutive_failures{0};
  std::mutex errors_mu;
  std::set<std::string> errors_seen;
  std::jthread watcher([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      const auto st = c.get_offline_status();
      if (st.consecutive_failures > most_consecutive_failures.load())
        most_consecutive_failures.store(st.consecutive_failures);
      if (!st.last_error.empty()) {
        std::lock_guard lock(errors_mu);
        if (errors_seen.size() < 8) errors_seen.insert(st.last_error);
      }
      std::this_thread::sleep_for(5ms);
    }
  });

  // The producer logs the first half at once (a backlog: the uploader ships as fast as
  // it can), then the second half in paced chunks over ~7 s, so that records are being
  // logged and shipped before, during and after the restart.
  constexpr std::size_t kBurst = kRecords / 2;
  std::atomic<std::size_t> not_ok{0};
  std::atomic<std::size_t> logged{0};
  std::jthread producer([&] {
    for (std::size_t n = 0; n < kRecords; ++n) {
      const W2Record& r = w2[n];
      if (c.log_prediction(schema, {r.features[0], r.features[1], r.features[2], r.features[3]},
                           {r.prediction}, r.priority) != fl::LogResult::Ok) {
        not_ok.fetch_add(1);
      }
      if ((n + 1) % kChunk == 0) {
        logged.store(n + 1);
        if (n + 1 > kBurst) std::this_thread::sleep_for(150ms);
      }
    }
  });

  // Once 30% has been delivered, while the burst is still being shipped, the server is
  // killed (SIGKILL: a crash, an INSERT may be in flight) and started again on the same
  // port and data. (A graceful stop would not be felt: ClickHouse 18.16 keeps serving a
  // busy kept-alive connection until it idles; see the script.)
  auto deadline = std::chrono::steady_clock::now() + 60s;
  std::optional<std::chrono::steady_clock::time_point> first_synced;
  std::uint64_t synced = 0;
  while ((synced = c.get_offline_status().synced_total) < kRecords * 3 / 10 &&
         std::chrono::steady_clock::now() < deadline) {
    if (synced > 0 && !first_synced) first_synced = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(1ms);
  }
  const auto before = c.get_offline_status();
  const auto restart_began = std::chrono::steady_clock::now();
  const std::size_t logged_at_restart = logged.load();
  const std::string pid_before = server_.pid();
  const ft::ProcessResult restart = ft::run_process(
      {"/bin/bash", server_script().string(), "restart", server_.dir.string(), "--kill"});
  const auto restart_ended = std::chrono::steady_clock::now();
  const std::uint64_t synced_after_restart = c.get_offline_status().synced_total;
  ASSERT_EQ(restart.exit_code, 0) << restart.out << restart.err;
  EXPECT_NE(server_.pid(), pid_before) << "the server was not restarted\n" << restart.out;
  // The restart came in the middle: some delivered, some not yet logged.
  EXPECT_GE(before.synced_total, kRecords * 3 / 10);
  EXPECT_LT(before.synced_total, kRecords);
  EXPECT_LT(logged_at_restart, kRecords);
  EXPECT_LT(synced_after_restart, kRecords) << "nothing was left to ship after the restart";

  producer.join();
  EXPECT_EQ(not_ok.load(), 0u);
  ASSERT_TRUE(c.flush_for(60s));

  // Everything drains (auto-sync only: no manual pass), bounded.
  deadline = std::chrono::steady_clock::now() + 120s;
  fl::OfflineStatus st = c.get_offline_status();
  while ((st.queue_size > 0 || st.in_memory > 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    st = c.get_offline_status();
  }
  const auto drained = std::chrono::steady_clock::now();
  watcher.request_stop();
  watcher.join();
  ASSERT_EQ(st.queue_size, 0u) << "not drained within 120 s; last error: " << st.last_error;
  EXPECT_GT(most_consecutive_failures.load(), 0) << "the uploader never noticed the restart";
  EXPECT_EQ(st.failed_count, 0u) << st.last_error;
  EXPECT_EQ(st.failed_total, 0u);
  EXPECT_EQ(st.synced_total, kRecords);
  EXPECT_EQ(st.committed_total, kRecords);
  const std::int64_t finished_ns = wall_ns();

  // ---- What ClickHouse holds -----------------------------------------------------------
  const auto counts = sql_->row(
      "SELECT count(), uniqExact(id), min(seq), max(seq), uniqExact(seq), "
      "countIf(id != concat('" +
      journal_id + "-', toString(seq))) FROM " + table);
  ASSERT_EQ(counts.size(), 6u);
  const std::uint64_t rows = std::stoull(counts[0]);
  const std::uint64_t distinct_ids = std::stoull(counts[1]);
  EXPECT_EQ(distinct_ids, kRecords);
  EXPECT_EQ(counts[2], "1");
  EXPECT_EQ(counts[3], std::to_string(kRecords));
  EXPECT_EQ(counts[4], std::to_string(kRecords));
  EXPECT_EQ(counts[5], "0") << "rows whose id is not <journal id>-<seq>";
  const std::uint64_t duplicates = rows - distinct_ids;
  EXPECT_LE(duplicates, st.possibly_duplicated)
      << "duplicate rows that no reset or timeout after sending can explain";
  // The README's way to count: FINAL collapses re-sent rows.
  EXPECT_EQ(sql_->row("SELECT count() FROM " + table + " FINAL"),
            std::vector<std::string>{std::to_string(kRecords)});

  // Every row, back in the test: each id once (a duplicate must be the same row), each
  // record's values and priority exactly as logged.
  const auto body =
      sql_->run("SELECT id, seq, priority, ts, ts_ns, type, name, inputs, output FROM " + table +
                " FORMAT JSONEachRow");
  ASSERT_TRUE(body.has_value());
  const std::vector<ChRow> all = parse_rows(*body);
  EXPECT_EQ(all.size(), rows);
  std::map<std::string, const ChRow*> by_id;
  std::vector<int> seen(kRecords, 0);
  std::array<std::size_t, fl::kPriorityCount> arrived_by_priority{};
  simdjson::dom::parser parser;
  std::size_t bad = 0;
  for (const ChRow& r : all) {
    auto [it, fresh] = by_id.emplace(r.id, &r);
    if (!fresh) {
      // A re-sent record: byte for byte the same row.
      const ChRow& a = *it->second;
      EXPECT_TRUE(a.seq == r.seq && a.priority == r.priority && a.ts_ns == r.ts_ns &&
                  a.inputs == r.inputs && a.output == r.output)
          << r.id;
      continue;
    }
    const double f1 = field_of(parser, r.inputs, "feature1");
    if (!(f1 >= 0 && f1 < static_cast<double>(kRecords)) || f1 != static_cast<double>(int(f1))) {
      if (++bad <= 5) ADD_FAILURE() << "unknown record " << r.id << ": " << r.inputs;
      continue;
    }
    const auto n = static_cast<std::size_t>(f1);
    const W2Record& want = w2[n];
    ++seen[n];
    ++arrived_by_priority[static_cast<std::size_t>(want.priority)];
    const bool same =
        r.priority == fl::to_string(want.priority) && r.type == "prediction" && r.name.empty() &&
        field_of(parser, r.inputs, "feature2") == want.features[1] &&
        field_of(parser, r.inputs, "feature3") == want.features[2] &&
        field_of(parser, r.inputs, "feature4") == want.features[3] &&
        field_of(parser, r.output, "prediction") == want.prediction && r.ts_ns >= started_ns &&
        r.ts_ns <= finished_ns && r.ts.size() == 30 && r.ts.back() == 'Z';
    if (!same && ++bad <= 5) {
      ADD_FAILURE() << "record " << n << " differs: " << r.id << " " << r.priority << " " << r.ts
                    << " " << r.inputs << " " << r.output;
    }
  }
  EXPECT_EQ(bad, 0u);
  std::size_t missing = 0;
  for (std::size_t n = 0; n < kRecords; ++n) {
    if (seen[n] != 1 && ++missing <= 5) ADD_FAILURE() << "record " << n << " seen " << seen[n];
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(by_id.size(), kRecords);
  EXPECT_EQ(arrived_by_priority, logged_by_priority);

  // What happened, for the log (figures, not assertions: machines are noisy).
  const auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  const double total_s = secs(drained - started);
  const double burst_s = secs(restart_began - started);
  std::ostringstream report;
  report << kRecords << " W2 records into ClickHouse in " << total_s
         << " s (paced logging and the restart included)\n"
         << "  ingest with a backlog: " << before.synced_total << " records acknowledged "
         << burst_s
         << " s after the first log call = " << static_cast<double>(before.synced_total) / burst_s
         << " records/s";
  if (first_synced) {
    const double s = secs(restart_began - *first_synced);
    report << "; from the first acknowledged batch (" << secs(*first_synced - started)
           << " s): " << static_cast<double>(before.synced_total - o.upload_batch_max_records) / s
           << " records/s";
  }
  report << "\n  server killed at " << before.synced_total << " synced, " << logged_at_restart
         << " logged; back after " << secs(restart_ended - restart_began) << " s; then "
         << (kRecords - synced_after_restart) << " records shipped in "
         << secs(drained - restart_ended) << " s\n"
         << "  rows " << rows << ", distinct ids " << distinct_ids << ", duplicates " << duplicates
         << " (possibly_duplicated " << st.possibly_duplicated << ")\n"
         << "  most consecutive failures " << most_consecutive_failures.load() << "; errors seen:";
  {
    std::lock_guard lock(errors_mu);
    for (const auto& e : errors_seen) report << "\n    " << e;
  }
  std::cout << report.str() << std::endl;
  RecordProperty("duplicates", static_cast<int>(duplicates));
  RecordProperty("seconds", std::to_string(total_s));
  // The key is a password here: it must not surface in what the uploader reports.
  for (const auto& e : errors_seen) EXPECT_EQ(e.find(server_.password), std::string::npos);
}

// A row ClickHouse cannot parse (here: an event name in a UInt64 column) is answered
// with 500 "Code: 27 ... Cannot parse input"; the uploader treats it as the data's
// fault: the batch is split, the bad rows alone move to failed, the rest arrives.
TEST_F(ClickHouseTest, RowsClickHouseCannotParseAreRejectedAloneAndTheRestArrives) {
  const std::string table = unique_table("reject");
  ASSERT_TRUE(sql_->run(table_ddl(table, "UInt64")).has_value());
  fl::Client c(options_for(table));
  for (int n = 0; n < 100; ++n) {
    ASSERT_EQ(c.log_event(n % 10 == 3 ? "not-a-number" : "42", {{"n", n}}), fl::LogResult::Ok);
  }
  c.flush();
  const fl::SyncResult r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 90u);
  EXPECT_EQ(r.failed, 10u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 10u);
  EXPECT_EQ(st.queue_size, 0u);
  EXPECT_EQ(sql_->row("SELECT uniqExact(id), countIf(name != 42) FROM " + table),
            (std::vector<std::string>{"90", "0"}));
  // The failed records carry ClickHouse's status and reason, and no secret.
  auto j = fd::Journal::open_read_only(tmp_ / "journal");
  std::size_t failed = 0;
  j->scan(fd::RecordSet::Failed, 0, 1000, [&](std::uint64_t, std::span<const std::byte> b) {
    fd::DecodedRecord rec;
    ASSERT_EQ(fd::decode_record(b, rec), "");
    ++failed;
    EXPECT_EQ(rec.name, "not-a-number");
    EXPECT_EQ(rec.last_status, 500);
    EXPECT_EQ(rec.attempts, 0);  // rejected is not an attempt
    EXPECT_NE(rec.reason.find("Code: 27"), std::string_view::npos) << rec.reason;
    EXPECT_EQ(rec.reason.find(server_.password), std::string_view::npos);
  });
  EXPECT_EQ(failed, 10u);
}

// A value the table's type refuses (here: LOW in a priority Enum that lacks it) is the
// data's fault too, though ClickHouse words it without "Cannot parse": those records
// alone move to failed after no attempt, and every other record arrives.
TEST_F(ClickHouseTest, ValuesTheColumnTypeRefusesAreRejectedAloneAndTheRestArrives) {
  const std::string table = unique_table("enum");
  ASSERT_TRUE(sql_->run("CREATE TABLE " + table +
                        " (id String, seq UInt64, priority Enum8('CRITICAL' = 1, 'HIGH' = 2, "
                        "'NORMAL' = 3), ts String, ts_ns Int64, type String, name String, "
                        "inputs String, output String) ENGINE = ReplacingMergeTree() ORDER BY id")
                  .has_value());
  fl::Client c(options_for(table));
  const auto pr = [](int n) { return static_cast<fl::Priority>(n % 4); };
  for (int n = 0; n < 100; ++n) {
    ASSERT_EQ(c.log_event("tick", {{"n", n}}, pr(n)), fl::LogResult::Ok);
  }
  c.flush();
  const fl::SyncResult r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 75u);
  EXPECT_EQ(r.failed, 25u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 25u);
  EXPECT_EQ(st.queue_size, 0u);
  EXPECT_EQ(sql_->row("SELECT uniqExact(id), countIf(priority = 'CRITICAL') FROM " + table),
            (std::vector<std::string>{"75", "25"}));
  auto j = fd::Journal::open_read_only(tmp_ / "journal");
  std::size_t failed = 0;
  j->scan(fd::RecordSet::Failed, 0, 1000, [&](std::uint64_t, std::span<const std::byte> b) {
    fd::DecodedRecord rec;
    ASSERT_EQ(fd::decode_record(b, rec), "");
    ++failed;
    EXPECT_EQ(rec.priority, fl::Priority::Low);
    EXPECT_EQ(rec.attempts, 0);
  });
  EXPECT_EQ(failed, 25u);
}

// A wrong key (401) and an unknown table (404) are misconfigurations: nothing is
// counted against the records, they wait, and the error says why without the key.
TEST_F(ClickHouseTest, WrongKeyAndUnknownTableAreMisconfigurationsNotAttempts) {
  const std::string table = unique_table("auth");
  ASSERT_TRUE(sql_->run(table_ddl(table)).has_value());
  struct Case {
    std::string key;
    std::string table;
    std::string expect;
  };
  const std::string wrong_key = server_.password + "-wrong";
  for (const Case& k :
       {Case{wrong_key, table, "401"}, Case{server_.password, table + "_missing", "404"}}) {
    ft::TempDir dir;
    fl::Options o = options_for(k.table);
    o.offline_dir = dir / "journal";
    o.api_key = k.key;
    fl::Client c(o);
    for (int n = 0; n < 5; ++n) ASSERT_EQ(c.log_event("e", {{"n", n}}), fl::LogResult::Ok);
    c.flush();
    for (int pass = 0; pass < 2; ++pass) {
      const fl::SyncResult r = c.sync_offline_queue();
      EXPECT_EQ(r.synced + r.failed, 0u) << k.expect;
    }
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.queue_size, 5u) << k.expect;
    EXPECT_EQ(st.failed_count, 0u) << k.expect;
    EXPECT_NE(st.last_error.find(k.expect), std::string::npos) << st.last_error;
    EXPECT_EQ(st.last_error.find(server_.password), std::string::npos) << st.last_error;
    auto j = fd::Journal::open_read_only(dir / "journal");
    for (std::size_t s = 0; s < 4; ++s) {
      j->scan(static_cast<fd::RecordSet>(s), 0, 100,
              [&](std::uint64_t, std::span<const std::byte> b) {
                fd::DecodedRecord rec;
                ASSERT_EQ(fd::decode_record(b, rec), "");
                EXPECT_EQ(rec.attempts, 0) << k.expect;
              });
    }
  }
  EXPECT_EQ(sql_->row("SELECT count() FROM " + table), std::vector<std::string>{"0"});
}
