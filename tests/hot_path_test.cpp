// Tests of the hot path's memory and shortcuts: the HotArena that holds what a call
// reads (placement, fallback to malloc, one arena per client, unmapped with it), the
// named form's ShapeMemo (remembered shapes are logged as implicit schemas), the two
// clock sources, Cached (the default) and Precise, and the queue-state hint the hot path
// prefetches. ShapeMemo and the clocks must be invisible in what the journal holds: the
// same names, values and order as the plain path, and times that stay within the call's
// window. The hint must name what an enqueue writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "hot_path/hot_arena.hpp"
#include "hot_path/producers.hpp"
#include "hot_path/shape_memo.hpp"
#include "support/checks.hpp"
#include "support/journal_read.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::cat;
using fl::test::now_ns;
using fl::test::OwnedField;
using fl::test::read_journal;
using namespace std::chrono_literals;

// ---- HotArena ------------------------------------------------------------------------------

namespace {
// Where `p` lies in `arena`'s mapping (the arena's header starts it), in bytes.
std::ptrdiff_t offset_in(const fd::HotArena* arena, const void* p) {
  return static_cast<const char*>(p) - reinterpret_cast<const char*>(arena);
}
struct ArenaDeleter {
  void operator()(fd::HotArena* a) const noexcept { fd::HotArena::destroy(a); }
};
}  // namespace

// Small objects fill the first huge page in the order they are made, large ones come
// after it, each 64-byte aligned, and what the arena has no room for comes from malloc.
TEST(HotArena, SmallObjectsShareTheFirstHugePageLargeOnesFollowAndOverflowGoesToMalloc) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  std::unique_ptr<fd::HotArena, ArenaDeleter> arena(fd::HotArena::create(4 * kMiB));
  ASSERT_NE(arena, nullptr);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(arena.get()) % fd::HotArena::kHugePage, 0u)
      << "the arena starts on a huge-page boundary";
  const fd::HotArena::Scope scope(arena.get());
  void* small1 = fd::hot_alloc(100);
  void* small2 = fd::hot_alloc(1);
  void* large = fd::hot_alloc(3 * kMiB);
  void* small3 = fd::hot_alloc(fd::HotArena::kSmallMax);
  void* overflow = fd::hot_alloc(2 * kMiB);  // 1 MiB left after `large`
  for (void* p : {small1, small2, large, small3, overflow}) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  }
  for (void* p : {small1, small2, large, small3}) {
    EXPECT_EQ(fd::HotArena::owner_of(p), arena.get());
  }
  EXPECT_GT(offset_in(arena.get(), small1), 0);
  EXPECT_EQ(offset_in(arena.get(), small2), offset_in(arena.get(), small1) + 128);
  EXPECT_LT(offset_in(arena.get(), small3) + fd::HotArena::kSmallMax, fd::HotArena::kHugePage);
  EXPECT_EQ(offset_in(arena.get(), large), static_cast<std::ptrdiff_t>(fd::HotArena::kHugePage));
  EXPECT_EQ(fd::HotArena::owner_of(overflow), nullptr);
  std::memset(overflow, 1, 2 * kMiB);
  fd::hot_free(overflow);  // really freed: the sanitizer builds see a leak or a bad free
  fd::hot_free(small1);    // arena memory: nothing to do, it goes with the arena
  std::memset(small1, 2, 100);
}

// Once the first huge page is full, small objects go after it like large ones.
TEST(HotArena, SmallObjectsSpillPastAFullFirstPage) {
  std::unique_ptr<fd::HotArena, ArenaDeleter> arena(fd::HotArena::create(fd::HotArena::kHugePage));
  ASSERT_NE(arena, nullptr);
  const fd::HotArena::Scope scope(arena.get());
  std::ptrdiff_t last = 0;
  for (int i = 0; i < 40; ++i) {  // 40 x 64 KiB = 2.5 MiB
    void* p = fd::hot_alloc(fd::HotArena::kSmallMax);
    ASSERT_EQ(fd::HotArena::owner_of(p), arena.get()) << "allocation " << i;
    last = offset_in(arena.get(), p);
  }
  EXPECT_GE(last, static_cast<std::ptrdiff_t>(fd::HotArena::kHugePage));
}

// hot_alloc uses the innermost scope's arena; a scope of nullptr, or none, means malloc.
TEST(HotArena, ScopesNestAndRestoreTheOuterArena) {
  std::unique_ptr<fd::HotArena, ArenaDeleter> arena(fd::HotArena::create(0));
  ASSERT_NE(arena, nullptr);
  void* before = fd::hot_alloc(64);
  EXPECT_EQ(fd::HotArena::owner_of(before), nullptr);
  fd::hot_free(before);
  {
    const fd::HotArena::Scope outer(arena.get());
    {
      const fd::HotArena::Scope inner(nullptr);
      void* p = fd::hot_alloc(64);
      EXPECT_EQ(fd::HotArena::owner_of(p), nullptr);
      fd::hot_free(p);
    }
    EXPECT_EQ(fd::HotArena::owner_of(fd::hot_alloc(64)), arena.get());
  }
  void* after = fd::hot_alloc(64);
  EXPECT_EQ(fd::HotArena::owner_of(after), nullptr);
  fd::hot_free(after);
}

// Every client maps one arena and unmaps it when it goes, also when its constructor
// fails after the arena was made (here: a second client on a journal the first owns).
TEST(HotArena, EachClientMapsOneAndUnmapsItWhenDestroyedOrWhenItsConstructorThrows) {
  fl::test::TempDir dir;
  const std::size_t before = fd::HotArena::live_count();
  {
    fl::Client first(fl::test::test_options(dir.path()));
    EXPECT_EQ(fd::HotArena::live_count(), before + 1);
    EXPECT_EQ(first.log_prediction({{"x", 1.0}}, {{"p", 2.0}}), fl::LogResult::Ok);
    EXPECT_THROW(fl::Client second(fl::test::test_options(dir.path())), fl::Error);
    EXPECT_EQ(fd::HotArena::live_count(), before + 1);
  }
  EXPECT_EQ(fd::HotArena::live_count(), before);
}

// ---- ShapeMemo on its own ------------------------------------------------------------------

// Two names of equal length that differ in one byte, at any position, for every length
// the memo keeps: never taken for one another.
TEST(ShapeMemo, NamesDifferingInAnyOneByteNeverMatch) {
  for (std::size_t len = 1; len <= fd::ShapeMemo::kMaxNameBytes; ++len) {
    const std::string base(len, 'a');
    fd::ShapeMemo memo;
    const fl::Field learned[] = {{base, 1.0}};
    ASSERT_TRUE(fd::ShapeMemo::eligible(learned, 1, nullptr, 0));
    memo.remember(7, learned, 1, nullptr, 0);
    EXPECT_EQ(memo.find(learned, 1, nullptr, 0).schema_id, 7) << "length " << len;
    for (std::size_t pos = 0; pos < len; ++pos) {
      std::string other = base;
      other[pos] = 'b';
      const fl::Field call[] = {{other, 1.0}};
      EXPECT_EQ(memo.find(call, 1, nullptr, 0).schema_id, 0)
          << "length " << len << ", byte " << pos;
    }
    const std::string longer = base + "a";
    const fl::Field call[] = {{std::string_view(longer).substr(0, len - 1), 1.0}};
    EXPECT_EQ(memo.find(call, 1, nullptr, 0).schema_id, 0) << "a prefix of length " << len - 1;
  }
}

TEST(ShapeMemo, SplitBetweenInputsAndOutputsIsPartOfTheShape) {
  fd::ShapeMemo memo;
  const fl::Field abc[] = {{"a", 1.0}, {"b", 2.0}, {"c", 3.0}};
  memo.remember(1, abc, 2, abc + 2, 1);  // in {a, b}, out {c}
  EXPECT_EQ(memo.find(abc, 2, abc + 2, 1).schema_id, 1);
  EXPECT_EQ(memo.find(abc, 1, abc + 1, 2).schema_id, 0);  // in {a}, out {b, c}
  EXPECT_EQ(memo.find(abc, 3, nullptr, 0).schema_id, 0);
  EXPECT_EQ(memo.find(abc, 2, nullptr, 0).schema_id, 0);
}

TEST(ShapeMemo, LongNamesAndWideShapesAreNotKept) {
  const std::string name17(fd::ShapeMemo::kMaxNameBytes + 1, 'n');
  const fl::Field long_name[] = {{name17, 1.0}};
  EXPECT_FALSE(fd::ShapeMemo::eligible(long_name, 1, nullptr, 0));
  std::vector<fl::Field> wide;
  for (std::size_t i = 0; i <= fd::ShapeMemo::kMaxFields; ++i) wide.emplace_back("x", 1.0);
  EXPECT_FALSE(fd::ShapeMemo::eligible(wide.data(), wide.size(), nullptr, 0));
  EXPECT_TRUE(fd::ShapeMemo::eligible(wide.data(), wide.size() - 1, nullptr, 0));
}

TEST(ShapeMemo, LearnsAtMostItsCapacityAndKeepsWhatItLearned) {
  fd::ShapeMemo memo;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < fd::ShapeMemo::kShapes; ++i)
    names.push_back(cat("s", std::to_string(i)));
  for (std::size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(memo.learning());
    const fl::Field f[] = {{names[i], 0.0}};
    memo.remember(static_cast<std::uint16_t>(100 + i), f, 1, nullptr, 0);
  }
  EXPECT_FALSE(memo.learning());
  for (std::size_t i = names.size(); i-- > 0;) {  // every one, in any order
    const fl::Field f[] = {{names[i], 0.0}};
    EXPECT_EQ(memo.find(f, 1, nullptr, 0).schema_id, 100 + i);
  }
}

// ---- Named form through the Client ---------------------------------------------------------

// More shapes than a memo holds, from several threads, with names of every length around
// the memo's limits, values of every type, and a caller that rewrites one name buffer in
// place between calls: the journal holds every record with exactly its names and values.
TEST(NamedForm, EveryShapeComesBackWithItsOwnNames) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr int kThreads = 3;
  constexpr int kShapes = static_cast<int>(fd::ShapeMemo::kShapes) + 5;
  constexpr int kRounds = 40;
  std::vector<std::vector<OwnedField>> expected_in[kThreads], expected_out[kThreads];
  {
    fl::Client c(fl::test::blocking_options(dir));
    auto producer = [&](int t) {
      char buffer[16];  // one name, rewritten before each call at the same address
      for (int round = 0; round < kRounds; ++round) {
        for (int s = 0; s < kShapes; ++s) {
          // Shape s: an input named by a buffer whose bytes depend on s (lengths 1-16,
          // differing from the other shapes' in the middle), a second input of 15-17
          // characters, and an output whose side depends on s.
          const std::size_t len = 1 + static_cast<std::size_t>(s) % 16;
          std::memset(buffer, 'm', sizeof buffer);
          buffer[len / 2] = static_cast<char>('A' + s);
          const std::string_view first(buffer, len);
          const std::string second = std::string(15 + s % 3, 'q');
          const std::int64_t tag = t * 1'000'000 + round * 1000 + s;
          fl::LogResult r;
          if (s % 2 == 0) {
            r = c.log_prediction({{first, tag}, {second, 0.5 * s}}, {{"p", s % 4 == 0}});
            expected_out[t].push_back({{"p", s % 4 == 0}});
          } else {
            r = c.log_prediction({{first, tag}}, {{second, 0.5 * s}, {"label", "x"}});
            expected_out[t].push_back({{second, 0.5 * s}, {"label", "x"}});
          }
          ASSERT_EQ(r, fl::LogResult::Ok);
          if (s % 2 == 0) {
            expected_in[t].push_back({{std::string(first), tag}, {second, 0.5 * s}});
          } else {
            expected_in[t].push_back({{std::string(first), tag}});
          }
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(producer, t);
    for (auto& th : threads) th.join();
    c.flush();
  }

  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), static_cast<std::size_t>(kThreads * kShapes * kRounds));
  // Within a thread, records keep their order; the first input's value says whose.
  std::size_t next[kThreads] = {};
  for (const auto& r : recs) {
    ASSERT_EQ(r.error, "");
    ASSERT_FALSE(r.inputs.empty());
    ASSERT_EQ(r.inputs[0].type, fl::Value::Type::Int);
    const auto t = static_cast<std::size_t>(r.inputs[0].i / 1'000'000);
    ASSERT_LT(t, static_cast<std::size_t>(kThreads));
    const std::size_t k = next[t]++;
    ASSERT_LT(k, expected_in[t].size());
    SCOPED_TRACE(cat("thread ", std::to_string(t), ", record ", std::to_string(k)));
    EXPECT_EQ(r.inputs, expected_in[t][k]);
    EXPECT_EQ(r.outputs, expected_out[t][k]);
  }
}

// max_record_bytes judges a named-form call by its named form, whether or not its shape
// is remembered: the same call gets the same answer on its first and its tenth time.
TEST(NamedForm, SizeLimitJudgesTheNamedFormWhicheverFormTheRecordTakes) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.max_record_bytes = 64;  // one slot
  const std::string big(60, 'x');
  {
    fl::Client c(o);
    for (int i = 0; i < 10; ++i) {
      // Named: 16 + (2 + 9 + 8) * 2 + (2 + 5 + 8) = 69 bytes, over 64 (the schema form
      // would take 16 + 8 + 24 = 48).
      EXPECT_EQ(c.log_prediction({{"feature_a", 1.0}, {"feature_b", 2.0}}, {{"score", 0.5}}),
                fl::LogResult::TooLarge)
          << "call " << i;
      // Named: 16 + (2 + 1 + 8) * 4 = 60 bytes: fits.
      EXPECT_EQ(c.log_prediction({{"a", 1.0}, {"b", 2.0}, {"c", 3.0}}, {{"d", i}}),
                fl::LogResult::Ok)
          << "call " << i;
      // A string: named 16 + 2 + 1 + 4 + 60 = 83 bytes, over 64.
      EXPECT_EQ(c.log_prediction({{"s", std::string_view(big)}}, {}), fl::LogResult::TooLarge);
    }
    EXPECT_EQ(c.get_offline_status().dropped.too_large, 20u);
    c.flush();
  }
  EXPECT_EQ(read_journal(dir).size(), 10u);
}

// A record that fits as named fields but whose schema form would not (short names take
// less room than the padded tags) is still accepted, with its names.
TEST(NamedForm, ARecordThatFitsOnlyAsNamedFieldsIsAccepted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.max_record_bytes = 1024;
  // Named: 16 + (2 + 1 + 4 + n) = 1024 for n = 1001; the schema form: 16 + 8 + 4 + n.
  const std::string s(1001, 's');
  {
    fl::Client c(o);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(c.log_prediction({{"s", std::string_view(s)}}, {}), fl::LogResult::Ok) << i;
    }
    c.flush();
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& r : recs) {
    ASSERT_EQ(r.inputs.size(), 1u);
    EXPECT_EQ(r.inputs[0].name, "s");
    EXPECT_EQ(r.inputs[0].s, s);
  }
}

// ---- ClockSource::Cached -------------------------------------------------------------------

// What clock tests log and read back: 1,000 schema-form calls back to back, a pause of
// 200 ms (a cached word is refreshed meanwhile), one more call, a flush; with the wall
// times around each step.
namespace {

struct ClockRun {
  std::int64_t start = 0, burst_end = 0, mid_before = 0, mid_after = 0, end = 0;
  std::vector<fl::test::OwnedRecord> recs;
};

void log_burst_pause_and_one_more(fl::ClockSource clock, ClockRun& run) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.clock_source = clock;
  run.start = now_ns();
  {
    fl::Client c(o);
    auto s = c.schema({"i"}, {"y"});
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(c.log_prediction(s, {i}, {1.0}), fl::LogResult::Ok);
    run.burst_end = now_ns();
    std::this_thread::sleep_for(200ms);
    run.mid_before = now_ns();
    ASSERT_EQ(c.log_prediction(s, {1000}, {1.0}), fl::LogResult::Ok);
    run.mid_after = now_ns();
    c.flush();
  }
  run.end = now_ns();
  run.recs = read_journal(dir);
}

}  // namespace

// Times come from the writer's clock word: each lies between the client's start and
// the flush after it, does not go backwards within a thread, and moves on when time
// passes between calls.
TEST(CachedClock, TimesStayInTheCallWindowAndMoveOn) {
  ClockRun run;
  ASSERT_NO_FATAL_FAILURE(log_burst_pause_and_one_more(fl::ClockSource::Cached, run));
  const auto& recs = run.recs;
  ASSERT_EQ(recs.size(), 1001u);
  std::int64_t prev = 0;
  for (const auto& r : recs) {
    ASSERT_EQ(r.error, "");
    EXPECT_GE(r.ts_ns, run.start - 50'000'000);  // the TSC-to-wall conversion's own error
    EXPECT_LE(r.ts_ns, run.end + 50'000'000);
    // The clock word never goes back; the conversion's once-a-second re-anchoring may
    // move a converted time back by its correction (microseconds).
    EXPECT_GE(r.ts_ns, prev - 1'000'000) << "seq " << r.seq;
    prev = r.ts_ns;
  }
  // The record logged after the pause carries a time from after the pause began, not
  // the word of the burst before it, and not one from the future.
  EXPECT_GT(recs.back().ts_ns, recs.front().ts_ns + 100'000'000);
  EXPECT_LE(recs.back().ts_ns, run.mid_after + 50'000'000);
  EXPECT_GE(recs.back().ts_ns, run.mid_before - 200'000'000);
}

TEST(CachedClock, NamedFormAndEventsUseItToo) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.clock_source = fl::ClockSource::Cached;
  const std::int64_t start = now_ns();
  {
    fl::Client c(o);
    ASSERT_EQ(c.log_prediction({{"a", 1.0}}, {{"b", 2.0}}), fl::LogResult::Ok);
    ASSERT_EQ(c.log_event("reloaded", {{"v", 3}}), fl::LogResult::Ok);
    c.flush();
  }
  const std::int64_t end = now_ns();
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 2u);
  for (const auto& r : recs) {
    EXPECT_GE(r.ts_ns, start - 50'000'000);
    EXPECT_LE(r.ts_ns, end + 50'000'000);
  }
}

// ---- ClockSource::Precise ------------------------------------------------------------------

// An rdtsc per call: calls logged back to back get times of their own (the cached word
// would give most of them the same), each within its call's window.
TEST(PreciseClock, EveryCallGetsItsOwnTimeWithinItsWindow) {
  ClockRun run;
  ASSERT_NO_FATAL_FAILURE(log_burst_pause_and_one_more(fl::ClockSource::Precise, run));
  const auto& recs = run.recs;
  ASSERT_EQ(recs.size(), 1001u);
  std::vector<std::int64_t> burst;
  for (std::size_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(recs[i].error, "");
    EXPECT_GE(recs[i].ts_ns, run.start - 50'000'000);  // the TSC-to-wall conversion's own error
    EXPECT_LE(recs[i].ts_ns, run.burst_end + 50'000'000);
    burst.push_back(recs[i].ts_ns);
  }
  std::sort(burst.begin(), burst.end());
  const auto distinct = std::unique(burst.begin(), burst.end()) - burst.begin();
  EXPECT_GE(distinct, 990) << "calls logged back to back share their times";
  // The call after the pause is timed at its call: after the burst by the pause.
  EXPECT_GE(recs.back().ts_ns, run.mid_before - 50'000'000);
  EXPECT_LE(recs.back().ts_ns, run.mid_after + 50'000'000);
  EXPECT_GE(recs.back().ts_ns - recs[999].ts_ns, 150'000'000);
}

// ---- The queue-state hint ----------------------------------------------------------------

// prefetch_queue_state() loads the lines 24 and 56 bytes from the hint, where moodycamel
// keeps a producer's tail index and tail block. This reads both through the hint after
// enqueuing a different number of slots to each priority: a wrong hint, or a moodycamel
// whose layout moved them, fails here rather than silently prefetching the wrong lines.
TEST(QueueStateHint, NamesTheProducerStateEachEnqueueAdvances) {
  fd::QueueSet queues = fd::make_queue_set(2);
  fd::ProducerRegistry registry(fd::ProducerRegistry::next_id(), queues, 2, 4, nullptr);
  fd::Producer* producer = registry.local_slow();
  ASSERT_NE(producer, nullptr);
  for (std::size_t p = 0; p < 4; ++p) {
    for (std::size_t i = 0; i <= p; ++i) {
      ASSERT_TRUE(queues[p].try_enqueue(producer->token(p), fd::Slot{}));
    }
  }
  for (std::size_t p = 0; p < 4; ++p) {
    const std::uintptr_t hint = fd::ProducerRegistry::queue_state_hint(p);
    ASSERT_NE(hint, 0U) << "priority " << p;
    const auto* state = reinterpret_cast<const char*>(hint);
    std::uint64_t tail_index = 0;
    const void* tail_block = nullptr;
    std::memcpy(&tail_index, state + 24, sizeof tail_index);
    std::memcpy(&tail_block, state + 56, sizeof tail_block);
    EXPECT_EQ(tail_index, p + 1) << "priority " << p;
    EXPECT_NE(tail_block, nullptr) << "priority " << p;
  }

  // A second registry looked up on this thread takes the hint over.
  fd::QueueSet other_queues = fd::make_queue_set(2);
  fd::ProducerRegistry other(fd::ProducerRegistry::next_id(), other_queues, 2, 4, nullptr);
  const std::uintptr_t before = fd::ProducerRegistry::queue_state_hint(0);
  ASSERT_NE(other.local_slow(), nullptr);
  EXPECT_NE(fd::ProducerRegistry::queue_state_hint(0), before);
}
