// Tests of the flightlog-dump tool, run as a separate process on real journals: its
// NDJSON (one valid object per record, every documented field, sync order), its
// report of damaged records, its errors and exit codes, and reading while a Client
// writes the same journal.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::cat;
using fl::test::contains;
using fl::test::run_dump;
using fl::test::split_lines;
using namespace std::chrono_literals;

namespace {

// One dumped line, parsed and checked for the fields every line must have.
struct DumpedLine {
  std::string id;
  std::uint64_t seq = 0;
  std::string priority;
  std::string ts;
  std::int64_t ts_ns = 0;
  std::string type;
  std::string state;
  std::uint64_t attempts = 0;
  std::int64_t n = -1;  // inputs.n, where the test logged one
};

// "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (no std::regex: GCC 12 warns inside it under ASan).
bool is_rfc3339_nanos(std::string_view ts) {
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddddddddZ";
  if (ts.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const bool ok = kShape[i] == 'd' ? (ts[i] >= '0' && ts[i] <= '9') : ts[i] == kShape[i];
    if (!ok) return false;
  }
  return true;
}

DumpedLine parse_line(simdjson::dom::parser& parser, const std::string& line,
                      const std::string& journal_id) {
  DumpedLine d;
  simdjson::dom::object obj;
  const auto err = parser.parse(line).get(obj);
  EXPECT_EQ(err, simdjson::SUCCESS) << simdjson::error_message(err) << ": " << line;
  if (err) return d;
  std::string_view sv;
  EXPECT_EQ(obj["id"].get(sv), simdjson::SUCCESS) << line;
  d.id = sv;
  EXPECT_EQ(obj["seq"].get(d.seq), simdjson::SUCCESS) << line;
  EXPECT_EQ(obj["priority"].get(sv), simdjson::SUCCESS) << line;
  d.priority = sv;
  EXPECT_EQ(obj["ts"].get(sv), simdjson::SUCCESS) << line;
  d.ts = sv;
  EXPECT_EQ(obj["ts_ns"].get(d.ts_ns), simdjson::SUCCESS) << line;
  EXPECT_EQ(obj["type"].get(sv), simdjson::SUCCESS) << line;
  d.type = sv;
  EXPECT_EQ(obj["state"].get(sv), simdjson::SUCCESS) << line;
  d.state = sv;
  EXPECT_EQ(obj["attempts"].get(d.attempts), simdjson::SUCCESS) << line;
  simdjson::dom::object inputs, output;
  EXPECT_EQ(obj["inputs"].get(inputs), simdjson::SUCCESS) << line;
  EXPECT_EQ(obj["output"].get(output), simdjson::SUCCESS) << line;
  std::int64_t n = 0;
  if (inputs["n"].get(n) == simdjson::SUCCESS) d.n = n;

  // The id is "<journal id>-<seq>"; ts is RFC 3339 UTC with nanoseconds, and agrees
  // with ts_ns.
  EXPECT_EQ(d.id, cat(journal_id, "-", std::to_string(d.seq)));
  EXPECT_TRUE(is_rfc3339_nanos(d.ts)) << d.ts;
  std::string expected_ts;
  fd::append_rfc3339(expected_ts, d.ts_ns);
  EXPECT_EQ(d.ts, expected_ts);
  EXPECT_TRUE(d.state == "queued" || d.state == "failed") << d.state;
  EXPECT_TRUE(d.type == "prediction" || d.type == "event") << d.type;
  return d;
}

std::vector<DumpedLine> parse_all(const std::string& out, const std::string& journal_id) {
  simdjson::dom::parser parser;
  std::vector<DumpedLine> lines;
  for (const auto& line : split_lines(out)) lines.push_back(parse_line(parser, line, journal_id));
  return lines;
}

void make_private_dir(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
}

}  // namespace

TEST(Dump, PrintsEveryRecordInSyncOrderWithEveryField) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  std::string journal_id;
  std::uint64_t next = 0;
  using P = fl::Priority;
  {
    fl::Client c(fl::test::test_options(dir));
    auto s = c.schema({"n", "f"}, {"p"});
    // Interleaved priorities; n says the order they were logged in.
    const P order[] = {P::Low,      P::Normal, P::Critical, P::High, P::Low,
                       P::Critical, P::Normal, P::High,     P::Low,  P::Critical};
    std::int64_t n = 0;
    for (P p : order) {
      if (n % 2 == 0) {
        ASSERT_EQ(c.log_prediction(s, {n, 0.5}, {true}, p), fl::LogResult::Ok);
      } else {
        ASSERT_EQ(c.log_event("tick", {{"n", n}}, p), fl::LogResult::Ok);
      }
      ++n;
      c.flush();  // one commit each, so seq follows n
    }
    journal_id = c.get_offline_status().journal_id;
    next = c.get_offline_status().next_seq;
  }
  // A failed record (as the uploader leaves one), planted with raw LMDB.
  const auto rec =
      fl::test::encode_record(fd::kKindPrediction, P::High, 1'000, {}, {{"n", 99}}, {{"p", 0.0}});
  const auto failed = fd::with_failure({rec.data(), rec.size()}, 3, 503, "unavailable");
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("failed", next, {failed.data(), failed.size()});
  }

  const auto res = run_dump(dir);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.err, "");
  const auto lines = parse_all(res.out, journal_id);
  ASSERT_EQ(lines.size(), 11u) << res.out;

  // CRITICAL (n 2, 5, 9), HIGH (3, 7), NORMAL (1, 6), LOW (0, 4, 8), then failed.
  const std::vector<std::int64_t> want_n = {2, 5, 9, 3, 7, 1, 6, 0, 4, 8, 99};
  const std::vector<std::string> want_prio = {"CRITICAL", "CRITICAL", "CRITICAL", "HIGH",
                                              "HIGH",     "NORMAL",   "NORMAL",   "LOW",
                                              "LOW",      "LOW",      "HIGH"};
  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(cat("line ", std::to_string(i)));
    EXPECT_EQ(lines[i].n, want_n[i]);
    EXPECT_EQ(lines[i].priority, want_prio[i]);
    if (want_n[i] != 99) {
      EXPECT_EQ(lines[i].seq, static_cast<std::uint64_t>(want_n[i] + 1));
      EXPECT_EQ(lines[i].type, want_n[i] % 2 == 0 ? "prediction" : "event");
      EXPECT_EQ(lines[i].state, "queued");
      EXPECT_EQ(lines[i].attempts, 0u);
    } else {
      EXPECT_EQ(lines[i].seq, next);
      EXPECT_EQ(lines[i].state, "failed");
      EXPECT_EQ(lines[i].attempts, 3u);
      EXPECT_EQ(lines[i].ts, "1970-01-01T00:00:00.000001000Z");
      EXPECT_TRUE(contains(split_lines(res.out)[i], "\"last_status\":503"));
      EXPECT_TRUE(contains(split_lines(res.out)[i], "\"reason\":\"unavailable\""));
    }
  }

  // Reading in chunks of one record per transaction gives the same output.
  const auto chunked = run_dump(dir, {"--chunk", "1"});
  EXPECT_EQ(chunked.exit_code, 0) << chunked.err;
  EXPECT_EQ(chunked.out, res.out);
}

TEST(Dump, EmptyJournalPrintsNothing) {
  fl::test::TempDir tmp;
  { fl::Client c(fl::test::test_options(tmp / "j")); }
  const auto res = run_dump(tmp / "j");
  EXPECT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.out, "");
}

TEST(Dump, DamagedRecordsAreReportedAndTheOthersPrinted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  std::string journal_id;
  {
    fl::Client c(fl::test::test_options(dir));
    for (int n = 0; n < 5; ++n) ASSERT_EQ(c.log_event("e", {{"n", n}}), fl::LogResult::Ok);
    for (int n = 5; n < 7; ++n) {
      ASSERT_EQ(c.log_event("e", {{"n", n}}, fl::Priority::Low), fl::LogResult::Ok);
    }
    c.flush();
    journal_id = c.get_offline_status().journal_id;
  }
  // seq 3 (NORMAL) becomes garbage; seq 6 (LOW) keeps its shape but one value byte
  // changes, which only the checksum can tell.
  const auto recs = fl::test::read_journal(dir);
  ASSERT_EQ(recs.size(), 7u);
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("normal", 3, fl::test::as_bytes("this is not a flightlog record at all"));
    auto good = fl::test::encode_record(fd::kKindEvent, fl::Priority::Low, recs[5].ts_ns, "e",
                                        {{"n", 5}}, {});
    good.back() ^= std::byte{0x01};  // flip a bit of the value, keep the old CRC
    raw.put_seq("low", 6, {good.data(), good.size()});
  }
  const auto res = run_dump(dir);
  EXPECT_EQ(res.exit_code, 3) << res.err;
  EXPECT_TRUE(contains(res.err, "'normal' key 3")) << res.err;
  EXPECT_TRUE(contains(res.err, "'low' key 6")) << res.err;
  EXPECT_TRUE(contains(res.err, "checksum")) << res.err;
  EXPECT_TRUE(contains(res.err, "2 damaged")) << res.err;
  const auto lines = parse_all(res.out, journal_id);
  ASSERT_EQ(lines.size(), 5u) << res.out;
  const std::vector<std::int64_t> want_n = {0, 1, 3, 4, 6};  // seq 3 = n 2, seq 6 = n 5
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i].n, want_n[i]);
}

TEST(Dump, UnopenableJournalsExitWithStatusTwo) {
  fl::test::TempDir tmp;
  // Missing directory.
  auto res = run_dump(tmp / "missing");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "no journal")) << res.err;
  EXPECT_TRUE(contains(res.err, (tmp / "missing").string())) << res.err;
  EXPECT_EQ(res.out, "");

  // A data.mdb of random bytes.
  make_private_dir(tmp / "random");
  {
    std::mt19937 rng(3);
    std::ofstream out(tmp / "random" / "data.mdb", std::ios::binary);
    for (int i = 0; i < 32 * 1024; ++i) out.put(static_cast<char>(rng()));
  }
  res = run_dump(tmp / "random");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "not an LMDB")) << res.err;

  // An LMDB environment of another program.
  make_private_dir(tmp / "foreign");
  {
    fl::test::RawLmdb raw(tmp / "foreign");
    raw.put("sessions", "k", fl::test::as_bytes("v"));
  }
  res = run_dump(tmp / "foreign");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "not a flightlog journal")) << res.err;

  // A journal of a future format.
  { fl::Client c(fl::test::test_options(tmp / "future")); }
  {
    fl::test::RawLmdb raw(tmp / "future");
    const std::uint32_t v99 = 99;
    raw.put("meta", "format_version", {reinterpret_cast<const std::byte*>(&v99), 4});
  }
  res = run_dump(tmp / "future");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "format version 99")) << res.err;

  // Usage errors.
  res = fl::test::run_process({FLIGHTLOG_DUMP_PATH});
  EXPECT_EQ(res.exit_code, 1);
  res = run_dump(tmp / "future", {"--chunk", "0"});
  EXPECT_EQ(res.exit_code, 1);
}

TEST(Dump, ReadsAJournalWhileAClientWritesIt) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.journal_initial_bytes = std::size_t{1} << 20;  // the map grows while dumps read
  o.batch_max_records = 256;
  fl::Client c(o);
  const std::string journal_id = c.get_offline_status().journal_id;
  const std::string pad(300, 'z');
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> logged{0};
  std::thread writer([&] {
    auto s = c.schema({"n", "pad"}, {"p"});
    const fl::Priority prios[] = {fl::Priority::High, fl::Priority::Normal, fl::Priority::Low};
    // Bounded, so that slow dumps (sanitizers) do not let the journal grow without end;
    // the bound lies beyond the last dump's threshold, so every dump overlaps logging.
    const std::int64_t max_records = 6 * fl::test::scaled(2000);
    for (std::int64_t n = 0; !stop.load() && n < max_records; ++n) {
      if (c.log_prediction(s, {n, std::string_view(pad)}, {0.5}, prios[n % 3]) !=
          fl::LogResult::Ok) {
        ADD_FAILURE() << "log failed at " << n;
        return;
      }
      logged.store(n + 1);
      if (n % 100 == 99) std::this_thread::sleep_for(1ms);
    }
  });

  std::size_t previous = 0;
  for (int run = 0; run < 5; ++run) {
    while (logged.load() < (run + 1) * fl::test::scaled(2000)) std::this_thread::sleep_for(1ms);
    const auto res = run_dump(dir, {"--chunk", "97"});
    ASSERT_EQ(res.exit_code, 0) << res.err;
    const auto lines = parse_all(res.out, journal_id);
    if (HasFailure()) break;
    // Each set in key order; records of one producer keep their order in a set.
    std::uint64_t last_seq = 0;
    std::string last_prio;
    std::int64_t last_n = -1;
    for (const auto& l : lines) {
      if (l.priority != last_prio) {
        last_prio = l.priority;
        last_seq = 0;
        last_n = -1;
      }
      EXPECT_GT(l.seq, last_seq);
      EXPECT_GT(l.n, last_n);
      last_seq = l.seq;
      last_n = l.n;
    }
    EXPECT_GE(lines.size(), previous);  // nothing is deleted meanwhile
    previous = lines.size();
  }
  stop.store(true);
  writer.join();
  c.flush();
  const auto st = c.get_offline_status();
  EXPECT_GT(st.journal_map_bytes, std::size_t{1} << 20);
  const auto res = run_dump(dir);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(split_lines(res.out).size(), st.committed_total);
  EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(logged.load()));
}
