// Tests of the flightlog-replay tool, run as a separate process on real journals against
// the real TLS test receiver: records go out with their original ids and the uploader's
// rendering, twice without new ids, the source journal untouched; selections; plain
// HTTP refused unless allowed for loopback; failure classes (rejected records found,
// retries, giving up, misconfiguration, an unreachable receiver); the api key only from
// the environment and never printed; copies into another journal with new ids.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using ft::cat;
using ft::contains;
using ft::split_lines;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiKey = "sk-replay-4b1d-SECRET-never-print";
constexpr std::size_t kQueued = 30;
constexpr std::size_t kFailed = 3;
constexpr std::size_t kRecords = kQueued + kFailed;

class ReplayTest : public ::testing::Test {
 protected:
  // The key reaches the tool only through its environment; set before any thread of
  // this test starts (setenv is not safe beside threads that read the environment).
  void SetUp() override {
    ASSERT_EQ(setenv("FLIGHTLOG_API_KEY", kApiKey, 1), 0);
    make_journal();
  }
  void TearDown() override { unsetenv("FLIGHTLOG_API_KEY"); }

  // kQueued records n = 0..29, priority n % 4, every fifth an event; then kFailed
  // failed records n = 100..102 (CRITICAL, NORMAL, LOW) as the uploader leaves them.
  void make_journal() {
    {
      fl::Client c(ft::test_options(dir_));
      for (std::int64_t n = 0; n < static_cast<std::int64_t>(kQueued); ++n) {
        const auto p = static_cast<fl::Priority>(n % 4);
        const auto r = n % 5 == 0 ? c.log_event("tick", {{"n", n}}, p)
                                  : c.log_prediction({{"n", n}, {"x", 0.25}}, {{"p", 1.0}}, p);
        ASSERT_EQ(r, fl::LogResult::Ok);
      }
      c.flush();
      journal_id_ = c.get_offline_status().journal_id;
      next_seq_ = c.get_offline_status().next_seq;
    }
    const fl::Priority prios[kFailed] = {fl::Priority::Critical, fl::Priority::Normal,
                                         fl::Priority::Low};
    ft::RawLmdb raw(dir_);
    for (std::size_t i = 0; i < kFailed; ++i) {
      const auto rec =
          ft::encode_record(fd::kKindPrediction, prios[i], 1000 + static_cast<std::int64_t>(i), {},
                            {{"n", 100 + static_cast<std::int64_t>(i)}}, {});
      const auto failed = fd::with_failure({rec.data(), rec.size()}, 3, 503, "unavailable");
      raw.put_seq("failed", next_seq_ + i, {failed.data(), failed.size()});
    }
    next_seq_ += kFailed;
    raw.put("meta", "next_seq", ft::as_bytes(ft::RawLmdb::be64(next_seq_)));
  }

  std::filesystem::path ca_file() { return ft::ca_file_in(tmp_.path()); }

  ft::ProcessResult replay(const std::vector<std::string>& args) {
    std::vector<std::string> argv{FLIGHTLOG_REPLAY_PATH, dir_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto res = ft::run_process(argv);
    EXPECT_FALSE(contains(res.out, kApiKey)) << res.out;
    EXPECT_FALSE(contains(res.err, kApiKey)) << res.err;
    return res;
  }

  // --endpoint and --ca-file for `rx`, fast backoff, then `extra`.
  ft::ProcessResult replay_to(const ft::TlsReceiver& rx, const std::vector<std::string>& extra) {
    std::vector<std::string> args{"--endpoint",        rx.url("127.0.0.1", "/ingest"),
                                  "--ca-file",         ca_file().string(),
                                  "--backoff-base-ms", "1",
                                  "--backoff-cap-ms",  "20"};
    args.insert(args.end(), extra.begin(), extra.end());
    return replay(args);
  }

  std::string id(std::uint64_t seq) const { return cat(journal_id_, "-", std::to_string(seq)); }
  // The id of the record whose input n is `n` (the writer assigns seqs by priority).
  std::string id_of_n(std::int64_t n) const {
    for (const auto& r : rendered()) {
      if (r.n == n) return r.id;
    }
    ADD_FAILURE() << "no record n = " << n;
    return {};
  }

  // What the uploader would send for each record of the journal, in sync order:
  // (id, NDJSON line, ClickHouse row).
  struct Rendered {
    std::string id;
    std::int64_t n = -1;
    bool failed = false;
    std::string ndjson;
    std::string clickhouse;
  };
  std::vector<Rendered> rendered() const {
    std::vector<Rendered> out;
    auto j = fd::Journal::open_read_only(dir_);
    for (std::size_t s = 0; s < fd::kRecordSets; ++s) {
      const auto set = static_cast<fd::RecordSet>(s);
      std::uint64_t from = 0;
      do {
        from = j->scan(set, from, 100, [&](std::uint64_t seq, std::span<const std::byte> b) {
          fd::DecodedRecord rec;
          EXPECT_EQ(fd::decode_record(b, rec), "");
          Rendered r;
          r.id = fd::record_id(j->journal_id(), seq);
          r.failed = set == fd::RecordSet::Failed;
          for (const auto& f : rec.inputs) {
            if (f.name == "n") r.n = f.value.as_int();
          }
          fd::append_record_json(r.ndjson, j->journal_id(), seq, rec, fd::RecordState::Queued,
                                 {.include_delivery_state = false});
          fd::append_clickhouse_row(r.clickhouse, j->journal_id(), seq, rec);
          out.push_back(std::move(r));
        });
      } while (from != 0);
    }
    return out;
  }

  ft::TempDir tmp_;
  std::filesystem::path dir_ = tmp_ / "journal";
  std::string journal_id_;
  std::uint64_t next_seq_ = 0;
};

// Every body line the receiver got, in order.
std::vector<std::string> lines_received(const std::vector<ft::ReceivedRequest>& requests) {
  std::vector<std::string> lines;
  for (const auto& q : requests) {
    for (auto& l : split_lines(q.body)) lines.push_back(std::move(l));
  }
  return lines;
}

std::vector<std::string> ids_received(const std::vector<ft::ReceivedRequest>& requests) {
  simdjson::dom::parser parser;
  std::vector<std::string> ids;
  for (const auto& line : lines_received(requests)) {
    simdjson::dom::element doc;
    EXPECT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    ids.emplace_back(std::string_view(doc["id"]));
  }
  return ids;
}

// A loopback port where nothing listens (a receiver's, after it stopped).
std::uint16_t closed_port() {
  ft::TlsReceiver gone;
  const std::uint16_t port = gone.port();
  gone.stop();
  return port;
}

}  // namespace

TEST_F(ReplayTest, SendsOriginalIdsAsTheUploaderWouldTwiceWithoutNewIdsSourceUntouched) {
  const auto before = ft::run_dump(dir_);
  ASSERT_EQ(before.exit_code, 0) << before.err;
  const auto want = rendered();
  ASSERT_EQ(want.size(), kRecords);

  std::vector<std::vector<std::string>> runs;
  for (int run = 0; run < 2; ++run) {
    ft::TlsReceiver rx;
    const auto res = replay_to(rx, {"--batch-records", "7"});
    ASSERT_EQ(res.exit_code, 0) << res.out << res.err;
    EXPECT_TRUE(contains(res.out, cat("selected: ", std::to_string(kRecords), " records")))
        << res.out;
    EXPECT_TRUE(contains(res.out, cat("accepted: ", std::to_string(kRecords), "\n")));
    EXPECT_TRUE(contains(res.out, "(read only, not modified)"));
    const auto reqs = rx.requests();
    ASSERT_EQ(reqs.size(), 5u);  // 33 records, 7 per batch
    for (const auto& q : reqs) {
      EXPECT_EQ(q.method, "POST");
      EXPECT_EQ(q.target, "/ingest");
      EXPECT_EQ(q.header("Authorization"), cat("Bearer ", kApiKey));
      EXPECT_EQ(q.header("Content-Type"), "application/x-ndjson");
      EXPECT_FALSE(q.header("Idempotency-Key").empty());
    }
    // Byte for byte the uploader's rendering, in sync order, failed records included.
    const auto lines = lines_received(reqs);
    ASSERT_EQ(lines.size(), kRecords);
    for (std::size_t i = 0; i < kRecords; ++i) EXPECT_EQ(lines[i], want[i].ndjson) << i;
    runs.push_back(ids_received(reqs));
  }
  // The same ids both times: a receiver that drops duplicates by id gets nothing new.
  EXPECT_EQ(runs[0], runs[1]);
  EXPECT_EQ(std::set<std::string>(runs[0].begin(), runs[0].end()).size(), kRecords);

  // The source is as it was: same records, same states.
  const auto after = ft::run_dump(dir_);
  EXPECT_EQ(after.out, before.out);
}

TEST_F(ReplayTest, ClickHouseFormatRendersRowsAndTheInsertQuery) {
  ft::TlsReceiver rx;
  const auto res = replay_to(rx, {"--format", "clickhouse", "--clickhouse-table", "db.records",
                                  "--clickhouse-user", "writer", "--limit", "4"});
  ASSERT_EQ(res.exit_code, 0) << res.out << res.err;
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/ingest?query=INSERT%20INTO%20db.records%20FORMAT%20JSONEachRow");
  EXPECT_EQ(reqs[0].header("X-ClickHouse-User"), "writer");
  EXPECT_EQ(reqs[0].header("X-ClickHouse-Key"), kApiKey);
  EXPECT_EQ(reqs[0].header("Authorization"), "");
  const auto want = rendered();
  const auto lines = lines_received(reqs);
  ASSERT_EQ(lines.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(lines[i], want[i].clickhouse);
}

TEST_F(ReplayTest, SelectsFailedRecordsPrioritiesTimesAndIds) {
  const auto want = rendered();
  auto ids_for = [&](const std::vector<std::string>& selection) {
    ft::TlsReceiver rx;
    const auto res = replay_to(rx, selection);
    EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
    return ids_received(rx.requests());
  };
  using Ids = std::vector<std::string>;
  // Failed only: the three planted records, as failed records stay in the source.
  EXPECT_EQ(ids_for({"--state", "failed"}),
            (Ids{id(next_seq_ - 3), id(next_seq_ - 2), id(next_seq_ - 1)}));
  EXPECT_EQ(ids_for({"--state", "failed", "--priority", "low,critical"}),
            (Ids{id(next_seq_ - 3), id(next_seq_ - 1)}));
  // Queued CRITICAL, the first two: n 0 and 4.
  EXPECT_EQ(ids_for({"--state", "queued", "--priority", "CRITICAL", "--limit", "2"}),
            (Ids{id_of_n(0), id_of_n(4)}));
  // Time: the failed records are stamped 1000..1002 ns.
  EXPECT_EQ(ids_for({"--until", "1001"}), (Ids{id(next_seq_ - 3)}));
  EXPECT_EQ(ids_for({"--id", id_of_n(6), "--id", id(next_seq_ - 2)}),
            (Ids{id_of_n(6), id(next_seq_ - 2)}));

  // Nothing selected: nothing sent, success.
  ft::TlsReceiver rx;
  const auto none = replay_to(rx, {"--id", id(999)});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(rx.request_count(), 0u);
  // Bad selections are usage errors.
  EXPECT_EQ(replay_to(rx, {"--priority", "urgent"}).exit_code, 1);
  EXPECT_EQ(replay_to(rx, {"--id", "0123456789abcdef-1"}).exit_code, 1);
  EXPECT_EQ(rx.request_count(), 0u);
}

TEST_F(ReplayTest, RefusesPlainHttpUnlessAllowedAndOnlyForLoopback) {
  ft::ReceiverOptions plain;
  plain.tls = false;
  ft::TlsReceiver rx(plain);
  const std::string url = rx.url("127.0.0.1", "/ingest");
  ASSERT_EQ(url.rfind("http://", 0), 0u);
  auto res = replay({"--endpoint", url});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_TRUE(contains(res.err, "--allow-insecure-http")) << res.err;
  EXPECT_EQ(rx.request_count(), 0u);

  res = replay({"--endpoint", "http://198.51.100.7/ingest", "--allow-insecure-http"});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_TRUE(contains(res.err, "loopback")) << res.err;

  res = replay({"--endpoint", url, "--allow-insecure-http"});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_EQ(ids_received(rx.requests()).size(), kRecords);

  // Where to, exactly once.
  EXPECT_EQ(replay({}).exit_code, 1);
  EXPECT_EQ(replay({"--endpoint", url, "--to-journal", (tmp_ / "copy").string()}).exit_code, 1);
}

// The Client's checks judge the delivery flags; their errors name the flag to change.
TEST_F(ReplayTest, OutOfRangeDeliveryFlagsAreNamedInTheError) {
  ft::TlsReceiver rx;
  const std::pair<const char*, const char*> cases[] = {
      {"--max-attempts", "500"},
      {"--batch-records", "500000"},
      {"--request-timeout-ms", "0"},
  };
  for (const auto& [flag, value] : cases) {
    const auto res = replay_to(rx, {flag, value});
    EXPECT_EQ(res.exit_code, 1) << flag << ": " << res.err;
    EXPECT_TRUE(contains(res.err, std::string("(set by ") + flag + ")")) << flag << ": " << res.err;
  }
  EXPECT_EQ(rx.request_count(), 0u);
}

TEST_F(ReplayTest, FindsRejectedRecordsRetriesAndNeverPrintsTheKey) {
  ft::TlsReceiver rx;
  rx.script(ft::Reply::status_only(503));  // the first post: retried
  // Record n = 6 is refused, with the key echoed back in the reason.
  rx.set_responder([](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    if (!contains(q.body, "\"n\":6,")) return std::nullopt;
    ft::Reply r;
    r.status = 422;
    r.body = cat("bad record (key ", kApiKey, ")");
    return r;
  });
  const auto res = replay_to(rx, {"--batch-records", "10"});
  EXPECT_EQ(res.exit_code, 5) << res.out << res.err;
  EXPECT_TRUE(contains(res.out, cat("accepted: ", std::to_string(kRecords - 1), "\n"))) << res.out;
  EXPECT_TRUE(contains(res.out, "rejected: 1\n")) << res.out;
  EXPECT_TRUE(contains(res.out, "(1 retry)")) << res.out;
  EXPECT_TRUE(contains(res.out, cat(id_of_n(6), "  rejected: HTTP 422: bad record (key ***)\n")))
      << res.out;
  // Every record reached the receiver; the accepted ones exactly as often as posted.
  const auto ids = ids_received(rx.requests());
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), kRecords);
}

TEST_F(ReplayTest, GivesUpAfterMaxAttemptsAndStopsOnMisconfigurationOrNoReceiver) {
  {
    ft::TlsReceiver rx;
    rx.set_responder([](const ft::ReceivedRequest&) -> std::optional<ft::Reply> {
      return ft::Reply::status_only(503);
    });
    const auto res = replay_to(rx, {"--max-attempts", "2", "--state", "failed"});
    EXPECT_EQ(res.exit_code, 5) << res.out << res.err;
    EXPECT_EQ(rx.request_count(), 2u);
    EXPECT_TRUE(contains(res.out, "gave up: 3\n")) << res.out;
    EXPECT_TRUE(contains(res.out, "gave up after 2 attempt(s): HTTP 503")) << res.out;
  }
  {
    ft::TlsReceiver rx;
    rx.script(ft::Reply::status_only(401));
    const auto res = replay_to(rx, {"--batch-records", "5"});
    EXPECT_EQ(res.exit_code, 6) << res.out << res.err;
    EXPECT_EQ(rx.request_count(), 1u);
    EXPECT_TRUE(contains(res.out, "refused the set-up")) << res.out;
    EXPECT_TRUE(contains(res.out, cat("not sent: ", std::to_string(kRecords), "\n"))) << res.out;
  }
  {
    // TLS verification is on by default: the test CA is not among the system's.
    ft::TlsReceiver rx;
    const auto res = replay({"--endpoint", rx.url("127.0.0.1", "/ingest")});
    EXPECT_EQ(res.exit_code, 6) << res.out << res.err;
    EXPECT_EQ(rx.request_count(), 0u);
  }
  {
    const std::string url = cat("https://127.0.0.1:", std::to_string(closed_port()), "/ingest");
    const auto res = replay({"--endpoint", url, "--ca-file", ca_file().string(), "--max-attempts",
                             "2", "--backoff-base-ms", "1", "--backoff-cap-ms", "5"});
    EXPECT_EQ(res.exit_code, 5) << res.out << res.err;
    EXPECT_TRUE(contains(res.out, "unreachable after 2 attempt(s)")) << res.out;
  }
}

TEST_F(ReplayTest, DryRunCountsBatchesAndSendsNothing) {
  ft::TlsReceiver rx;
  const auto res = replay_to(rx, {"--dry-run", "--batch-records", "10"});
  EXPECT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_TRUE(contains(res.out, "dry run: 33 records in 4 batches would be sent")) << res.out;
  EXPECT_EQ(rx.request_count(), 0u);
}

TEST_F(ReplayTest, CopiesIntoAnotherJournalWithNewIdsInSyncOrder) {
  const auto before = ft::run_dump(dir_);
  const auto copy_dir = tmp_ / "copy";
  auto res = replay({"--state", "failed", "--to-journal", copy_dir.string()});
  ASSERT_EQ(res.exit_code, 0) << res.out << res.err;
  auto copy = ft::read_journal(copy_dir);
  ASSERT_EQ(copy.size(), kFailed);
  std::string copy_id;
  {
    auto j = fd::Journal::open_read_only(copy_dir);
    copy_id = j->journal_id();
  }
  EXPECT_NE(copy_id, journal_id_);
  EXPECT_TRUE(contains(res.out, cat("copied: 3 into journal ", copy_id)));
  EXPECT_TRUE(contains(res.out, cat("as new ids ", copy_id, "-1 .. ", copy_id, "-3"))) << res.out;
  // Queued in their own priority, attempts reset, consecutive seqs in the source's order.
  const fd::RecordSet want_set[kFailed] = {fd::RecordSet::Critical, fd::RecordSet::Normal,
                                           fd::RecordSet::Low};
  for (std::size_t i = 0; i < kFailed; ++i) {
    EXPECT_EQ(copy[i].error, "");
    EXPECT_EQ(copy[i].set, want_set[i]);
    EXPECT_EQ(copy[i].seq, i + 1);
    EXPECT_EQ(copy[i].attempts, 0);
    ASSERT_EQ(copy[i].inputs.size(), 1u);
    EXPECT_EQ(copy[i].inputs[0].i, 100 + static_cast<std::int64_t>(i));
  }
  // The copy's dump shows no failure left on them.
  const auto copy_dump = ft::run_dump(copy_dir);
  EXPECT_FALSE(contains(copy_dump.out, "last_status")) << copy_dump.out;

  // Copying more appends after them.
  res = replay({"--priority", "high", "--to-journal", copy_dir.string()});
  ASSERT_EQ(res.exit_code, 0) << res.out << res.err;
  EXPECT_TRUE(contains(res.out, cat("as new ids ", copy_id, "-4 .. ", copy_id, "-11"))) << res.out;
  EXPECT_EQ(ft::read_journal(copy_dir).size(), kFailed + 8);  // HIGH: n 1, 5, .. 29

  // The source is untouched; a target in use by a Client, or the source itself, refused.
  EXPECT_EQ(ft::run_dump(dir_).out, before.out);
  {
    fl::Client busy(ft::test_options(tmp_ / "busy"));
    res = replay({"--to-journal", (tmp_ / "busy").string()});
    EXPECT_EQ(res.exit_code, 2) << res.out << res.err;
    EXPECT_TRUE(contains(res.err, "target journal")) << res.err;
  }
  res = replay({"--to-journal", dir_.string()});
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_TRUE(contains(res.err, "source journal itself")) << res.err;
}

TEST_F(ReplayTest, SourceErrorsHaveTheirExitCodes) {
  ft::TlsReceiver rx;
  auto res = ft::run_process({FLIGHTLOG_REPLAY_PATH, (tmp_ / "missing").string(), "--to-journal",
                              (tmp_ / "copy").string()});
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "does not exist")) << res.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "copy"));
  {
    ft::RawLmdb raw(dir_);
    const std::uint32_t v7 = 7;
    raw.put("meta", "format_version", {reinterpret_cast<const std::byte*>(&v7), 4});
  }
  res = replay_to(rx, {});
  EXPECT_EQ(res.exit_code, 4);
  EXPECT_TRUE(contains(res.err, "newer flightlog")) << res.err;
  EXPECT_EQ(rx.request_count(), 0u);
}

TEST_F(ReplayTest, SkipsDamagedRecordsSendsTheRestAndExitsThree) {
  const std::string low_id = id_of_n(3);  // LOW
  const std::uint64_t low_seq = std::stoull(low_id.substr(low_id.rfind('-') + 1));
  {
    ft::RawLmdb raw(dir_);
    raw.put_seq("low", low_seq, ft::as_bytes("garbage, not a record"));
  }
  ft::TlsReceiver rx;
  const auto res = replay_to(rx, {});
  EXPECT_EQ(res.exit_code, 3) << res.out << res.err;
  EXPECT_TRUE(contains(res.err, cat("skipped damaged record in set 'low' key ",
                                    std::to_string(low_seq), " (id ", low_id, ")")))
      << res.err;
  EXPECT_TRUE(contains(res.out, "(1 damaged record skipped)")) << res.out;
  EXPECT_TRUE(contains(res.out, cat("accepted: ", std::to_string(kRecords - 1), "\n"))) << res.out;
  const auto ids = ids_received(rx.requests());
  EXPECT_EQ(ids.size(), kRecords - 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), low_id), 0);
}
