// Tests of the flightlog-dump tool, run as a separate process on real journals: its
// NDJSON (one valid object per record, every documented field, sync order), its
// report of damaged records, its errors and exit codes, and reading while a Client
// writes the same journal; its filters, table and CSV formats, --stats, --verify,
// --follow (a child process while a Client logs) and its progress line on a terminal.
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "selection.hpp"
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

// A journal at `dir` of `n` events ({"n": 0}, {"n": 1}, ...) of priority `p`, committed
// and closed. Returns its journal id.
std::string journal_of_events(const std::filesystem::path& dir, int n,
                              fl::Priority p = fl::Priority::Normal) {
  fl::Client c(fl::test::test_options(dir));
  for (int i = 0; i < n; ++i) EXPECT_EQ(c.log_event("e", {{"n", i}}, p), fl::LogResult::Ok);
  c.flush();
  return c.get_offline_status().journal_id;
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
  // The record of n 2 (NORMAL) becomes garbage; that of n 5 (LOW) keeps its shape but
  // one value byte changes, which only the checksum can tell. Their seqs depend on how
  // the writer's drains fell (a drain may take LOW records logged after NORMAL ones it
  // had not seen yet), so they are looked up.
  const auto recs = fl::test::read_journal(dir);
  ASSERT_EQ(recs.size(), 7u);
  const auto record_of = [&](std::int64_t n) {
    for (const auto& r : recs) {
      if (r.inputs.at(0).i == n) return r;
    }
    ADD_FAILURE() << "no record of n " << n;
    return fl::test::OwnedRecord{};
  };
  const auto garbage = record_of(2), flipped = record_of(5);
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("normal", garbage.seq, fl::test::as_bytes("this is not a flightlog record at all"));
    auto good = fl::test::encode_record(fd::kKindEvent, fl::Priority::Low, flipped.ts_ns, "e",
                                        {{"n", 5}}, {});
    good.back() ^= std::byte{0x01};  // flip a bit of the value, keep the old CRC
    raw.put_seq("low", flipped.seq, {good.data(), good.size()});
  }
  const auto res = run_dump(dir);
  EXPECT_EQ(res.exit_code, 3) << res.err;
  EXPECT_TRUE(contains(res.err, "'normal' key " + std::to_string(garbage.seq))) << res.err;
  EXPECT_TRUE(contains(res.err, "'low' key " + std::to_string(flipped.seq))) << res.err;
  EXPECT_TRUE(contains(res.err, "checksum")) << res.err;
  EXPECT_TRUE(contains(res.err, "2 damaged")) << res.err;
  const auto lines = parse_all(res.out, journal_id);
  ASSERT_EQ(lines.size(), 5u) << res.out;
  const std::vector<std::int64_t> want_n = {0, 1, 3, 4, 6};  // NORMAL, then LOW
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i].n, want_n[i]);
}

// A key that is not an 8-byte sequence number (damage, or a foreign writer) stops the
// walk of its set as damage does, with the same report and exit status, whatever the
// chunk size; it is never printed as seq 0 nor taken for the end of the set.
TEST(Dump, AKeyThatIsNotASequenceNumberIsReportedAsDamage) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const std::string journal_id = journal_of_events(dir, 4, fl::Priority::Low);
  const auto recs = fl::test::read_journal(dir);
  ASSERT_EQ(recs.size(), 4u);
  {
    // Right after the second record's key: its 8 bytes and one more.
    fl::test::RawLmdb raw(dir);
    raw.put("low", fl::test::RawLmdb::be64(recs[1].seq) + "x", fl::test::as_bytes("whatever"));
  }
  for (const char* chunk : {"1", "2", "1024"}) {
    const auto res = run_dump(dir, {"--chunk", chunk});
    EXPECT_EQ(res.exit_code, 3) << chunk << ": " << res.err;
    EXPECT_TRUE(
        contains(res.err, "cannot read the low records after seq " + std::to_string(recs[1].seq)))
        << chunk << ": " << res.err;
    EXPECT_TRUE(contains(res.err, "a key of 9 bytes, not an 8-byte sequence number")) << res.err;
    const auto lines = parse_all(res.out, journal_id);
    ASSERT_EQ(lines.size(), 2u) << chunk << ": " << res.out;
    EXPECT_EQ(lines[0].seq, recs[0].seq);
    EXPECT_EQ(lines[1].seq, recs[1].seq);
  }
  const auto verify = run_dump(dir, {"--verify", "--chunk", "1"});
  EXPECT_EQ(verify.exit_code, 3) << verify.out << verify.err;
}

// A record may carry any 64-bit timestamp; those at either end are printed like the rest
// (no filter default may stand for "no limit" and exclude one).
TEST(Dump, RecordsStampedAtEitherEndOfTimeArePrinted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const std::string journal_id = journal_of_events(dir, 3);
  const auto recs = fl::test::read_journal(dir);
  ASSERT_EQ(recs.size(), 3u);
  constexpr std::int64_t kEdges[2] = {std::numeric_limits<std::int64_t>::min(),
                                      std::numeric_limits<std::int64_t>::max()};
  {
    fl::test::RawLmdb raw(dir);
    for (std::size_t i = 0; i < 2; ++i) {
      const auto bytes = fl::test::encode_record(fd::kKindEvent, fl::Priority::Normal, kEdges[i],
                                                 "e", {{"n", recs[i].inputs.at(0).i}}, {});
      raw.put_seq("normal", recs[i].seq, {bytes.data(), bytes.size()});
    }
  }
  const auto res = run_dump(dir);
  EXPECT_EQ(res.exit_code, 0) << res.err;
  const auto lines = parse_all(res.out, journal_id);
  ASSERT_EQ(lines.size(), 3u) << res.out;
  EXPECT_EQ(lines[0].ts_ns, kEdges[0]);
  EXPECT_EQ(lines[1].ts_ns, kEdges[1]);
  // Asked for by id, too.
  const auto by_id = run_dump(dir, {"--id", lines[1].id});
  EXPECT_EQ(split_lines(by_id.out).size(), 1u) << by_id.out << by_id.err;
}

// A copy of a journal in a directory its reader may not write (LMDB's reader table,
// lock.mdb, cannot be created there) is read without the table, and left unchanged; a
// reader table that exists but cannot be written is refused.
TEST(Dump, ReadsACopyInADirectoryItCannotWrite) {
  fl::test::TempDir tmp;
  const std::string journal_id = journal_of_events(tmp / "j", 3);
  const auto copy = tmp / "copy";
  std::filesystem::create_directory(copy);
  std::filesystem::copy_file(tmp / "j" / "data.mdb", copy / "data.mdb");
  std::vector<std::string> argv = {FLIGHTLOG_DUMP_PATH, copy.string()};
  if (geteuid() == 0) {
    // Root may write anywhere: the dump runs as an unprivileged user who owns the copy.
    constexpr uid_t kNobody = 65534;
    ASSERT_EQ(chown(copy.c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(chown((copy / "data.mdb").c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(chmod(tmp.path().c_str(), 0711), 0);
    argv.insert(argv.begin(),
                {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  ASSERT_EQ(chmod(copy.c_str(), 0500), 0);
  const auto res = fl::test::run_process(argv);
  EXPECT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(parse_all(res.out, journal_id).size(), 3u) << res.out;
  EXPECT_FALSE(std::filesystem::exists(copy / "lock.mdb"));

  // With a reader table it may not write, a logger may be at work: refused, not read
  // without a slot.
  ASSERT_EQ(chmod(copy.c_str(), 0700), 0);
  std::ofstream(copy / "lock.mdb").close();
  ASSERT_EQ(chmod((copy / "lock.mdb").c_str(), 0444), 0);
  ASSERT_EQ(chmod(copy.c_str(), 0500), 0);
  const auto refused = fl::test::run_process(argv);
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_TRUE(contains(refused.err, "lock.mdb' is not writable by this user")) << refused.err;
  ASSERT_EQ(chmod(copy.c_str(), 0700), 0);  // so that TempDir can remove it
}

TEST(Dump, UnopenableJournalsExitWithStatusTwoAndNewerOnesWithFour) {
  fl::test::TempDir tmp;
  // Missing directory.
  auto res = run_dump(tmp / "missing");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "no journal")) << res.err;
  EXPECT_TRUE(contains(res.err, "does not exist")) << res.err;
  EXPECT_TRUE(contains(res.err, (tmp / "missing").string())) << res.err;
  EXPECT_EQ(res.out, "");
  for (const char* mode : {"--stats", "--verify", "--follow"}) {
    EXPECT_EQ(run_dump(tmp / "missing", {mode}).exit_code, 2) << mode;
  }

  // A directory without a journal.
  make_private_dir(tmp / "empty");
  res = run_dump(tmp / "empty");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "data.mdb is missing")) << res.err;

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

  // An empty data.mdb.
  make_private_dir(tmp / "zero");
  std::ofstream(tmp / "zero" / "data.mdb").close();
  res = run_dump(tmp / "zero");
  EXPECT_EQ(res.exit_code, 2);
  EXPECT_TRUE(contains(res.err, "data.mdb' is empty: it is damaged or not a journal")) << res.err;

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
  EXPECT_EQ(res.exit_code, 4);
  EXPECT_TRUE(contains(res.err, "format version 99")) << res.err;
  EXPECT_TRUE(contains(res.err, "newer flightlog")) << res.err;
  res = run_dump(tmp / "future", {"--stats"});
  EXPECT_EQ(res.exit_code, 4);

  // Usage errors.
  res = fl::test::run_process({FLIGHTLOG_DUMP_PATH});
  EXPECT_EQ(res.exit_code, 1);
  res = run_dump(tmp / "future", {"--chunk", "0"});
  EXPECT_EQ(res.exit_code, 1);
}

// A dump that could not be written is not a dump: with stdout on a full device, every
// mode names the failure and exits 7 (it exited 0 before).
TEST(Dump, OutputThatCannotBeWrittenExitsWithStatusSeven) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full here";
  fl::test::TempDir tmp;
  {
    fl::Client c(fl::test::test_options(tmp / "j"));
    for (int n = 0; n < 2000; ++n) ASSERT_EQ(c.log_event("e", {{"n", n}}), fl::LogResult::Ok);
  }
  // --limit=1: an output small enough to wait in stdio's buffer until the end.
  for (const char* mode : {"--format=ndjson", "--stats", "--verify", "--limit=1"}) {
    const auto res = fl::test::run_process({"/bin/sh", "-c",
                                            cat("exec '", FLIGHTLOG_DUMP_PATH, "' '",
                                                (tmp / "j").string(), "' ", mode, " > /dev/full")});
    EXPECT_EQ(res.exit_code, 7) << mode << ": " << res.err;
    EXPECT_TRUE(contains(res.err, "cannot write the output: No space left on device"))
        << mode << ": " << res.err;
  }
  EXPECT_EQ(run_dump(tmp / "j").exit_code, 0);  // the same dump to a file is fine
}

TEST(Dump, ReadsAJournalWhileAClientWritesIt) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.journal_initial_bytes = std::size_t{1} << 20;  // the map grows while dumps read
  o.batch_max_records = 256;
  fl::Client c(o);
  const std::string journal_id = c.get_offline_status().journal_id;
  // ~1 KB records: even the sanitizers' scaled-down count (6 x 333) outgrows the 1 MiB map.
  const std::string pad(1000, 'z');
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
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (logged.load() < (run + 1) * fl::test::scaled(2000) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_GE(logged.load(), (run + 1) * fl::test::scaled(2000)) << "the logging thread stalled";
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

// ---- Filters, formats, --stats, --verify, --follow, progress ----------------------------

namespace {

using P = fl::Priority;

// A journal of 12 queued records, n = 0..11 with seq = n + 1, priority n % 4 (CRITICAL,
// HIGH, NORMAL, LOW), every third an event; then two failed records planted as the
// uploader leaves them: n = 100 (HIGH, ts 1000 ns) and n = 101 (LOW, ts 2000 ns, an event
// whose name and reason hold a comma, quotes and a line break).
struct Fixture {
  std::string journal_id;
  std::uint64_t next_seq = 0;         // after the planted records
  std::vector<std::int64_t> ts_by_n;  // of n = 0..11
  std::size_t map_bytes = 0;
  static constexpr std::string_view kAwkward = "a,\"b\"\nc";
  std::string id_of_n(std::int64_t n) const {
    const std::uint64_t seq = n < 100 ? static_cast<std::uint64_t>(n) + 1 : next_seq - 102 + n;
    return cat(journal_id, "-", std::to_string(seq));
  }
};

Fixture make_fixture(const std::filesystem::path& dir) {
  Fixture f;
  {
    // Precise: the time filters below need a time per record. The default cached clock
    // may give records logged within 50 us of each other the same time.
    auto o = fl::test::test_options(dir);
    o.clock_source = fl::ClockSource::Precise;
    fl::Client c(o);
    for (std::int64_t n = 0; n < 12; ++n) {
      const auto p = static_cast<P>(n % 4);
      const auto r = n % 3 == 0 ? c.log_event("tick", {{"n", n}}, p)
                                : c.log_prediction({{"n", n}, {"x", 0.5}}, {{"p", 1.0}}, p);
      EXPECT_EQ(r, fl::LogResult::Ok);
      c.flush();  // one commit each: seq = n + 1, ts increasing
    }
    const auto st = c.get_offline_status();
    f.journal_id = st.journal_id;
    f.next_seq = st.next_seq;
    f.map_bytes = st.journal_map_bytes;
  }
  f.ts_by_n.resize(12);
  for (const auto& r : fl::test::read_journal(dir)) f.ts_by_n[r.seq - 1] = r.ts_ns;
  const auto a =
      fl::test::encode_record(fd::kKindPrediction, P::High, 1000, {}, {{"n", 100}}, {{"p", 0.0}});
  const auto b =
      fl::test::encode_record(fd::kKindEvent, P::Low, 2000, Fixture::kAwkward, {{"n", 101}}, {});
  const auto fa = fd::with_failure({a.data(), a.size()}, 3, 503, "unavailable");
  const auto fb = fd::with_failure({b.data(), b.size()}, 1, 400, "bad, \"value\"");
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("failed", f.next_seq, {fa.data(), fa.size()});
    raw.put_seq("failed", f.next_seq + 1, {fb.data(), fb.size()});
    f.next_seq += 2;
    raw.put("meta", "next_seq", fl::test::as_bytes(fl::test::RawLmdb::be64(f.next_seq)));
  }
  return f;
}

// The "n" input of each NDJSON line, in order.
std::vector<std::int64_t> ns_of(const std::string& out, const std::string& journal_id) {
  std::vector<std::int64_t> ns;
  for (const auto& l : parse_all(out, journal_id)) ns.push_back(l.n);
  return ns;
}

std::string ts_text(std::int64_t ns) {
  std::string s;
  fd::append_rfc3339(s, ns);
  return s;
}

// Parses RFC 4180 text: rows of fields (quoted fields may hold commas, quotes doubled,
// line breaks). Fails the test on text that is not RFC 4180.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  std::size_t i = 0;
  bool field_started = false;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && !field_started) {
      ++i;
      for (;;) {
        if (i >= text.size()) {
          ADD_FAILURE() << "unterminated quoted field";
          return rows;
        }
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(text[i++]);
      }
      field_started = true;
      continue;
    }
    if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      ++i;
      continue;
    }
    if (c == '\r') {
      EXPECT_TRUE(i + 1 < text.size() && text[i + 1] == '\n') << "CR without LF at " << i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      rows.push_back(std::move(row));
      row.clear();
      i += 2;
      continue;
    }
    EXPECT_NE(c, '\n') << "bare LF at " << i;
    EXPECT_NE(c, '"') << "quote inside an unquoted field at " << i;
    field.push_back(c);
    field_started = true;
    ++i;
  }
  EXPECT_TRUE(row.empty() && field.empty()) << "last row without CRLF";
  return rows;
}

// A tool started as a child process, its stdout and stderr going to files, stopped by a
// signal.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (tmp_ / "out").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (tmp_ / "err").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) std::abort();
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Child() {
    if (pid_ > 0) stop(SIGKILL);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  std::string out() const { return fl::test::read_whole_file(tmp_ / "out"); }
  std::string err() const { return fl::test::read_whole_file(tmp_ / "err"); }

  // Waits until stdout holds `n` lines; false after `timeout`.
  bool wait_for_lines(std::size_t n, std::chrono::milliseconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (split_lines(out()).size() < n) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  // Sends `sig` and waits; returns the exit code (128 + signal if it died of one).
  int stop(int sig) {
    kill(pid_, sig);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  fl::test::TempDir tmp_;
  pid_t pid_ = -1;
};

}  // namespace

TEST(DumpFilters, SelectByPriorityStateTimeIdAndLimit) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const Fixture f = make_fixture(dir);
  using Ns = std::vector<std::int64_t>;
  auto ns = [&](const std::vector<std::string>& args) {
    const auto res = run_dump(dir, args);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    EXPECT_EQ(res.err, "");
    return ns_of(res.out, f.journal_id);
  };
  EXPECT_EQ(ns({}), (Ns{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 100, 101}));
  // Comma lists and repeats, any letter case; failed records by their own priority.
  EXPECT_EQ(ns({"--priority", "high,low"}), (Ns{1, 5, 9, 3, 7, 11, 100, 101}));
  EXPECT_EQ(ns({"--priority", "CRITICAL", "--priority", "Normal", "--state", "queued"}),
            (Ns{0, 4, 8, 2, 6, 10}));
  EXPECT_EQ(ns({"--state", "failed"}), (Ns{100, 101}));
  EXPECT_EQ(ns({"--state", "failed", "--priority", "low"}), (Ns{101}));
  // Time range: since inclusive (RFC 3339), until exclusive (Unix ns).
  EXPECT_EQ(ns({"--since", ts_text(f.ts_by_n[4]), "--until", std::to_string(f.ts_by_n[8])}),
            (Ns{4, 5, 6, 7}));
  EXPECT_EQ(ns({"--since", "1970-01-01", "--until", "1970-01-01T00:00:00.000002Z"}), (Ns{100}));
  EXPECT_EQ(ns({"--since", "1970-01-01T00:00:00.000001+00:00", "--until",
                "1970-01-01T01:00:00.000002001+01:00"}),
            (Ns{100, 101}));
  // Ids, in sync order whatever the order given; limit.
  EXPECT_EQ(ns({"--id", f.id_of_n(101), "--id", f.id_of_n(9), "--id", f.id_of_n(0)}),
            (Ns{0, 9, 101}));
  EXPECT_EQ(ns({"--id", cat(f.journal_id, "-999")}), Ns{});
  EXPECT_EQ(ns({"--limit", "5"}), (Ns{0, 4, 8, 1, 5}));
  EXPECT_EQ(ns({"--priority", "low", "--limit", "4"}), (Ns{3, 7, 11, 101}));

  // Bad values are usage errors that name the option.
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {{"--priority", "urgent"}, "unknown priority 'urgent'"},
      {{"--state", "gone"}, "--state"},
      {{"--since", "yesterday"}, "--since"},
      {{"--until", "2026-02-30"}, "--until"},
      {{"--id", "nodash"}, "--id"},
      {{"--id", "0123456789abcdef-3"}, "names journal 0123456789abcdef"},
      {{"--limit", "0"}, "--limit"},
      {{"--format", "xml"}, "--format"},
  };
  for (const auto& b : bad) {
    const auto res = run_dump(dir, b.args);
    EXPECT_EQ(res.exit_code, 1) << b.args[0];
    EXPECT_TRUE(contains(res.err, b.says)) << res.err;
    EXPECT_EQ(res.out, "");
  }
}

TEST(DumpFormats, TableAlignsItsColumnsAndCsvIsRfc4180) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const Fixture f = make_fixture(dir);

  auto res = run_dump(dir, {"--format", "table"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  auto lines = split_lines(res.out);
  ASSERT_EQ(lines.size(), 15u) << res.out;  // header and 14 records
  const std::string& header = lines[0];
  ASSERT_EQ(header.rfind("ID ", 0), 0u) << header;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    SCOPED_TRACE(lines[i]);
    // Every record's id starts its row, and each column starts under its heading.
    EXPECT_EQ(lines[i].rfind(f.journal_id + "-", 0), 0u);
    for (std::string_view col : {"PRIORITY", "STATE", "TIME (UTC)", "ATT", "TYPE"}) {
      const std::size_t at = header.find(col);
      ASSERT_NE(at, std::string::npos);
      ASSERT_GT(lines[i].size(), at);
      EXPECT_NE(lines[i][at], ' ') << col;
      EXPECT_EQ(lines[i][at - 1], ' ') << col;
    }
  }
  EXPECT_TRUE(contains(lines[1], "CRITICAL  queued  " + ts_text(f.ts_by_n[0]))) << lines[1];
  EXPECT_TRUE(contains(lines[1], "event       tick {\"n\":0} -> {}")) << lines[1];
  EXPECT_TRUE(contains(lines[13], "[503: unavailable]")) << lines[13];
  // Control characters of a name cannot break a row.
  EXPECT_TRUE(contains(lines[14], "a,\"b\"?c {\"n\":101}")) << lines[14];

  res = run_dump(dir, {"--format", "csv"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  const auto rows = parse_csv(res.out);
  ASSERT_EQ(rows.size(), 15u);
  const std::vector<std::string> want_header = {
      "id",    "seq",      "priority",    "ts",     "ts_ns",  "type",  "name",
      "state", "attempts", "last_status", "reason", "inputs", "output"};
  EXPECT_EQ(rows[0], want_header);
  simdjson::dom::parser parser;
  const std::vector<std::int64_t> want_n = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 100, 101};
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    ASSERT_EQ(r.size(), 13u) << i;
    const std::int64_t n = want_n[i - 1];
    EXPECT_EQ(r[0], f.id_of_n(n));
    EXPECT_EQ(r[0], cat(f.journal_id, "-", r[1]));
    const std::int64_t ts_ns = std::stoll(r[4]);
    EXPECT_EQ(r[3], ts_text(ts_ns));
    // inputs and output are JSON texts.
    simdjson::dom::element inputs;
    ASSERT_EQ(parser.parse(r[11]).get(inputs), simdjson::SUCCESS) << r[11];
    EXPECT_EQ(std::int64_t(inputs["n"]), n);
    simdjson::dom::element output;
    ASSERT_EQ(parser.parse(r[12]).get(output), simdjson::SUCCESS) << r[12];
    EXPECT_TRUE(output.is_object());
  }
  // The awkward event survives quoting: name and reason read back byte for byte.
  const auto& awkward = rows[14];
  EXPECT_EQ(awkward[5], "event");
  EXPECT_EQ(awkward[6], Fixture::kAwkward);
  EXPECT_EQ(awkward[7], "failed");
  EXPECT_EQ(awkward[8], "1");
  EXPECT_EQ(awkward[9], "400");
  EXPECT_EQ(awkward[10], "bad, \"value\"");
  EXPECT_EQ(rows[1][9], "");  // no last status on a queued record

  // NDJSON is the default, by name too.
  EXPECT_EQ(run_dump(dir, {"--format", "ndjson"}).out, run_dump(dir).out);
}

TEST(DumpStats, CountsPerPriorityAndStateTimesAndSpace) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const Fixture f = make_fixture(dir);

  auto res = run_dump(dir, {"--stats", "--format", "json"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  simdjson::dom::parser parser;
  simdjson::dom::element s;
  ASSERT_EQ(parser.parse(res.out).get(s), simdjson::SUCCESS) << res.out;
  EXPECT_EQ(std::string_view(s["journal_id"]), f.journal_id);
  EXPECT_EQ(std::uint64_t(s["next_seq"]), f.next_seq);
  EXPECT_FALSE(bool(s["filtered"]));
  const std::uint64_t want_queued[4] = {3, 3, 3, 3};
  const std::uint64_t want_failed[4] = {0, 1, 0, 1};
  std::uint64_t bytes = 0;
  for (std::size_t p = 0; p < 4; ++p) {
    const auto name = fl::to_string(static_cast<P>(p));
    simdjson::dom::element r = s["records"][name];
    EXPECT_EQ(std::uint64_t(r["queued"]), want_queued[p]) << name;
    EXPECT_EQ(std::uint64_t(r["failed"]), want_failed[p]) << name;
    EXPECT_GT(std::uint64_t(r["bytes"]), 0u) << name;
    bytes += std::uint64_t(r["bytes"]);
  }
  EXPECT_EQ(std::uint64_t(s["records"]["total"]["queued"]), 12u);
  EXPECT_EQ(std::uint64_t(s["records"]["total"]["failed"]), 2u);
  EXPECT_EQ(std::uint64_t(s["records"]["total"]["bytes"]), bytes);
  EXPECT_EQ(std::uint64_t(s["damaged"]), 0u);
  EXPECT_EQ(std::int64_t(s["oldest_ts_ns"]), 1000);
  EXPECT_EQ(std::string_view(s["oldest_ts"]), "1970-01-01T00:00:00.000001000Z");
  EXPECT_EQ(std::int64_t(s["newest_ts_ns"]), f.ts_by_n[11]);
  EXPECT_EQ(std::uint64_t(s["map_bytes"]), f.map_bytes);
  const std::uint64_t page = s["page_bytes"];
  const std::uint64_t used = s["pages_used"];
  const std::uint64_t free_pages = s["pages_free"];
  EXPECT_GE(page, 512u);
  EXPECT_GT(used, 4u);  // two meta pages, DB roots and leaves
  EXPECT_LT(free_pages, used);
  EXPECT_EQ(used + std::uint64_t(s["pages_never_used"]), f.map_bytes / page);
  EXPECT_EQ(std::uint64_t(s["file_bytes"]), std::filesystem::file_size(dir / "data.mdb"));

  // Filters apply to the record figures.
  res = run_dump(dir, {"--stats", "--format", "json", "--state", "failed"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  ASSERT_EQ(parser.parse(res.out).get(s), simdjson::SUCCESS) << res.out;
  EXPECT_TRUE(bool(s["filtered"]));
  EXPECT_EQ(std::uint64_t(s["records"]["total"]["queued"]), 0u);
  EXPECT_EQ(std::uint64_t(s["records"]["total"]["failed"]), 2u);
  EXPECT_EQ(std::int64_t(s["newest_ts_ns"]), 2000);

  // Plain text for people.
  res = run_dump(dir, {"--stats"});
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_TRUE(contains(res.out, cat("journal id    ", f.journal_id, "\n"))) << res.out;
  EXPECT_TRUE(contains(res.out, cat("next seq      ", std::to_string(f.next_seq), "\n")));
  bool high_row = false;
  for (const auto& l : split_lines(res.out)) {
    if (l.rfind("  HIGH ", 0) != 0) continue;
    high_row = true;
    std::istringstream in(l);
    std::string name, queued, failed;
    in >> name >> queued >> failed;
    EXPECT_EQ(queued, "3");
    EXPECT_EQ(failed, "1");
  }
  EXPECT_TRUE(high_row) << res.out;
  EXPECT_TRUE(contains(res.out, "oldest        1970-01-01T00:00:00.000001000Z\n")) << res.out;
  EXPECT_TRUE(contains(res.out, "pages         used ")) << res.out;

  EXPECT_EQ(run_dump(dir, {"--stats", "--format", "csv"}).exit_code, 1);
  EXPECT_EQ(run_dump(dir, {"--stats", "--verify"}).exit_code, 1);
}

TEST(DumpVerify, ReportsEveryDamagedRecordByKeyAndExitsThree) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const Fixture f = make_fixture(dir);
  auto res = run_dump(dir, {"--verify"});
  EXPECT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.out, cat("verified 14 record(s) of journal ", f.journal_id, " at '", dir.string(),
                         "': 14 ok, 0 damaged\n"));

  {
    fl::test::RawLmdb raw(dir);
    // normal key 3 (n 2): garbage; low key 4 (n 3): one flipped bit; high key 2 (n 1):
    // a sound LOW record in HIGH's set; critical key 99: a sound record past next_seq.
    raw.put_seq("normal", 3, fl::test::as_bytes("not a record"));
    auto flipped =
        fl::test::encode_record(fd::kKindEvent, P::Low, f.ts_by_n[3], "tick", {{"n", 3}}, {});
    flipped.back() ^= std::byte{0x10};
    raw.put_seq("low", 4, {flipped.data(), flipped.size()});
    const auto low = fl::test::encode_record(fd::kKindPrediction, P::Low, 5, {}, {{"n", 1}}, {});
    raw.put_seq("high", 2, {low.data(), low.size()});
    const auto late =
        fl::test::encode_record(fd::kKindPrediction, P::Critical, 5, {}, {{"n", 99}}, {});
    raw.put_seq("critical", 99, {late.data(), late.size()});
  }
  res = run_dump(dir, {"--verify"});
  EXPECT_EQ(res.exit_code, 3) << res.err;
  EXPECT_TRUE(contains(res.out, cat("set 'normal' key 3 (id ", f.journal_id, "-3)"))) << res.out;
  EXPECT_TRUE(contains(res.out, "set 'low' key 4")) << res.out;
  EXPECT_TRUE(contains(res.out, "checksum")) << res.out;
  EXPECT_TRUE(contains(res.out, "set 'high' key 2")) << res.out;
  EXPECT_TRUE(contains(res.out, "priority is LOW")) << res.out;
  EXPECT_TRUE(contains(res.out, "set 'critical' key 99")) << res.out;
  EXPECT_TRUE(contains(res.out, "next_seq")) << res.out;
  EXPECT_TRUE(contains(res.out, "15 record(s)")) << res.out;
  EXPECT_TRUE(contains(res.out, ": 11 ok, 4 damaged\n")) << res.out;
  // The selection applies: only the failed set is sound.
  EXPECT_EQ(run_dump(dir, {"--verify", "--state", "failed"}).exit_code, 0);
}

TEST(DumpFollow, PrintsRecordsAsTheyAreCommittedUntilSigterm) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  fl::Client c(fl::test::test_options(dir));
  const std::string journal_id = c.get_offline_status().journal_id;
  auto log = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t n = from; n < to; ++n) {
      ASSERT_EQ(c.log_event("e", {{"n", n}}, static_cast<P>(n % 4)), fl::LogResult::Ok);
    }
    c.flush();
  };
  log(0, 3);
  Child all({FLIGHTLOG_DUMP_PATH, dir.string(), "--follow", "--interval", "10"});
  Child high({FLIGHTLOG_DUMP_PATH, dir.string(), "--follow", "--interval", "10", "--priority",
              "high", "--format", "csv"});
  ASSERT_TRUE(all.wait_for_lines(3, 10s)) << all.out() << all.err();
  log(3, 10);
  ASSERT_TRUE(all.wait_for_lines(10, 10s)) << all.out() << all.err();
  log(10, 20);
  ASSERT_TRUE(all.wait_for_lines(20, 10s)) << all.out() << all.err();
  ASSERT_TRUE(high.wait_for_lines(1 + 5, 10s)) << high.out() << high.err();  // header + 5
  EXPECT_EQ(all.stop(SIGTERM), 0) << all.err();
  EXPECT_EQ(high.stop(SIGINT), 0) << high.err();
  EXPECT_EQ(all.err(), "");

  // Each record once, the first three in sync order, then in commit order per poll.
  auto ns = ns_of(all.out(), journal_id);
  ASSERT_EQ(ns.size(), 20u) << all.out();
  EXPECT_EQ(ns[0], 0);
  std::sort(ns.begin(), ns.end());
  for (std::int64_t n = 0; n < 20; ++n) EXPECT_EQ(ns[static_cast<std::size_t>(n)], n);
  const auto rows = parse_csv(high.out());
  ASSERT_EQ(rows.size(), 6u);
  for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][2], "HIGH");
}

TEST(DumpProgress, DrawsOnATerminalOnlyAndClearsItsLine) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kRecords = 70'000;  // beyond one redraw (every 65536 records)
  {
    fl::Client c(fl::test::blocking_options(dir));
    for (std::int64_t n = 0; n < kRecords; ++n) {
      ASSERT_EQ(c.log_event("e", {{"n", n}}), fl::LogResult::Ok);
    }
    c.flush();
  }
  // Not a terminal: the same plain dump as on the terminal below prints only the
  // records, and no progress line.
  const auto res = run_dump(dir);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.err, "");
  EXPECT_EQ(split_lines(res.out).size(), static_cast<std::size_t>(kRecords));
  EXPECT_FALSE(contains(res.out, "flightlog-dump:"));

  // stderr on a pseudo-terminal.
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, slave, STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, master);
  const std::string dir_arg = dir.string();
  std::vector<char*> args = {const_cast<char*>(FLIGHTLOG_DUMP_PATH),
                             const_cast<char*>(dir_arg.c_str()), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(slave);
  std::string tty;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(master, buf, sizeof buf);
    if (n > 0) {
      tty.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child has closed its side
    }
  }
  close(master);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_TRUE(contains(tty, "\rflightlog-dump: 65.5K of 70.0K records (93%)")) << tty;
  EXPECT_EQ(tty.substr(tty.size() - 4), "\r\033[K");
}

// The walk both tools share, beside a live logger: between two chunks (the walk holds no
// read transaction there) the logger moves every queued record to the failed set, as
// failed uploads do. Each record is visited once: those read in the queue are skipped in
// the failed set, the others are read there.
TEST(DumpWalk, ARecordMovedToTheFailedSetDuringTheWalkIsVisitedOnce) {
  fl::test::TempDir tmp;
  fd::JournalConfig config;
  config.dir = tmp / "j";
  config.durability = fl::Durability::None;
  config.initial_map_bytes = std::size_t{1} << 20;
  auto journal = fd::Journal::open_for_writing(config);
  std::vector<std::byte> arena;
  std::vector<fd::PendingRecord> batch;
  for (int i = 0; i < 10; ++i) {
    const auto rec =
        fl::test::encode_record(fd::kKindEvent, fl::Priority::Critical, 1, "e", {{"n", i}}, {});
    batch.push_back({fl::Priority::Critical, static_cast<std::uint32_t>(arena.size()),
                     static_cast<std::uint32_t>(rec.size())});
    arena.insert(arena.end(), rec.begin(), rec.end());
  }
  ASSERT_EQ(journal->commit(arena, batch, 0).committed, 10u);

  flightlog::tools::Selection sel;
  sel.chunk = 3;
  flightlog::tools::WalkOptions opts;
  bool moved = false;
  opts.between_chunks = [&] {
    if (!moved) {
      std::vector<fd::RecordRef> all;
      for (std::uint64_t seq = 1; seq <= 10; ++seq) {
        all.push_back({fd::RecordSet::Critical, seq});
      }
      moved = journal->move_to_failed(all, 500, "the receiver failed") == 10;
    }
    return true;
  };
  std::vector<std::uint64_t> visited;
  const auto result = flightlog::tools::walk(
      *journal, sel, opts, [&](const flightlog::tools::Visited& v) { visited.push_back(v.seq); },
      [](fd::RecordSet, std::uint64_t seq, const std::string& error) {
        ADD_FAILURE() << seq << ": " << error;
      });
  EXPECT_TRUE(moved);
  EXPECT_EQ(result.selected, 10u);
  EXPECT_EQ(visited, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}
