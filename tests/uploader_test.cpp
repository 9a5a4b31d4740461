// The uploader end to end: a real Client ships its real journal over real TLS to the
// scriptable loopback receiver, through every failure class of the design brief.
#include <gtest/gtest.h>

#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"
#include "uploader/backoff.hpp"
#include "uploader/uploader.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiKey = "sk-live-7f3a9c2e-SECRET-do-not-leak";

// Each received line, parsed.
struct Row {
  std::string id;
  std::string priority;
  std::int64_t n = -1;  // the "n" input every test record carries
};

std::vector<Row> rows_of(const std::vector<ft::ReceivedRequest>& requests) {
  std::vector<Row> rows;
  simdjson::dom::parser parser;
  for (const auto& req : requests) {
    std::size_t start = 0;
    while (start < req.body.size()) {
      std::size_t end = req.body.find('\n', start);
      if (end == std::string::npos) end = req.body.size();
      const std::string line = req.body.substr(start, end - start);
      start = end + 1;
      if (line.empty()) continue;
      simdjson::dom::element doc;
      EXPECT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
      Row r;
      r.id = std::string(std::string_view(doc["id"]));
      r.priority = std::string(std::string_view(doc["priority"]));
      simdjson::dom::element inputs;
      if (doc["inputs"].get(inputs) == simdjson::SUCCESS && inputs.is_object()) {
        std::int64_t n = -1;
        if (inputs["n"].get(n) == simdjson::SUCCESS) r.n = n;
      }
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

class UploaderTest : public ::testing::Test {
 protected:
  std::filesystem::path ca_file() { return ft::ca_file_in(tmp_.path()); }

  fl::Options options_for(const ft::TlsReceiver& rx, bool auto_sync = false) {
    fl::Options o = ft::blocking_options(tmp_ / "journal");
    o.endpoint = rx.url("127.0.0.1", "/ingest");
    o.api_key = kApiKey;
    o.ca_file = ca_file();
    o.offline_auto_sync = auto_sync;
    o.backoff_base = 20ms;
    o.backoff_cap = 200ms;
    o.request_timeout = 2000ms;
    o.connect_timeout = 1000ms;
    o.handshake_timeout = 1000ms;
    return o;
  }

  // Logs `count` records numbered from `first`, W2 priorities by n, then flushes.
  static void log_numbered(fl::Client& c, std::int64_t first, std::int64_t count,
                           bool bad_every_10th = false) {
    static constexpr fl::Priority kW2[20] = {
        fl::Priority::Critical, fl::Priority::High,   fl::Priority::High,   fl::Priority::High,
        fl::Priority::Normal,   fl::Priority::Normal, fl::Priority::Normal, fl::Priority::Normal,
        fl::Priority::Normal,   fl::Priority::Normal, fl::Priority::Normal, fl::Priority::Normal,
        fl::Priority::Normal,   fl::Priority::Normal, fl::Priority::Normal, fl::Priority::Normal,
        fl::Priority::Low,      fl::Priority::Low,    fl::Priority::Low,    fl::Priority::Low};
    for (std::int64_t n = first; n < first + count; ++n) {
      const bool bad = bad_every_10th && n % 10 == 3;
      ASSERT_EQ(c.log_prediction({{"n", n}, {"bad", bad}, {"x", 0.5 * static_cast<double>(n)}},
                                 {{"prediction", 1.0}}, kW2[n % 20]),
                fl::LogResult::Ok);
    }
    c.flush();
  }

  ft::TempDir tmp_;
};

// What the journal holds for each record, as the uploader left it.
struct Stored {
  std::string state;  // "queued" or "failed"
  std::int64_t n = -1;
  int attempts = 0;
  int last_status = 0;
  std::string reason;  // failed records: the server's answer, shortened
};

std::vector<Stored> stored_records(const std::filesystem::path& dir) {
  std::vector<Stored> out;
  auto j = fd::Journal::open_read_only(dir);
  for (std::size_t s = 0; s < fd::kRecordSets; ++s) {
    const auto set = static_cast<fd::RecordSet>(s);
    std::uint64_t from = 0;
    do {
      from = j->scan(set, from, 1000, [&](std::uint64_t, std::span<const std::byte> b) {
        fd::DecodedRecord r;
        EXPECT_EQ(fd::decode_record(b, r), "");
        Stored st;
        st.state = set == fd::RecordSet::Failed ? "failed" : "queued";
        st.attempts = r.attempts;
        st.last_status = r.last_status;
        st.reason = std::string(r.reason);
        for (const auto& f : r.inputs) {
          if (f.name == "n") st.n = f.value.as_int();
        }
        out.push_back(st);
      });
    } while (from != 0);
  }
  return out;
}

int rank_of(const std::string& priority) {
  return static_cast<int>(*fl::parse_priority(priority));
}

}  // namespace

// ---- Pure parts -----------------------------------------------------------------------

TEST(Backoff, DelaysStayWithinTheFullJitterBounds) {
  fd::Backoff b(100ms, 1000ms, 42);
  for (int round = 0; round < 3; ++round) {
    for (int n = 0; n < 8; ++n) {
      const auto bound = std::min<std::int64_t>(1000, 100LL << n);
      EXPECT_EQ(b.ceiling().count(), bound);
      const auto d = b.next();
      EXPECT_GE(d.count(), 0);
      EXPECT_LE(d.count(), bound);
    }
    b.reset();
  }
}

// The uploader's status and failed records, and flightlog-replay's messages, all take
// their reason from short_reason().
TEST(ShortReason, MasksTheKeyWhereverItIsThenCutsAndBlanksControlCharacters) {
  const std::string key = "sk-live-0123456789abcdef";
  fd::PostOutcome o;
  o.kind = fd::PostOutcome::Kind::Response;
  o.status = 500;
  // The key is echoed across the 210-character cut, and once more after it.
  o.body = std::string(195, 'a') + key + "\n\ttail " + key;
  const std::string r = fd::short_reason(o, key);
  EXPECT_EQ(r.rfind("HTTP 500: aaa", 0), 0u) << r;
  EXPECT_LE(r.size(), 210u);
  EXPECT_EQ(r.find(key.substr(0, 4)), std::string::npos) << r;  // not even its start
  EXPECT_NE(r.find("***"), std::string::npos) << r;
  for (char c : r) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << r;
  // A key containing the mask itself cannot make the masking loop.
  o.body = "x***y***y";
  EXPECT_EQ(fd::short_reason(o, "***y"), "HTTP 500: x******");
  o.kind = fd::PostOutcome::Kind::Offline;
  o.error = "connect to 127.0.0.1:1 refused";
  EXPECT_EQ(fd::short_reason(o, key), o.error);
}

TEST(Classify, FollowsTheDesignBrief) {
  using K = fd::PostOutcome::Kind;
  auto resp = [](int status, std::string body = {}) {
    fd::PostOutcome o;
    o.kind = K::Response;
    o.status = status;
    o.body = std::move(body);
    return o;
  };
  auto kind = [](K k) {
    fd::PostOutcome o;
    o.kind = k;
    return o;
  };
  EXPECT_EQ(fd::classify(resp(200), false), fd::FailureClass::None);
  EXPECT_EQ(fd::classify(resp(204), false), fd::FailureClass::None);
  for (int s : {500, 502, 503, 504, 408, 429}) {
    EXPECT_EQ(fd::classify(resp(s), false), fd::FailureClass::Retryable) << s;
  }
  for (int s : {400, 413, 422})
    EXPECT_EQ(fd::classify(resp(s), false), fd::FailureClass::Rejected) << s;
  for (int s : {401, 403, 404, 405, 407, 410, 415, 421, 426, 431, 301, 101, 0, 99, 600, 999}) {
    EXPECT_EQ(fd::classify(resp(s), false), fd::FailureClass::Misconfigured) << s;
  }
  EXPECT_EQ(fd::classify(resp(599), false), fd::FailureClass::Retryable);
  EXPECT_EQ(fd::classify(kind(K::Offline), false), fd::FailureClass::Offline);
  EXPECT_EQ(fd::classify(kind(K::SentNoResponse), false), fd::FailureClass::Retryable);
  EXPECT_EQ(fd::classify(kind(K::TlsFailure), false), fd::FailureClass::Misconfigured);
  // ClickHouse answers 500 for rows it cannot parse: the data's fault, not the server's.
  const auto parse_error =
      resp(500, "Code: 27, e.displayText() = DB::Exception: Cannot parse input: (at row 1)");
  EXPECT_EQ(fd::classify(parse_error, true), fd::FailureClass::Rejected);
  EXPECT_EQ(fd::classify(parse_error, false), fd::FailureClass::Retryable);
  // A code whose digits end the body may be a longer one cut short ("Code: 60" -> 6).
  EXPECT_EQ(fd::classify(resp(500, "Code: 6"), true), fd::FailureClass::Retryable);
  EXPECT_EQ(fd::classify(resp(500, "Code: 6."), true), fd::FailureClass::Rejected);
  EXPECT_EQ(fd::classify(resp(500, "Code: 241, Memory limit exceeded"), true),
            fd::FailureClass::Retryable);
  // Other bad-value errors, as ClickHouse 18.16 words them and as later versions do
  // ("Code: 27." and a bare code for a value out of range).
  for (const char* body :
       {"Code: 49, e.displayText() = DB::Exception: Unknown element 'LOW' for type Enum8('A' = "
        "1): (while read the value of key priority), e.what() = DB::Exception",
        "Code: 117, e.displayText() = DB::Exception: Unknown field found while parsing "
        "JSONEachRow format: zz: (at row 1)",
        "Code: 27. DB::Exception: Cannot parse input: expected '\"' before: 'x'",
        "Code: 70. DB::Exception: Value 300 cannot be safely converted into UInt8"}) {
    EXPECT_EQ(fd::classify(resp(500, body), true), fd::FailureClass::Rejected) << body;
  }
  EXPECT_EQ(fd::classify(resp(500, "Code: 252. DB::Exception: Too many parts (300)"), true),
            fd::FailureClass::Retryable);
}

// ---- End to end -----------------------------------------------------------------------

TEST_F(UploaderTest, DeliversEveryRecordOnceInPriorityOrder) {
  ft::TlsReceiver rx;
  fl::Options o = options_for(rx);
  o.upload_batch_max_records = 300;  // several batches
  std::string journal_id;
  {
    fl::Client c(o);
    log_numbered(c, 0, 2000);
    const fl::SyncResult r = c.sync_offline_queue();
    EXPECT_EQ(r.synced, 2000u);
    EXPECT_EQ(r.failed, 0u);
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.queue_size, 0u);
    EXPECT_EQ(st.synced_total, 2000u);
    EXPECT_TRUE(st.last_sync_time.has_value());
    EXPECT_EQ(st.connection_state, "connected");
    journal_id = st.journal_id;
  }
  const auto reqs = rx.requests();
  ASSERT_GE(reqs.size(), 7u);
  for (const auto& q : reqs) {
    EXPECT_EQ(q.method, "POST");
    EXPECT_EQ(q.target, "/ingest");
    EXPECT_EQ(q.header("Authorization"), std::string("Bearer ") + kApiKey);
    EXPECT_EQ(q.header("Content-Type"), "application/x-ndjson");
    EXPECT_FALSE(q.header("Idempotency-Key").empty());
  }
  const auto rows = rows_of(reqs);
  ASSERT_EQ(rows.size(), 2000u);
  std::set<std::int64_t> ns;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ns.insert(rows[i].n);
    ids.insert(rows[i].id);
    EXPECT_EQ(rows[i].id.rfind(journal_id + "-", 0), 0u);
    if (i > 0) {
      EXPECT_LE(rank_of(rows[i - 1].priority), rank_of(rows[i].priority)) << i;
    }
  }
  EXPECT_EQ(ns.size(), 2000u);
  EXPECT_EQ(*ns.begin(), 0);
  EXPECT_EQ(*ns.rbegin(), 1999);
  EXPECT_EQ(ids.size(), 2000u);
}

// A pass ships what was committed when it started: records logged meanwhile wait for
// the next pass, so sync_offline_queue() returns even while logging outpaces the upload.
TEST_F(UploaderTest, SyncReturnsWhileLoggingOutpacesTheUpload) {
  ft::TlsReceiver rx;
  auto slow = std::make_shared<std::atomic<bool>>(true);
  rx.set_responder([slow](const ft::ReceivedRequest&) -> std::optional<ft::Reply> {
    ft::Reply r;
    if (*slow) r.delay = 20ms;  // at most 1,000 records a second in batches of 20
    return r;
  });
  fl::Options o = options_for(rx);
  o.upload_batch_max_records = 20;
  o.request_timeout = 10000ms;
  fl::Client c(o);
  log_numbered(c, 0, 200);
  // About 2,000 records a second, until the sync returns.
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> logged{200};
  std::thread logger([&] {
    while (!stop) {
      log_numbered(c, logged, 20);
      logged += 20;
      std::this_thread::sleep_for(10ms);
    }
  });
  auto sync = std::async(std::launch::async, [&] { return c.sync_offline_queue(); });
  const bool returned = sync.wait_for(60s) == std::future_status::ready;
  stop = true;
  logger.join();
  *slow = false;
  const fl::SyncResult r = sync.get();
  EXPECT_TRUE(returned) << "the pass went on while records kept coming";
  EXPECT_GE(r.synced, 200u);  // at least what was flushed before it started
  // The rest goes in later passes, each record once.
  c.flush();
  const auto total = static_cast<std::uint64_t>(logged.load());
  for (int i = 0; i < 20 && c.get_offline_status().synced_total < total; ++i) {
    c.sync_offline_queue();
  }
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.synced_total, total);
  EXPECT_EQ(st.queue_size, 0u);
  std::set<std::int64_t> ns;
  for (const auto& row : rows_of(rx.requests())) ns.insert(row.n);
  EXPECT_EQ(ns.size(), total);
}

// A pass bounded by what was queued at its start still reads every priority afresh: a
// CRITICAL record logged while a long pass works through a backlog goes out in one of
// the next batches, not after the backlog.
TEST_F(UploaderTest, ACriticalRecordLoggedDuringALongPassOvertakesTheBacklog) {
  ft::TlsReceiver rx;
  rx.set_responder([](const ft::ReceivedRequest&) -> std::optional<ft::Reply> {
    ft::Reply r;
    r.delay = 50ms;
    return r;
  });
  fl::Options o = options_for(rx);
  o.upload_batch_max_records = 10;
  o.request_timeout = 10000ms;
  fl::Client c(o);
  for (std::int64_t n = 0; n < 200; ++n) {
    ASSERT_EQ(c.log_prediction({{"n", n}}, {{"p", 0.5}}, fl::Priority::Low), fl::LogResult::Ok);
  }
  c.flush();
  auto sync = std::async(std::launch::async, [&] { return c.sync_offline_queue(); });
  ASSERT_TRUE(rx.wait_for_requests(2, 60s));
  ASSERT_EQ(c.log_prediction({{"n", std::int64_t{-7}}}, {{"p", 0.5}}, fl::Priority::Critical),
            fl::LogResult::Ok);
  c.flush();
  const std::size_t seen_when_logged = rx.request_count();
  ASSERT_EQ(sync.wait_for(120s), std::future_status::ready);
  const fl::SyncResult r = sync.get();
  // The pass sent 200 records' worth of batches, the CRITICAL one among them.
  EXPECT_EQ(r.synced, 200u);
  const auto reqs = rx.requests();
  std::size_t critical_in = reqs.size();
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    for (const auto& row : rows_of({reqs[i]})) {
      if (row.n == -7) critical_in = i;
    }
  }
  ASSERT_LT(critical_in, reqs.size()) << "the CRITICAL record was not sent in this pass";
  // Batches read ahead by one: it rides in one of the two after the one on the wire.
  EXPECT_LE(critical_in, seen_when_logged + 2);
  c.sync_offline_queue();
  EXPECT_EQ(c.get_offline_status().queue_size, 0u);
}

// A record the uploader cannot decode is never sent: it moves to failed, and the pass
// that moved it counts it in its SyncResult as the status counts it.
TEST_F(UploaderTest, DamagedRecordsMoveToFailedAndThePassCountsThem) {
  ft::TlsReceiver rx;
  const fl::Options o = options_for(rx);
  {
    fl::Client c(o);
    log_numbered(c, 0, 20);
  }
  {
    ft::RawLmdb raw(tmp_ / "journal");
    raw.put_seq("normal", 1'000'000, ft::as_bytes("garbage, not a record"));
  }
  fl::Client c(o);
  EXPECT_EQ(c.get_offline_status().queue_size, 21u);
  const fl::SyncResult r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 20u);
  EXPECT_EQ(r.failed, 1u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.queue_size, 0u);
  EXPECT_EQ(st.failed_count, 1u);
  EXPECT_EQ(rows_of(rx.requests()).size(), 20u);
}

// Records evicted while their upload was in flight are counted once, as evicted: the
// delete that follows the 200 finds them gone, and synced counts what it removed.
TEST_F(UploaderTest, RecordsEvictedInFlightAreNotAlsoCountedSynced) {
  ft::TlsReceiver rx;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  rx.set_responder([released](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    if (q.connection == 1 && q.index_on_connection == 0) released.wait_for(60s);
    return std::nullopt;
  });
  fl::Options o = options_for(rx);
  o.offline_max_queue_size = 100;
  o.request_timeout = 120000ms;
  fl::Client c(o);
  auto log_low = [&c](std::int64_t first) {
    for (std::int64_t n = first; n < first + 100; ++n) {
      ASSERT_EQ(c.log_prediction({{"n", n}}, {{"prediction", 1.0}}, fl::Priority::Low),
                fl::LogResult::Ok);
    }
    c.flush();
  };
  log_low(0);
  auto sync = std::async(std::launch::async, [&] { return c.sync_offline_queue(); });
  const bool in_flight = rx.wait_for_requests(1, 60000ms);
  if (in_flight) log_low(100);  // evicts the 100 in flight
  const auto before = c.get_offline_status();
  release.set_value();
  const fl::SyncResult r = sync.get();
  ASSERT_TRUE(in_flight);
  ASSERT_EQ(before.dropped.evicted[static_cast<std::size_t>(fl::Priority::Low)], 100u);
  EXPECT_EQ(r.synced, 0u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.synced_total, 0u);
  EXPECT_EQ(st.dropped.evicted[static_cast<std::size_t>(fl::Priority::Low)], 100u);
  EXPECT_EQ(st.queue_size, 100u);
  // The next pass ships the 100 that replaced them, counted once each.
  EXPECT_EQ(c.sync_offline_queue().synced, 100u);
  EXPECT_EQ(c.get_offline_status().synced_total, 100u);
}

TEST_F(UploaderTest, AutoSyncRunsOnTheIntervalAndWhenABatchIsFull) {
  ft::TlsReceiver rx;
  {
    fl::Options o = options_for(rx, /*auto_sync=*/true);
    o.offline_sync_interval = 1s;
    fl::Client c(o);
    log_numbered(c, 0, 10);
    ASSERT_TRUE(rx.wait_for_requests(1, 5000ms));
    EXPECT_EQ(rows_of(rx.requests()).size(), 10u);
    for (int i = 0; i < 100 && c.get_offline_status().synced_total < 10; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(c.get_offline_status().queue_size, 0u);
  }
  ft::TlsReceiver rx_batch;
  fl::Options o = options_for(rx_batch, /*auto_sync=*/true);
  o.offline_sync_interval = std::chrono::hours(1);  // only a full batch can trigger it
  o.upload_batch_max_records = 100;
  fl::Client c(o);
  log_numbered(c, 0, 450);  // and flushed: all 450 are in the journal
  // Full batches start passes long before the interval. A pass ships what is committed
  // when it runs; a slow logger (a sanitizer build) may leave fewer than a batch behind
  // it, and those wait for the interval. So: passes go on until less than a batch waits.
  auto st = c.get_offline_status();
  for (int i = 0; i < 200 && !(st.queue_size < 100 && st.synced_total + st.queue_size == 450);
       ++i) {
    std::this_thread::sleep_for(50ms);
    st = c.get_offline_status();
  }
  EXPECT_LT(st.queue_size, 100u);
  EXPECT_EQ(st.synced_total + st.queue_size, 450u);
  EXPECT_GE(st.synced_total, 351u);
  EXPECT_GE(rx_batch.request_count(), 4u);
}

// A backlog of full batches starts passes early only while uploads succeed: after a
// failure the next automatic pass waits for the interval too, so an outage shorter than
// the interval costs each record one attempt, not all three (with the default backoff,
// 0-1 s then 0-2 s, three attempts would fit in the outage).
TEST_F(UploaderTest, ABriefOutageDoesNotUseUpTheAttemptsOfAFullBacklog) {
  ft::TlsReceiver rx;
  constexpr auto kOutage = 5s;  // from the first request on
  auto first = std::make_shared<std::optional<std::chrono::steady_clock::time_point>>();
  rx.set_responder([first, kOutage](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    if (!*first) *first = q.received_at;
    if (q.received_at - **first < kOutage) return ft::Reply::status_only(503);
    return std::nullopt;
  });
  fl::Options o = options_for(rx, /*auto_sync=*/true);
  o.backoff_base = 1000ms;  // the defaults
  o.backoff_cap = 300000ms;
  o.offline_sync_interval = 8s;  // longer than the outage
  o.upload_batch_max_records = 100;
  fl::Client c(o);
  log_numbered(c, 0, 150);  // a full batch waits: the first pass starts at once
  auto st = c.get_offline_status();
  for (const auto deadline = std::chrono::steady_clock::now() + 90s;
       st.synced_total < 150 && st.failed_count == 0 && std::chrono::steady_clock::now() < deadline;
       st = c.get_offline_status()) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(st.failed_count, 0u);
  EXPECT_EQ(st.synced_total, 150u);
  EXPECT_EQ(st.queue_size, 0u);
  // One request met the outage; the next waited for the interval.
  const auto reqs = rx.requests();
  ASSERT_GE(reqs.size(), 2u);
  EXPECT_GE(reqs[1].received_at - reqs[0].received_at, kOutage);
}

TEST_F(UploaderTest, RetryableFailuresCountAttemptsThenFailThenRetryFailedDelivers) {
  ft::TlsReceiver rx;
  rx.script(ft::Reply::status_only(503), 3);
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 20);
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const auto r = c.sync_offline_queue();
    EXPECT_EQ(r.synced, 0u);
    EXPECT_EQ(r.failed, attempt == 3 ? 20u : 0u) << attempt;
    const auto st = c.get_offline_status();
    EXPECT_GE(st.consecutive_failures, attempt);
    EXPECT_NE(st.last_error.find("503"), std::string::npos) << st.last_error;
  }
  auto st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 20u);
  EXPECT_EQ(st.queue_size, 0u);
  // The failed records carry their attempts and the last status.
  const auto failed = stored_records(tmp_ / "journal");
  std::size_t in_failed = 0;
  for (const auto& rec : failed) {
    if (rec.state != "failed") continue;
    ++in_failed;
    EXPECT_EQ(rec.attempts, 3);
    EXPECT_EQ(rec.last_status, 503);
  }
  EXPECT_EQ(in_failed, 20u);
  // Back to the queue, and delivered now that the receiver answers 200.
  EXPECT_EQ(c.retry_failed(), 20u);
  const auto r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 20u);
  st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 0u);
  EXPECT_EQ(st.queue_size, 0u);
}

TEST_F(UploaderTest, RetryAfterIsHonoured) {
  ft::TlsReceiver rx;
  ft::Reply r = ft::Reply::status_only(429);
  r.headers.emplace_back("Retry-After", "3");
  rx.script(r);
  fl::Options o = options_for(rx, /*auto_sync=*/true);
  o.offline_sync_interval = 1s;
  fl::Client c(o);
  log_numbered(c, 0, 5);
  ASSERT_TRUE(rx.wait_for_requests(1, 5000ms));
  // The backoff is set once the uploader has read the answer and counted the attempt.
  auto st = c.get_offline_status();
  for (const auto deadline = std::chrono::steady_clock::now() + 2s;
       st.current_backoff == 0ms && std::chrono::steady_clock::now() < deadline;
       st = c.get_offline_status()) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GT(st.current_backoff, 2000ms);  // at least Retry-After, minus what has passed
  EXPECT_LE(st.current_backoff, 3000ms);
  EXPECT_EQ(rx.request_count(), 1u);  // nothing before the server's time
  ASSERT_TRUE(rx.wait_for_requests(2, 6000ms));
  const auto gap = rx.requests()[1].received_at - rx.requests()[0].received_at;
  EXPECT_GE(gap, 2900ms);
}

TEST_F(UploaderTest, RejectedBatchIsSplitToFindTheRecordsAtFault) {
  ft::TlsReceiver rx;
  // The requests the responder answered 2xx: only their rows were delivered.
  std::mutex accepted_mu;
  std::vector<ft::ReceivedRequest> accepted;
  rx.set_responder([&](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    if (q.body.find("\"bad\":true") != std::string::npos) return ft::Reply::status_only(400);
    std::lock_guard lock(accepted_mu);
    accepted.push_back(q);
    return std::nullopt;  // the default 200
  });
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 200, /*bad_every_10th=*/true);
  const auto r = c.sync_offline_queue();
  EXPECT_EQ(r.failed, 20u);
  EXPECT_EQ(r.synced, 180u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 20u);
  EXPECT_EQ(st.queue_size, 0u);
  rx.stop();  // the responder runs on the receiver's thread: done with `accepted` now
  // Every good record was delivered, in a request answered 2xx, exactly once; no bad one.
  std::multiset<std::int64_t> delivered;
  for (const auto& row : rows_of(accepted)) delivered.insert(row.n);
  std::multiset<std::int64_t> good;
  for (std::int64_t n = 0; n < 200; ++n) {
    if (n % 10 != 3) good.insert(n);
  }
  EXPECT_EQ(delivered, good);
  for (const auto& rec : stored_records(tmp_ / "journal")) {
    EXPECT_EQ(rec.state, "failed");
    EXPECT_EQ(rec.n % 10, 3);
    EXPECT_EQ(rec.last_status, 400);
    EXPECT_EQ(rec.attempts, 0);  // rejected is not an attempt
  }
}

TEST_F(UploaderTest, TooLargeBatchesAreSplitUntilTheyFit) {
  ft::TlsReceiver rx;
  rx.set_responder([](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    if (q.body.size() > 4000) return ft::Reply::status_only(413);
    return std::nullopt;
  });
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 300);
  const auto r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 300u);
  EXPECT_EQ(r.failed, 0u);
}

TEST_F(UploaderTest, OfflineCountsNoAttemptAndARestartDeliversEverything) {
  std::string url;
  {
    ft::TlsReceiver gone;
    url = gone.url();
  }  // nothing listens there now: connect refused
  fl::Options o = ft::blocking_options(tmp_ / "journal");
  o.endpoint = url;
  o.api_key = kApiKey;
  o.ca_file = ca_file();
  o.offline_auto_sync = false;
  {
    fl::Client c(o);
    log_numbered(c, 0, 50);
    for (int i = 0; i < 4; ++i) {
      const auto r = c.sync_offline_queue();
      EXPECT_EQ(r.synced + r.failed, 0u);
    }
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.queue_size, 50u);
    EXPECT_EQ(st.failed_count, 0u);
    EXPECT_GE(st.consecutive_failures, 4);
    EXPECT_FALSE(st.last_error.empty());
    EXPECT_EQ(st.last_error.find(kApiKey), std::string::npos);
  }
  for (const auto& rec : stored_records(tmp_ / "journal")) EXPECT_EQ(rec.attempts, 0);
  // The network is back (a receiver on a new port) and the process restarted.
  ft::TlsReceiver rx;
  fl::Options o2 = options_for(rx);
  fl::Client c(o2);
  EXPECT_EQ(c.sync_offline_queue().synced, 50u);
  EXPECT_EQ(rows_of(rx.requests()).size(), 50u);
}

TEST_F(UploaderTest, ResetAfterSendingIsRetryableAndMayDuplicate) {
  ft::TlsReceiver rx;
  rx.script(ft::Reply::with_fault(ft::Fault::ResetAfterRequest));
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 30);
  auto r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 0u);
  auto st = c.get_offline_status();
  EXPECT_EQ(st.possibly_duplicated, 30u);
  for (const auto& rec : stored_records(tmp_ / "journal")) EXPECT_EQ(rec.attempts, 1);
  r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 30u);
  // The receiver saw the first copy too: every id at least once, duplicates only from
  // the request that was reset.
  std::map<std::int64_t, int> seen;
  for (const auto& row : rows_of(rx.requests())) ++seen[row.n];
  EXPECT_EQ(seen.size(), 30u);
  for (const auto& [n, times] : seen) EXPECT_LE(times, 2) << n;
}

// A kept-alive connection that takes a whole batch and is then reset without an answer
// looks stale to the transport, which sends the batch again on a fresh connection: the
// receiver may have both copies, and the status says so.
TEST_F(UploaderTest, ABatchResentAfterAReusedConnectionFailedCountsAsPossiblyDuplicated) {
  ft::TlsReceiver rx;
  rx.script(ft::Reply{});                                          // first batch, kept alive
  rx.script(ft::Reply::with_fault(ft::Fault::ResetAfterRequest));  // second: read, then RST
  fl::Options o = options_for(rx);
  o.upload_batch_max_records = 10;
  fl::Client c(o);
  log_numbered(c, 0, 20);
  const auto r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 20u);
  EXPECT_EQ(r.failed, 0u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.possibly_duplicated, 10u);
  EXPECT_EQ(st.queue_size, 0u);
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].body, reqs[2].body);  // the second batch, twice
  EXPECT_EQ(reqs[1].connection, 1u);
  EXPECT_EQ(reqs[2].connection, 2u);
}

TEST_F(UploaderTest, TruncatedAndSlowResponsesAreRetryable) {
  ft::TlsReceiver rx;
  rx.script(ft::Reply::with_fault(ft::Fault::Truncate));
  ft::Reply slow;
  slow.delay = 3000ms;  // past request_timeout (2 s)
  rx.script(slow);
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 10);
  EXPECT_EQ(c.sync_offline_queue().synced, 0u);
  EXPECT_EQ(c.sync_offline_queue().synced, 0u);
  for (const auto& rec : stored_records(tmp_ / "journal")) EXPECT_EQ(rec.attempts, 2);
  EXPECT_EQ(c.sync_offline_queue().synced, 10u);
}

TEST_F(UploaderTest, AckWhoseBodyRunsToACloseWithoutCloseNotifyDelivers) {
  // No Content-Length, Connection: close, FIN without close_notify: the 200 stands.
  ft::TlsReceiver rx;
  rx.set_responder([](const ft::ReceivedRequest&) -> std::optional<ft::Reply> {
    return ft::Reply::with_fault(ft::Fault::CloseDelimited);
  });
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 20);
  const auto r = c.sync_offline_queue();
  EXPECT_EQ(r.synced, 20u);
  EXPECT_EQ(r.failed, 0u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.queue_size, 0u);
  EXPECT_EQ(st.consecutive_failures, 0);
  EXPECT_EQ(rows_of(rx.requests()).size(), 20u);
}

TEST_F(UploaderTest, CertificateProblemsAreMisconfigurationNotAttempts) {
  for (auto cert :
       {ft::ServedCert::WrongHost, ft::ServedCert::Untrusted, ft::ServedCert::Expired}) {
    ft::TempDir dir;
    ft::ReceiverOptions ro;
    ro.cert = cert;
    ft::TlsReceiver rx(ro);
    fl::Options o = options_for(rx);
    o.offline_dir = dir / "journal";
    fl::Client c(o);
    log_numbered(c, 0, 5);
    const auto r = c.sync_offline_queue();
    EXPECT_EQ(r.synced + r.failed, 0u);
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.queue_size, 5u);
    EXPECT_FALSE(st.last_error.empty());
    EXPECT_EQ(st.last_error.find(kApiKey), std::string::npos);
    EXPECT_EQ(rx.request_count(), 0u);  // nothing was sent to an unverified peer
    for (const auto& rec : stored_records(dir / "journal")) EXPECT_EQ(rec.attempts, 0);
  }
}

TEST_F(UploaderTest, ClickHouseFormatAndGzip) {
  ft::TlsReceiver rx;
  fl::Options o = options_for(rx);
  o.upload_format = fl::UploadFormat::ClickHouse;
  o.clickhouse_table = "fl.records";
  o.clickhouse_user = "ingest";
  o.upload_gzip = true;
  fl::Client c(o);
  log_numbered(c, 0, 40);
  EXPECT_EQ(c.sync_offline_queue().synced, 40u);
  const auto reqs = rx.requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_TRUE(reqs[0].gzipped);
  EXPECT_TRUE(reqs[0].gunzip_error.empty());
  EXPECT_EQ(reqs[0].target, "/ingest?query=INSERT%20INTO%20fl.records%20FORMAT%20JSONEachRow");
  EXPECT_EQ(reqs[0].header("X-ClickHouse-User"), "ingest");
  EXPECT_EQ(reqs[0].header("X-ClickHouse-Key"), kApiKey);
  EXPECT_TRUE(reqs[0].header("Authorization").empty());
  simdjson::dom::parser parser;
  const std::string first = reqs[0].body.substr(0, reqs[0].body.find('\n'));
  simdjson::dom::element row;
  ASSERT_EQ(parser.parse(first).get(row), simdjson::SUCCESS);
  std::string_view inputs;
  ASSERT_EQ(row["inputs"].get(inputs), simdjson::SUCCESS);  // a JSON text in a string
  simdjson::dom::parser inner;
  simdjson::dom::element in;
  ASSERT_EQ(inner.parse(std::string(inputs)).get(in), simdjson::SUCCESS);
  std::int64_t n = -1;
  EXPECT_EQ(in["n"].get(n), simdjson::SUCCESS);
}

TEST_F(UploaderTest, MemoryOnlyModeShipsWithoutTouchingTheDisk) {
  ft::TlsReceiver rx;
  fl::Options o = options_for(rx);
  o.enable_offline = false;
  {
    fl::Client c(o);
    log_numbered(c, 0, 100);
    EXPECT_EQ(c.sync_offline_queue().synced, 100u);
  }
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "journal"));
  EXPECT_EQ(rows_of(rx.requests()).size(), 100u);
}

TEST_F(UploaderTest, TheApiKeyAppearsNowhereButTheHeader) {
  ft::TlsReceiver rx;
  // A sloppy server that quotes the credential it was sent in its error bodies: first a
  // 500 (an attempt, and the status's last error), then a 400 (failed, with a reason).
  std::atomic<int> answered{0};
  rx.set_responder([&](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    ft::Reply r = ft::Reply::status_only(answered++ == 0 ? 500 : 400);
    r.body = "credential '" + q.header("Authorization") + "' (key " + kApiKey + ") refused";
    return r;
  });
  fl::Client c(options_for(rx));
  log_numbered(c, 0, 1);
  c.sync_offline_queue();  // 500: an attempt
  c.sync_offline_queue();  // 400: failed with a reason
  // The key did go out, in the Authorization header, so there was something to leak.
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  for (const auto& q : reqs) {
    EXPECT_EQ(q.header("Authorization"), std::string("Bearer ") + kApiKey);
    EXPECT_EQ(q.target.find(kApiKey), std::string::npos);
    EXPECT_EQ(q.body.find(kApiKey), std::string::npos);
  }
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.failed_count, 1u);
  // The 500's answer, the echoed key masked where it stood.
  EXPECT_EQ(st.last_error.rfind("HTTP 500: credential 'Bearer ***' (key ***) refused", 0), 0u)
      << st.last_error;
  EXPECT_EQ(st.last_error.find(kApiKey), std::string::npos) << st.last_error;
  c.flush();
  // The failed record keeps the 400's answer as its reason, masked the same way.
  const auto stored = stored_records(tmp_ / "journal");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].state, "failed");
  EXPECT_EQ(stored[0].last_status, 400);
  EXPECT_EQ(stored[0].reason, "HTTP 400: credential 'Bearer ***' (key ***) refused");
  for (const auto& entry : std::filesystem::directory_iterator(tmp_ / "journal")) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(kApiKey), std::string::npos) << entry.path();
  }
  const auto dump = ft::run_dump(tmp_ / "journal");
  EXPECT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_NE(dump.out.find("(key ***) refused"), std::string::npos) << dump.out;
  EXPECT_EQ((dump.out + dump.err).find(kApiKey), std::string::npos);
}
