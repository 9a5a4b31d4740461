// Tests of the public Client API: option validation, what each logging call returns
// and counts, the status, and that what is logged comes back exactly (through the
// journal and through flightlog-dump's JSON).
#include <gtest/gtest.h>
#include <lmdb.h>
#include <pthread.h>
#include <sched.h>
#include <simdjson.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <ranges>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "support/checks.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"
#include "support/write_lock.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::cat;
using fl::test::contains;
using fl::test::now_ns;
using fl::test::OwnedField;
using fl::test::OwnedRecord;
using fl::test::read_journal;
using namespace std::chrono_literals;

namespace {

constexpr const char* kApiKey = "fl-secret-7c1e0b5a9d2f4e6a8b3c";

}  // namespace

// ---- Options ------------------------------------------------------------------------------

struct BadOption {
  const char* option;  // what the error must name
  void (*spoil)(fl::Options&, const std::filesystem::path& tmp);
};

class OptionsValidation : public ::testing::TestWithParam<BadOption> {};

TEST_P(OptionsValidation, ThrowsNamingTheOptionAndCreatesNothing) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "journal");
  o.api_key = kApiKey;
  GetParam().spoil(o, tmp.path());
  try {
    fl::Client c(o);
    FAIL() << "accepted a bad " << GetParam().option;
  } catch (const fl::Error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(contains(what, GetParam().option)) << what;
    EXPECT_FALSE(contains(what, o.api_key)) << what;  // the key is never in a message
  }
  // Validation comes before anything is created on disk.
  EXPECT_FALSE(std::filesystem::exists(tmp / "journal"));
}

INSTANTIATE_TEST_SUITE_P(
    EachBadOption, OptionsValidation,
    ::testing::Values(BadOption{"batch_max_records",
                                [](fl::Options& o, auto&) { o.batch_max_records = 0; }},
                      BadOption{"batch_max_records",
                                [](fl::Options& o, auto&) {
                                  o.batch_max_records = std::size_t{1} << 40;
                                }},
                      BadOption{"max_record_bytes",
                                [](fl::Options& o, auto&) { o.max_record_bytes = 0; }},
                      BadOption{"max_record_bytes",
                                [](fl::Options& o, auto&) {
                                  o.max_record_bytes = std::size_t{10} << 20;
                                }},
                      BadOption{"max_producer_threads",
                                [](fl::Options& o, auto&) { o.max_producer_threads = 0; }},
                      BadOption{"max_producer_threads",
                                [](fl::Options& o, auto&) { o.max_producer_threads = 1'000'000; }},
                      BadOption{"offline_sync_interval",
                                [](fl::Options& o, auto&) {
                                  o.offline_sync_interval = std::chrono::seconds(0);
                                }},
                      BadOption{"offline_sync_interval",
                                [](fl::Options& o, auto&) {
                                  o.offline_sync_interval = std::chrono::seconds(-5);
                                }},
                      BadOption{"offline_sync_interval",
                                [](fl::Options& o, auto&) {
                                  o.offline_sync_interval = std::chrono::hours(24 * 365);
                                }},
                      BadOption{"offline_max_queue_size",
                                [](fl::Options& o, auto&) { o.offline_max_queue_size = SIZE_MAX; }},
                      BadOption{"journal_max_bytes",
                                [](fl::Options& o, auto&) {
                                  o.journal_initial_bytes = std::size_t{64} << 20;
                                  o.journal_max_bytes = std::size_t{32} << 20;
                                }},
                      BadOption{"journal_max_bytes",
                                [](fl::Options& o, auto&) {
                                  o.journal_max_bytes = std::size_t{1} << 50;
                                }},
                      BadOption{"journal_initial_bytes",
                                [](fl::Options& o, auto&) { o.journal_initial_bytes = 0; }},
                      BadOption{"batch_max_delay",
                                [](fl::Options& o, auto&) {
                                  o.batch_max_delay = std::chrono::microseconds(0);
                                }},
                      BadOption{"min_commit_interval",
                                [](fl::Options& o, auto&) {
                                  o.min_commit_interval = std::chrono::microseconds(-1);
                                }},
                      BadOption{"min_commit_interval",
                                [](fl::Options& o, auto&) {
                                  o.min_commit_interval = std::chrono::minutes(1);
                                }},
                      BadOption{"writer_poll_interval",
                                [](fl::Options& o,
                                   auto&) { o.writer_poll_interval = std::chrono::hours(1); }},
                      BadOption{
                          "periodic_sync_interval",
                          [](fl::Options& o,
                             auto&) { o.periodic_sync_interval = std::chrono::milliseconds(0); }},
                      BadOption{"full_policy",
                                [](fl::Options& o,
                                   auto&) { o.full_policy[2] = static_cast<fl::FullPolicy>(7); }},
                      BadOption{
                          "durability", [](fl::Options& o,
                                           auto&) { o.durability = static_cast<fl::Durability>(9); }},
                      // Endpoints are checked before anything starts.
                      BadOption{"endpoint", [](fl::Options& o,
                                               auto&) { o.endpoint = "ftp://example.invalid/v1"; }},
                      BadOption{"endpoint", [](fl::Options& o,
                                               auto&) { o.endpoint = "example.invalid/v1"; }},
                      BadOption{"endpoint", [](fl::Options& o,
                                               auto&) { o.endpoint = "http://example.invalid/v1"; }},
                      BadOption{"endpoint",
                                [](fl::Options& o, auto&) {
                                  o.endpoint = "http://example.invalid/v1";
                                  o.allow_insecure_http = true;  // loopback only
                                }},
                      BadOption{"api_key",
                                [](fl::Options& o, auto&) { o.api_key = "key\r\nX-Injected: 1"; }},
                      BadOption{"enable_offline",
                                [](fl::Options& o, auto&) { o.enable_offline = false; }},
                      BadOption{"offline_dir",
                                [](fl::Options& o, auto&) { o.offline_dir.clear(); }},
                      BadOption{"background_cpus",
                                [](fl::Options& o, auto&) {
                                  o.background_cpus = {static_cast<unsigned>(
                                      sysconf(_SC_NPROCESSORS_CONF))};  // one past the last
                                }},
                      BadOption{"background_cpus",
                                [](fl::Options& o, auto&) { o.background_cpus = {0, 1u << 20}; }},
                      // Unwritable: a path whose parent is a regular file (root ignores mode bits).
                      BadOption{"offline_dir",
                                [](fl::Options& o, const std::filesystem::path& tmp) {
                                  std::ofstream(tmp / "a-file") << "x";
                                  o.offline_dir = tmp / "a-file" / "journal";
                                }},
                      BadOption{"offline_dir",
                                [](fl::Options& o, const std::filesystem::path& tmp) {
                                  std::ofstream(tmp / "a-file") << "x";
                                  o.offline_dir = tmp / "a-file";
                                }}));

TEST(Options, DefaultsAreValid) {
  fl::test::TempDir tmp;
  fl::Options o;
  o.offline_dir = tmp / "j";
  EXPECT_NO_THROW(fl::Client c(o));
  // The default full_policy is checked by what a Client does with it: LOW drops and
  // counts in LogResults.DropPolicyAccountsForEveryRecord, CRITICAL blocks in
  // FullPolicy.BlockedProducerSleepsWhileTheWriterIsStalled (both keep the default).
}

// ---- Names --------------------------------------------------------------------------------

TEST(Names, PriorityParsingAndPrinting) {
  using P = fl::Priority;
  for (auto p : {P::Critical, P::High, P::Normal, P::Low}) {
    EXPECT_EQ(fl::parse_priority(fl::to_string(p)), p);
  }
  EXPECT_EQ(fl::to_string(P::Critical), "CRITICAL");
  EXPECT_EQ(fl::to_string(P::High), "HIGH");
  EXPECT_EQ(fl::to_string(P::Normal), "NORMAL");
  EXPECT_EQ(fl::to_string(P::Low), "LOW");
  EXPECT_EQ(fl::parse_priority("critical"), P::Critical);
  EXPECT_EQ(fl::parse_priority("hIgH"), P::High);
  EXPECT_EQ(fl::parse_priority("Normal"), P::Normal);
  EXPECT_EQ(fl::parse_priority("low"), P::Low);
  for (std::string_view bad : {"", "NORM", "LOWER", " LOW", "LOW ", "0", "urgent", "CRITICA"}) {
    EXPECT_EQ(fl::parse_priority(bad), std::nullopt) << "'" << bad << "'";
  }
  EXPECT_EQ(fl::parse_priority(std::string_view("LOW\0", 4)), std::nullopt);
}

TEST(Names, LogResultStrings) {
  EXPECT_EQ(fl::to_string(fl::LogResult::Ok), "ok");
  EXPECT_EQ(fl::to_string(fl::LogResult::QueueFull), "queue_full");
  EXPECT_EQ(fl::to_string(fl::LogResult::TooLarge), "too_large");
  EXPECT_EQ(fl::to_string(fl::LogResult::Invalid), "invalid");
  EXPECT_EQ(fl::to_string(fl::LogResult::Closed), "closed");
}

// ---- LogResult ----------------------------------------------------------------------------

TEST(LogResults, TooLargeIsRejectedAndCounted) {
  fl::test::TempDir tmp;
  fl::Client c(fl::test::test_options(tmp / "j"));
  const std::string big(20 * 1024, 'x');  // over the 16 KiB default
  const std::string_view big_view(big);
  auto s = c.schema({"text"}, {"p"});
  EXPECT_EQ(c.log_prediction({{"text", big_view}}, {{"p", 1.0}}), fl::LogResult::TooLarge);
  EXPECT_EQ(c.log_prediction(s, {big_view}, {1.0}), fl::LogResult::TooLarge);
  EXPECT_EQ(c.log_event("e", {{"text", big_view}}), fl::LogResult::TooLarge);
  // Just under the limit is fine (and spans many slots).
  const std::string_view almost = big_view.substr(0, 16 * 1024 - 100);
  EXPECT_EQ(c.log_prediction(s, {almost}, {2.0}), fl::LogResult::Ok);
  c.flush();
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.dropped.too_large, 3u);
  EXPECT_EQ(st.committed_total, 1u);
  EXPECT_EQ(st.queue_size, 1u);
  const auto recs = read_journal(tmp / "j");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].inputs.at(0).s, almost);
}

TEST(LogResults, MaxRecordBytesIsConfigurable) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.max_record_bytes = 256;
  fl::Client c(o);
  const std::string s300(300, 'y');
  EXPECT_EQ(c.log_event("e", {{"s", std::string_view(s300)}}), fl::LogResult::TooLarge);
  EXPECT_EQ(c.log_event("e", {{"s", std::string_view(s300).substr(0, 150)}}), fl::LogResult::Ok);
  EXPECT_EQ(c.get_offline_status().dropped.too_large, 1u);
}

TEST(LogResults, InvalidRecordsAreRejectedAndCounted) {
  fl::test::TempDir tmp;
  fl::Client c(fl::test::test_options(tmp / "j"));
  fl::Client other(fl::test::test_options(tmp / "other"));
  auto s = c.schema({"a", "b"}, {"p"});
  auto foreign = other.schema({"a", "b"}, {"p"});
  const std::string long_name(256, 'n');

  EXPECT_EQ(c.log_prediction(s, {1.0}, {0.5}), fl::LogResult::Invalid);             // too few
  EXPECT_EQ(c.log_prediction(s, {1.0, 2.0, 3.0}, {0.5}), fl::LogResult::Invalid);   // too many
  EXPECT_EQ(c.log_prediction(s, {1.0, 2.0}, {}), fl::LogResult::Invalid);           // no output
  EXPECT_EQ(c.log_prediction(s, {1.0, 2.0}, {0.5, 0.6}), fl::LogResult::Invalid);   // two
  EXPECT_EQ(c.log_prediction(foreign, {1.0, 2.0}, {0.5}), fl::LogResult::Invalid);  // other client
  EXPECT_EQ(c.log_prediction(fl::Schema{}, {}, {}), fl::LogResult::Invalid);        // no client
  EXPECT_EQ(c.log_event(long_name, {}), fl::LogResult::Invalid);                    // name > 255
  EXPECT_EQ(c.log_prediction({{long_name, 1.0}}, {{"p", 1.0}}), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction({{"a", 1.0}}, {{long_name, 1.0}}), fl::LogResult::Invalid);
  // However many long names a call has: four of them once summed to a small size.
  const fl::Field l{long_name, 1.0};
  EXPECT_EQ(c.log_event("e", {l, l, l, l}), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction({l, l, l, l, l, l, l}, {l}), fl::LogResult::Invalid);
  // At most 255 fields on a side.
  const std::vector<fl::Field> many(256, fl::Field{"f", 1.0});
  const std::span<const fl::Field> all(many), one = all.first(1);
  EXPECT_EQ(c.log_event("e", all), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction(all, one), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction(one, all), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction(s, {1.0, 2.0}, {0.5}), fl::LogResult::Ok);
  EXPECT_EQ(other.log_prediction(foreign, {1.0, 2.0}, {0.5}), fl::LogResult::Ok);
  c.flush();
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.dropped.invalid, 14u);
  EXPECT_EQ(st.committed_total, 1u);
  EXPECT_EQ(other.get_offline_status().dropped.invalid, 0u);

  // Names up to 255 bytes are fine, and 255 fields.
  const std::string name255(255, 'm');
  EXPECT_EQ(c.log_event(name255, {{name255, true}}), fl::LogResult::Ok);
  EXPECT_EQ(c.log_event("e", all.first(255)), fl::LogResult::Ok);
  c.flush();
  const auto recs = read_journal(tmp / "j");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].name, name255);
  EXPECT_EQ(recs[1].inputs.at(0).name, name255);
  EXPECT_EQ(recs[2].inputs.size(), 255u);
}

// A schema that outlived its client is rejected and counted on the client it is given
// (client ids are never reused, even where the new client's memory is the old one's).
TEST(LogResults, SchemaOfADestroyedClientIsRejectedAndCounted) {
  fl::test::TempDir tmp;
  fl::Schema stale;
  {
    fl::Client gone(fl::test::test_options(tmp / "gone"));
    stale = gone.schema({"a", "b"}, {"p"});
    EXPECT_EQ(gone.log_prediction(stale, {1.0, 2.0}, {0.5}), fl::LogResult::Ok);
  }
  fl::Client c(fl::test::test_options(tmp / "j"));
  const fl::Schema s = c.schema({"a", "b"}, {"p"});
  EXPECT_EQ(c.log_prediction(stale, {1.0, 2.0}, {0.5}), fl::LogResult::Invalid);
  EXPECT_EQ(c.log_prediction(s, {1.0, 2.0}, {0.5}), fl::LogResult::Ok);
  c.flush();
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.dropped.invalid, 1u);
  EXPECT_EQ(st.committed_total, 1u);
}

TEST(LogResults, BadSchemasThrow) {
  fl::test::TempDir tmp;
  fl::Client c(fl::test::test_options(tmp / "j"));
  const std::string long_name(256, 'n');
  EXPECT_THROW(c.schema({long_name}, {"p"}), fl::Error);
  EXPECT_THROW(c.schema({"a"}, {long_name}), fl::Error);
  // A name repeated within a side would be a repeated JSON key; across sides it is not.
  EXPECT_EQ(fl::test::error_of([&] {
              c.schema({"a", "b", "a"}, {"p"});
            }),
            "schema: input name \"a\" appears more than once");
  EXPECT_THROW(c.schema({"a"}, {"p", "p"}), fl::Error);
  EXPECT_NO_THROW(c.schema({"a"}, {"a"}));
  // Schemas with at most 255 names per side are accepted, empty sides too.
  EXPECT_NO_THROW(c.schema({}, {}));
  auto s = c.schema({}, {"only_output"});
  EXPECT_EQ(s.input_count(), 0u);
  EXPECT_EQ(s.output_count(), 1u);
  EXPECT_EQ(c.log_prediction(s, {}, {7}), fl::LogResult::Ok);
}

TEST(LogResults, ThreadsBeyondTheLimitAreRefused) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.max_producer_threads = 1;
  fl::Client c(o);
  EXPECT_EQ(c.log_event("main", {}), fl::LogResult::Ok);  // this thread takes the one slot
  fl::LogResult second = fl::LogResult::Ok;
  std::thread t([&] { second = c.log_event("second", {}); });
  t.join();
  EXPECT_EQ(second, fl::LogResult::Invalid);
  EXPECT_EQ(c.get_offline_status().dropped.invalid, 1u);
}

TEST(LogResults, DropPolicyAccountsForEveryRecord) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  { fl::Client create(fl::test::test_options(dir)); }
  fl::test::WriteLockHolder lock(dir);   // before the Client below starts its threads
  auto o = fl::test::test_options(dir);  // LOW keeps the default policy: Drop
  o.offline_max_queue_size = 0;
  o.batch_max_records = 100;  // the stalled writer absorbs at most two batches of it
  fl::Client c(o);
  // The writer's commits wait on the lock, so the queue certainly fills: 126 slots each,
  // a producer's share holds 32 of them, and the two batches 200.
  lock.hold();
  const std::string text(8000, 't');
  std::size_t ok = 0, full = 0;
  std::optional<fl::LogResult> unexpected;
  constexpr auto kRecords = static_cast<std::size_t>(fl::test::scaled(3000));
  for (std::size_t i = 0; i < kRecords && !unexpected; ++i) {
    const auto r = c.log_prediction({{"s", std::string_view(text)}}, {{"i", i}}, fl::Priority::Low);
    if (r != fl::LogResult::Ok && r != fl::LogResult::QueueFull) unexpected = r;
    (r == fl::LogResult::Ok ? ok : full)++;
  }
  lock.release();  // before any ASSERT can return: the Client's destructor commits
  ASSERT_FALSE(unexpected) << fl::to_string(*unexpected);
  ASSERT_TRUE(c.flush_for(30s));
  EXPECT_GT(full, 0u);
  EXPECT_GT(ok, 0u);
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.dropped.queue_full[3], full);
  EXPECT_EQ(st.dropped.queue_full[0] + st.dropped.queue_full[1] + st.dropped.queue_full[2], 0u);
  EXPECT_EQ(st.committed_total, ok);
  EXPECT_EQ(st.queue_size, ok);
  EXPECT_EQ(ok + full, kRecords);
}

// ---- Round trips ---------------------------------------------------------------------------

TEST(RoundTrip, SchemaAndNamedFormsComeBackExactly) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const std::string kilo(1024, 'k');
  const std::string_view kv(kilo);
  std::string bytes_all;  // every byte value, in a string
  for (int b = 0; b < 256; ++b) bytes_all.push_back(static_cast<char>(b));
  const std::string_view bv(bytes_all);
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

  std::vector<std::vector<OwnedField>> expected_in, expected_out;
  std::vector<fl::Priority> expected_prio;
  const std::int64_t before = now_ns();
  {
    fl::Client c(fl::test::blocking_options(dir));
    // 1. Schema form, one slot: the W1 shape.
    auto w1 = c.schema({"f1", "f2", "f3", "f4"}, {"prediction"});
    ASSERT_EQ(c.log_prediction(w1, {0.1, -2.5, 1e300, 4.0}, {0.75}), fl::LogResult::Ok);
    expected_in.push_back({{"f1", 0.1}, {"f2", -2.5}, {"f3", 1e300}, {"f4", 4.0}});
    expected_out.push_back({{"prediction", 0.75}});
    expected_prio.push_back(fl::Priority::Normal);

    // 2. Schema form, every type, multi-slot (1 KiB strings, NaN payloads, -0.0).
    auto mixed = c.schema({"d", "i", "b", "s", "k", "nan", "inf", "nz"}, {"label", "score", "bin"});
    ASSERT_EQ(c.log_prediction(mixed, {1.25, kMin, true, "hi", kv, kNaN, -kInf, -0.0},
                               {"cat", 0.5, bv}, fl::Priority::High),
              fl::LogResult::Ok);
    expected_in.push_back({{"d", 1.25},
                           {"i", kMin},
                           {"b", true},
                           {"s", "hi"},
                           {"k", kv},
                           {"nan", kNaN},
                           {"inf", -kInf},
                           {"nz", -0.0}});
    expected_out.push_back({{"label", "cat"}, {"score", 0.5}, {"bin", bv}});
    expected_prio.push_back(fl::Priority::High);

    // 3. Schema form with many fields (40 doubles: 6 slots).
    auto wide = c.schema({"x0",  "x1",  "x2",  "x3",  "x4",  "x5",  "x6",  "x7",  "x8",  "x9",
                          "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19",
                          "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29",
                          "x30", "x31", "x32", "x33", "x34", "x35", "x36", "x37", "x38", "x39"},
                         {"y"});
    ASSERT_EQ(c.log_prediction(wide, {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
                                      14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                                      28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39},
                               {false}, fl::Priority::Low),
              fl::LogResult::Ok);
    std::vector<OwnedField> wide_in;
    for (int i = 0; i < 40; ++i) wide_in.emplace_back(cat("x", std::to_string(i)), fl::Value(i));
    expected_in.push_back(wide_in);
    expected_out.push_back({{"y", false}});
    expected_prio.push_back(fl::Priority::Low);

    // 4. Named form, every type, multi-slot.
    ASSERT_EQ(c.log_prediction({{"user", "u-17"},
                                {"age", 42},
                                {"premium", false},
                                {"essay", kv},
                                {"ratio", 2.0 / 3.0},
                                {"unsigned", 4'000'000'000u}},
                               {{"p", 0.999}, {"bytes", bv}}, fl::Priority::Critical),
              fl::LogResult::Ok);
    expected_in.push_back({{"user", "u-17"},
                           {"age", 42},
                           {"premium", false},
                           {"essay", kv},
                           {"ratio", 2.0 / 3.0},
                           {"unsigned", std::int64_t{4'000'000'000}}});
    expected_out.push_back({{"p", 0.999}, {"bytes", bv}});
    expected_prio.push_back(fl::Priority::Critical);

    // 5. An event (fields count as inputs).
    ASSERT_EQ(c.log_event("model_reloaded", {{"version", 3}, {"path", "/m/v3"}}),
              fl::LogResult::Ok);
    expected_in.push_back({{"version", 3}, {"path", "/m/v3"}});
    expected_out.push_back({});
    expected_prio.push_back(fl::Priority::Normal);
    c.flush();
  }
  const std::int64_t after = now_ns();

  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 5u);
  // Sync order: CRITICAL (4), HIGH (2), NORMAL (1, 5), LOW (3).
  const std::vector<std::size_t> order = {3, 1, 0, 4, 2};
  for (std::size_t k = 0; k < recs.size(); ++k) {
    const auto& r = recs[k];
    const std::size_t i = order[k];
    SCOPED_TRACE(cat("record ", std::to_string(i + 1)));
    ASSERT_EQ(r.error, "");
    EXPECT_EQ(r.priority, expected_prio[i]);
    EXPECT_EQ(r.set, static_cast<fd::RecordSet>(expected_prio[i]));
    EXPECT_EQ(r.kind, i == 4 ? fd::kKindEvent : fd::kKindPrediction);
    EXPECT_EQ(r.name, i == 4 ? "model_reloaded" : "");
    EXPECT_EQ(r.inputs, expected_in[i]);
    EXPECT_EQ(r.outputs, expected_out[i]);
    // Wall-clock stamps taken on the hot path (TSC-derived): within the test's window.
    EXPECT_GE(r.ts_ns, before - 50'000'000);
    EXPECT_LE(r.ts_ns, after + 50'000'000);
    EXPECT_EQ(r.attempts, 0);
  }
  // Sequence numbers follow commit order: all five, unique.
  std::set<std::uint64_t> seqs;
  for (const auto& r : recs) seqs.insert(r.seq);
  EXPECT_EQ(seqs, (std::set<std::uint64_t>{1, 2, 3, 4, 5}));
}

// The span and range forms, for fields known only at run time, store the same records
// as the braced-list forms, and check counts the same way.
TEST(RoundTrip, RunTimeFormsMatchTheBracedForms) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  // Names as a model's metadata would give them: owned strings, count known at run time.
  const std::vector<std::string> feature_names = {"f1", "f2", "f3", "f4", "f5", "f6", "f7"};
  const std::array<std::string_view, 1> output_names = {"score"};
  std::vector<fl::Value> row(feature_names.size(), 0.0);
  std::vector<fl::Value> out(1, 0.0);
  {
    fl::Client c(fl::test::blocking_options(dir));
    const fl::Schema s = c.schema(feature_names, output_names);
    EXPECT_EQ(s.input_count(), 7u);
    EXPECT_EQ(s.output_count(), 1u);
    for (std::size_t i = 0; i < row.size(); ++i) row[i] = 0.5 * static_cast<double>(i);
    out[0] = 0.25;
    ASSERT_EQ(c.log_prediction(s, row, out, fl::Priority::High), fl::LogResult::Ok);
    // One value short: rejected and counted, like the braced form.
    ASSERT_EQ(c.log_prediction(s, std::span<const fl::Value>(row).first(6), out),
              fl::LogResult::Invalid);
    const std::vector<fl::Field> in_fields = {{"user", "u-1"}, {"age", 30}};
    const std::array<fl::Field, 1> out_fields = {fl::Field{"p", 0.9}};
    ASSERT_EQ(c.log_prediction(in_fields, out_fields, fl::Priority::Critical), fl::LogResult::Ok);
    ASSERT_EQ(c.log_event("reload", in_fields, fl::Priority::Low), fl::LogResult::Ok);
    c.flush();
    EXPECT_EQ(c.get_offline_status().dropped.invalid, 1u);
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 3u);
  std::vector<OwnedField> expected_row;
  for (std::size_t i = 0; i < feature_names.size(); ++i) {
    expected_row.emplace_back(feature_names[i], fl::Value(0.5 * static_cast<double>(i)));
  }
  EXPECT_EQ(recs[0].priority, fl::Priority::Critical);
  EXPECT_EQ(recs[0].inputs, (std::vector<OwnedField>{{"user", "u-1"}, {"age", 30}}));
  EXPECT_EQ(recs[0].outputs, (std::vector<OwnedField>{{"p", 0.9}}));
  EXPECT_EQ(recs[1].priority, fl::Priority::High);
  EXPECT_EQ(recs[1].inputs, expected_row);
  EXPECT_EQ(recs[1].outputs, (std::vector<OwnedField>{{"score", 0.25}}));
  EXPECT_EQ(recs[2].priority, fl::Priority::Low);
  EXPECT_EQ(recs[2].kind, fd::kKindEvent);
  EXPECT_EQ(recs[2].name, "reload");
  EXPECT_EQ(recs[2].inputs, (std::vector<OwnedField>{{"user", "u-1"}, {"age", 30}}));
}

// Names made afresh by the range itself (a transform view's strings die after each
// step) are copied at registration, so the records carry them intact.
TEST(RoundTrip, SchemaNamesFromAViewThatMakesThemAreKept) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const std::vector<int> ids = {0, 1, 2};
  const auto names = ids | std::views::transform([](int i) {
                       return "a_rather_long_feature_name_" + std::to_string(i);
                     });
  {
    fl::Client c(fl::test::blocking_options(dir));
    const fl::Schema s = c.schema(names, std::array<std::string_view, 1>{"y"});
    ASSERT_EQ(c.log_prediction(s, {1.0, 2.0, 3.0}, {4.0}), fl::LogResult::Ok);
    c.flush();
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].inputs, (std::vector<OwnedField>{{"a_rather_long_feature_name_0", 1.0},
                                                     {"a_rather_long_feature_name_1", 2.0},
                                                     {"a_rather_long_feature_name_2", 3.0}}));
}

TEST(RoundTrip, AwkwardStringsAndNonFiniteDoublesThroughTheDump) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const std::string controls = [] {
    std::string s;
    for (int c = 0; c < 0x20; ++c) s.push_back(static_cast<char>(c));
    s.push_back('\x7f');
    return s;
  }();
  const std::string R = "\xEF\xBF\xBD";
  {
    fl::Client c(fl::test::test_options(dir));
    ASSERT_EQ(c.log_prediction({{"quote\"name", "say \"hi\"\\"},
                                {"ctl", std::string_view(controls)},
                                {"bad", "\xC0\xAF|\xED\xA0\x80|\xFF|\x80|\xE2\x82"},
                                {"ok_utf8", "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"},
                                {"nan", std::numeric_limits<double>::quiet_NaN()},
                                {"pinf", std::numeric_limits<double>::infinity()},
                                {"ninf", -std::numeric_limits<double>::infinity()},
                                {"\xFF\xFE", 1}},
                               {{"p", -0.0}}),
              fl::LogResult::Ok);
    ASSERT_EQ(c.log_event("ev\n\"t\"", {{"x", std::numeric_limits<double>::denorm_min()}},
                          fl::Priority::Low),
              fl::LogResult::Ok);
    c.flush();
  }
  const auto res = fl::test::run_dump(dir);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  const auto lines = fl::test::split_lines(res.out);
  ASSERT_EQ(lines.size(), 2u) << res.out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(lines[0]).get(doc), simdjson::SUCCESS) << lines[0];
  simdjson::dom::object in = doc["inputs"];
  EXPECT_EQ(std::string_view(in["quote\"name"]), "say \"hi\"\\");
  EXPECT_EQ(std::string_view(in["ctl"]), controls);
  const std::string bad_expected = cat(R, R, "|", R, R, R, "|", R, "|", R, "|", R, R);
  EXPECT_EQ(std::string_view(in["bad"]), bad_expected);
  EXPECT_EQ(std::string_view(in["ok_utf8"]), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  EXPECT_EQ(std::string_view(in["nan"]), "NaN");
  EXPECT_EQ(std::string_view(in["pinf"]), "Infinity");
  EXPECT_EQ(std::string_view(in["ninf"]), "-Infinity");
  EXPECT_EQ(std::int64_t(in[cat(R, R)]), 1);
  // -0.0 keeps its sign in the text (simdjson itself reads "-0" as the integer 0).
  EXPECT_TRUE(contains(lines[0], "\"output\":{\"p\":-0")) << lines[0];

  ASSERT_EQ(parser.parse(lines[1]).get(doc), simdjson::SUCCESS) << lines[1];
  EXPECT_EQ(std::string_view(doc["type"]), "event");
  EXPECT_EQ(std::string_view(doc["name"]), "ev\n\"t\"");
  EXPECT_EQ(std::string_view(doc["priority"]), "LOW");
  EXPECT_EQ(double(doc["inputs"]["x"]), std::numeric_limits<double>::denorm_min());
}

// ---- Status, flush ---------------------------------------------------------------------------

TEST(Status, ReportsQueueCountsAndJournalFacts) {
  fl::test::TempDir tmp;
  fl::Client c(fl::test::test_options(tmp / "j"));
  auto st = c.get_offline_status();
  EXPECT_EQ(st.queue_size, 0u);
  EXPECT_EQ(st.next_seq, 1u);
  EXPECT_EQ(st.committed_total, 0u);
  EXPECT_EQ(st.journal_id.size(), 16u);  // 64 random bits in hex
  EXPECT_EQ(st.journal_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_FALSE(st.last_sync_time.has_value());

  const int counts[4] = {3, 2, 1, 4};
  for (int p = 0; p < 4; ++p) {
    for (int i = 0; i < counts[p]; ++i) {
      ASSERT_EQ(c.log_event("e", {{"i", i}}, static_cast<fl::Priority>(p)), fl::LogResult::Ok);
    }
  }
  ASSERT_TRUE(c.flush_for(10s));
  st = c.get_offline_status();
  EXPECT_EQ(st.queue_size, 10u);
  EXPECT_EQ(st.queue_size_by_priority, (std::array<std::size_t, 4>{3, 2, 1, 4}));
  EXPECT_EQ(st.in_memory, 0u);
  EXPECT_EQ(st.failed_count, 0u);
  EXPECT_EQ(st.committed_total, 10u);
  EXPECT_EQ(st.next_seq, 11u);
  EXPECT_EQ(st.synced_total, 0u);
  EXPECT_EQ(st.journal_map_bytes, std::size_t{64} << 20);  // the default initial size
  EXPECT_GT(st.journal_used_bytes, 0u);
  EXPECT_LE(st.journal_used_bytes, st.journal_map_bytes);
  const fl::DropCounts none{};
  EXPECT_EQ(st.dropped.queue_full, none.queue_full);
  EXPECT_EQ(st.dropped.too_large + st.dropped.invalid + st.dropped.closed +
                st.dropped.journal_full + st.dropped.journal_error + st.dropped.cleaned_up,
            0u);
  // No endpoint: syncing does nothing.
  EXPECT_EQ(st.connection_state, "disabled");
  const auto sync = c.sync_offline_queue();
  EXPECT_EQ(sync.synced, 0u);
  EXPECT_EQ(sync.failed, 0u);
}

TEST(Status, FlushWaitsForEverythingLoggedBefore) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.writer_poll_interval = std::chrono::milliseconds(200);  // a sleepy writer
  o.batch_max_delay = std::chrono::milliseconds(100);
  fl::Client c(o);
  for (int round = 1; round <= 5; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_EQ(c.log_event("e", {{"i", i}}), fl::LogResult::Ok);
    if (round % 2 == 0) {
      c.flush();
    } else {
      ASSERT_TRUE(c.flush_for(10s));
    }
    EXPECT_EQ(c.get_offline_status().committed_total, static_cast<std::uint64_t>(round * 100));
  }
  // A flush with nothing to do returns too.
  EXPECT_TRUE(c.flush_for(10s));
  // A timeout past the steady clock's range waits like flush(); it does not wrap around
  // to a deadline already past.
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(c.log_event("e", {{"i", i}}), fl::LogResult::Ok);
  EXPECT_TRUE(c.flush_for(std::chrono::milliseconds::max()));
  EXPECT_EQ(c.get_offline_status().committed_total, std::uint64_t{5 * 100 + 1000});
}

// Records the writer has drained into a batch but cannot commit yet are still counted:
// another process holds the journal's LMDB write lock, so the commit waits for it.
TEST(Status, RecordsWaitingInTheWritersBatchAreCounted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  { fl::Client create(fl::test::test_options(dir)); }
  fl::test::WriteLockHolder lock(dir);  // before the Client below starts its threads
  {
    fl::Client c(fl::test::test_options(dir));
    lock.hold();
    // Three slots each: in_memory counts queued records in slots (300) and records in
    // the writer's batches one by one, so it reads 100 only once all are in a batch.
    const std::string pad(150, 'p');
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(c.log_event("e", {{"s", std::string_view(pad)}}), fl::LogResult::Ok);
    }
    auto st = c.get_offline_status();
    for (const auto deadline = std::chrono::steady_clock::now() + 10s;
         st.in_memory != 100 && std::chrono::steady_clock::now() < deadline;
         st = c.get_offline_status()) {
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(st.committed_total, 0u);
    EXPECT_EQ(st.in_memory, 100u);
    EXPECT_EQ(st.queue_size, 100u);
    lock.release();
    ASSERT_TRUE(c.flush_for(10s));
    st = c.get_offline_status();
    EXPECT_EQ(st.committed_total, 100u);
    EXPECT_EQ(st.in_memory, 0u);
    EXPECT_EQ(st.queue_size, 100u);
  }
}

// The voluntary context switches of thread `tid` of this process so far: each one is
// the thread blocking in the kernel (a sleep), never a spin or a sched_yield().
static long voluntary_switches(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) return std::stol(line.substr(24));
  }
  ADD_FAILURE() << "no voluntary_ctxt_switches for thread " << tid;
  return 0;
}

static double cpu_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// A CRITICAL producer (Block policy) behind a writer stalled for 1.5 s: nothing is
// dropped, and while it waits the thread sleeps rather than spinning on the core the
// writer needs.
TEST(FullPolicy, BlockedProducerSleepsWhileTheWriterIsStalled) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  { fl::Client create(fl::test::test_options(dir)); }
  fl::test::WriteLockHolder lock(dir);
  auto o = fl::test::test_options(dir);
  o.batch_max_records = 100;       // the writer absorbs little, so the queue fills
  constexpr int kRecords = 20000;  // far more than a queue (4096 per producer) and the writer hold
  {
    fl::Client c(o);
    lock.hold();
    std::atomic<int> ok{0};
    std::atomic<pid_t> tid{0};
    std::thread producer([&] {
      tid = static_cast<pid_t>(syscall(SYS_gettid));
      for (int i = 0; i < kRecords; ++i) {
        if (c.log_event("e", {{"i", i}}, fl::Priority::Critical) == fl::LogResult::Ok) ++ok;
      }
    });
    // It fills the queue within milliseconds (tens under a sanitizer) and then waits:
    // wait until its count of logged records stops growing short of the end (unchanged
    // over five looks 20 ms apart), then watch it for 800 ms of that wait.
    int last = -1;
    int unchanged = 0;
    for (const auto deadline = std::chrono::steady_clock::now() + 30s;
         unchanged < 5 && std::chrono::steady_clock::now() < deadline;) {
      std::this_thread::sleep_for(20ms);
      const int now = ok.load();
      unchanged = now > 0 && now < kRecords && now == last ? unchanged + 1 : 0;
      last = now;
    }
    if (unchanged < 5) {
      lock.release();
      producer.join();
      FAIL() << "the producer never blocked: " << ok.load() << " of " << kRecords << " logged";
    }
    clockid_t cpu_clock{};
    const bool have_clock = pthread_getcpuclockid(producer.native_handle(), &cpu_clock) == 0;
    const double cpu0 = have_clock ? cpu_seconds(cpu_clock) : 0;
    const long switches0 = voluntary_switches(tid.load());
    std::this_thread::sleep_for(800ms);
    const double cpu1 = have_clock ? cpu_seconds(cpu_clock) : 0;
    const long switches1 = voluntary_switches(tid.load());
    const int ok_while_stalled = ok.load();
    lock.release();
    producer.join();
    EXPECT_TRUE(have_clock);
    EXPECT_LT(ok_while_stalled, kRecords);  // it was blocked: the queue was full
    EXPECT_EQ(ok.load(), kRecords);
    // It slept (a yield is not a voluntary switch, and a spin is no switch at all) and so
    // left the core: spinning on an idle core would take about all of the 0.8 s.
    EXPECT_GE(switches1 - switches0, 100);
    EXPECT_LT(cpu1 - cpu0, 0.4) << "cpu seconds while blocked for 0.8 s";
    ASSERT_TRUE(c.flush_for(10s));
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(kRecords));
    EXPECT_EQ(st.dropped.queue_full[0], 0u);
  }
}

// ---- min_commit_interval ---------------------------------------------------------------------

// Records logged a few at a time, every 2 ms, are committed in batches no closer together
// than the interval, and still committed without anyone flushing.
TEST(CommitInterval, TrickledRecordsAreCommittedNoMoreOftenThanTheInterval) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.min_commit_interval = 100ms;
  fl::Client c(o);
  const auto start = std::chrono::steady_clock::now();
  int logged = 0;
  while (std::chrono::steady_clock::now() - start < 800ms) {
    ASSERT_EQ(c.log_event("e", {{"i", logged}}), fl::LogResult::Ok);
    ++logged;
    std::this_thread::sleep_for(2ms);
  }
  // Everything is committed within an interval or two of the last record, unflushed.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.get_offline_status().committed_total < static_cast<std::uint64_t>(logged) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(logged));
  // The first batch goes at once, each later one at least 100 ms after the one before.
  EXPECT_GE(st.commits_total, 2u);
  EXPECT_LE(st.commits_total, static_cast<std::uint64_t>(1 + elapsed / 100ms));
  // The scenario held: enough records, arriving apart, that committing each as the writer
  // found it would have broken the bound above many times over.
  EXPECT_GE(logged, 100);
}

// flush() and the destructor commit at once, however long the interval.
TEST(CommitInterval, FlushAndTheDestructorDoNotWaitForIt) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.min_commit_interval = 10s;  // the longest allowed
  const auto start = std::chrono::steady_clock::now();
  {
    fl::Client c(o);
    for (int round = 1; round <= 3; ++round) {
      ASSERT_EQ(c.log_event("e", {{"round", round}}), fl::LogResult::Ok);
      ASSERT_TRUE(c.flush_for(5s)) << "round " << round;
      const auto st = c.get_offline_status();
      EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(round));
      EXPECT_EQ(st.commits_total, static_cast<std::uint64_t>(round));
    }
    ASSERT_EQ(c.log_event("e", {{"round", 4}}), fl::LogResult::Ok);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(read_journal(tmp / "j").size(), 4u);
}

TEST(Status, DestructorCommitsWithoutFlush) {
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.writer_poll_interval = std::chrono::milliseconds(500);
  {
    fl::Client c(o);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(c.log_event("e", {{"i", i}}), fl::LogResult::Ok);
  }
  EXPECT_EQ(read_journal(tmp / "j").size(), 1000u);
}

// ---- flightlog's own threads ------------------------------------------------------------------

namespace {

// The CPUs a thread of this process may run on, as /proc/self/task/<tid>/status lists them.
std::string cpus_allowed_list(const std::string& tid) {
  const std::string status = fl::test::read_whole_file("/proc/self/task/" + tid + "/status");
  const std::string key = "Cpus_allowed_list:";
  const auto at = status.find(key);
  if (at == std::string::npos) return "?";
  const auto begin = status.find_first_not_of(" \t", at + key.size());
  return status.substr(begin, status.find('\n', begin) - begin);
}

// Thread name -> thread id, for this process's threads named fl-*.
std::map<std::string, std::string> flightlog_thread_ids() {
  std::map<std::string, std::string> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::string name = fl::test::read_whole_file(task.path() / "comm");
    if (!name.empty() && name.back() == '\n') name.pop_back();
    if (name.rfind("fl-", 0) == 0) out[name] = task.path().filename();
  }
  return out;
}

// Thread name -> Cpus_allowed_list, for this process's threads named fl-*.
std::map<std::string, std::string> flightlog_threads() {
  auto out = flightlog_thread_ids();
  for (auto& [name, tid] : out) tid = cpus_allowed_list(tid);
  return out;
}

}  // namespace

TEST(Threads, BackgroundCpusPinEveryThreadOfTheClientAndLeaveTheCallersSetAlone) {
  cpu_set_t before;
  ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof before, &before), 0);
  if (CPU_COUNT(&before) < 2) GTEST_SKIP() << "needs a process allowed on 2 CPUs";
  int last = -1;  // the highest CPU the caller may use: not the whole set, so pinning shows
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &before)) last = c;
  }
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.endpoint = "https://127.0.0.1:9/v1";  // never reached: auto-sync is off
  o.offline_auto_sync = false;
  o.background_cpus = {static_cast<unsigned>(last)};
  {
    fl::Client c(o);
    const auto threads = flightlog_threads();
    const std::string pinned = std::to_string(last);
    const std::map<std::string, std::string> want{
        {"fl-commit", pinned}, {"fl-drain", pinned}, {"fl-io", pinned}, {"fl-upload", pinned}};
    EXPECT_EQ(threads, want);
    cpu_set_t after;
    ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&before, &after)) << "the constructor left its caller pinned";
    ASSERT_EQ(c.log_event("e", {{"i", 1}}), fl::LogResult::Ok);
    c.flush();
    EXPECT_EQ(c.get_offline_status().committed_total, 1u);
  }
  EXPECT_TRUE(flightlog_threads().empty());  // all joined with the client

  o.background_cpus.clear();  // the default: threads run wherever the caller may
  fl::Client c(o);
  const auto unpinned = flightlog_threads();
  ASSERT_EQ(unpinned.size(), 4u);  // fl-commit, fl-drain, fl-io, fl-upload
  for (const auto& [name, cpus] : unpinned) {
    EXPECT_EQ(cpus, cpus_allowed_list(std::to_string(syscall(SYS_gettid)))) << name;
  }
}

// Every thread of a client is SCHED_BATCH, so on waking it never preempts a caller's
// thread; the caller's own policy is left as it was.
TEST(Threads, EveryThreadOfTheClientYieldsOnWakeupAndTheCallersPolicyStays) {
  const int caller_policy = sched_getscheduler(0);
  fl::test::TempDir tmp;
  auto o = fl::test::test_options(tmp / "j");
  o.endpoint = "https://127.0.0.1:9/v1";  // never reached: auto-sync is off
  o.offline_auto_sync = false;
  fl::Client c(o);
  const auto threads = flightlog_thread_ids();
  ASSERT_EQ(threads.size(), 4u);
  for (const auto& [name, tid] : threads) {
    EXPECT_EQ(sched_getscheduler(static_cast<pid_t>(std::stol(tid))), SCHED_BATCH) << name;
  }
  EXPECT_EQ(sched_getscheduler(0), caller_policy);
  ASSERT_EQ(c.log_event("e", {{"i", 1}}), fl::LogResult::Ok);
  c.flush();
  EXPECT_EQ(c.get_offline_status().committed_total, 1u);
}

// ---- The api_key stays in memory -------------------------------------------------------------

TEST(Secrets, ApiKeyIsNeverWrittenToTheJournal) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  // A real receiver that quotes the credential it was sent in its error bodies: the
  // first request gets a 500 (an attempt, with its reason, on every record), the rest
  // a 400 (each record moved to failed with the answer as its reason). So the key has
  // ways into the journal besides the options: the reasons the records keep.
  fl::test::TlsReceiver rx;
  std::mutex seen_mu;
  std::vector<std::string> authorizations;
  rx.set_responder([&](const fl::test::ReceivedRequest& q) -> std::optional<fl::test::Reply> {
    std::size_t seen = 0;
    {
      std::lock_guard lock(seen_mu);
      authorizations.push_back(q.header("Authorization"));
      seen = authorizations.size();
    }
    auto r = fl::test::Reply::status_only(seen == 1 ? 500 : 400);
    r.body = cat("refused credential '", q.header("Authorization"), "'");
    return r;
  });
  auto o = fl::test::test_options(dir);
  o.api_key = kApiKey;
  o.endpoint = rx.url();
  o.ca_file = fl::test::ca_file_in(tmp.path());
  o.offline_auto_sync = false;
  constexpr int kRecords = 100;
  {
    fl::Client c(o);
    for (int i = 0; i < kRecords; ++i) {
      ASSERT_EQ(c.log_prediction({{"i", i}}, {{"p", 0.5}}), fl::LogResult::Ok);
    }
    c.flush();
    EXPECT_EQ(c.sync_offline_queue().synced, 0u);  // 500: an attempt on each
    EXPECT_EQ(c.sync_offline_queue().failed, static_cast<std::size_t>(kRecords));  // 400s
    EXPECT_EQ(c.get_offline_status().failed_count, static_cast<std::size_t>(kRecords));
    c.flush();
    (void)c.cleanup_offline_queue(std::chrono::days{1});
  }
  rx.stop();
  // The key did leave, in its header, and the server's answers quoted it.
  ASSERT_GE(authorizations.size(), 2u);
  for (const auto& a : authorizations) EXPECT_EQ(a, cat("Bearer ", kApiKey));
  {
    fl::Client c(o);  // reopen, too
    c.log_event("again", {});
  }
  std::size_t files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    ++files;
    const std::string bytes = fl::test::read_whole_file(e.path());
    EXPECT_FALSE(contains(bytes, kApiKey)) << e.path();
    EXPECT_FALSE(contains(bytes, "fl-secret")) << e.path();
  }
  EXPECT_GE(files, 3u);
  const auto dump = fl::test::run_dump(dir);
  EXPECT_EQ(dump.exit_code, 0);
  EXPECT_FALSE(contains(dump.out + dump.err, kApiKey));
  // The failed records are there with the server's answer, the key masked in it.
  const auto failed = fl::test::run_dump(dir, {"--state", "failed"});
  EXPECT_EQ(failed.exit_code, 0) << failed.err;
  EXPECT_EQ(fl::test::split_lines(failed.out).size(), static_cast<std::size_t>(kRecords));
  EXPECT_TRUE(contains(failed.out, "HTTP 400: refused credential 'Bearer ***'")) << failed.out;
  EXPECT_FALSE(contains(failed.out, "fl-secret"));
}
