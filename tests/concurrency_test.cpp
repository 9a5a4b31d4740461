// Concurrency tests: many producer threads, threads that come and go, concurrent
// flush() and status calls, several clients per thread. Each record carries a unique
// (thread, n) pair so the journal can be checked for loss, duplication and order.
//
// Run under TSan and ASan as well (presets tsan, asan); sizes are kept small enough
// for a few seconds there.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "support/journal_read.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::OwnedRecord;
using fl::test::read_journal;
using namespace std::chrono_literals;

namespace {

// The (thread, n) pair a record carries, in input fields "t" and "n" (any form).
struct Tag {
  std::int64_t t = -1;
  std::int64_t n = -1;
  auto operator<=>(const Tag&) const = default;
};

Tag tag_of(const OwnedRecord& r) {
  Tag tag;
  for (const auto& f : r.inputs) {
    if (f.name == "t") tag.t = f.i;
    if (f.name == "n") tag.n = f.i;
  }
  return tag;
}

fl::Priority priority_for(std::int64_t t, std::int64_t n) {
  return static_cast<fl::Priority>((n * 7 + t) % 4);
}

// The padding string of multi-slot records, derived from the tag so it can be checked.
std::string padding_for(std::int64_t t, std::int64_t n) {
  return std::string(static_cast<std::size_t>(100 + (n % 300)), static_cast<char>('a' + t % 26));
}

// Logs record n of thread t in one of four shapes (schema form, named form, named
// multi-slot, event). Returns the result.
fl::LogResult log_tagged(fl::Client& c, const fl::Schema& s, std::int64_t t, std::int64_t n) {
  const fl::Priority p = priority_for(t, n);
  switch (n % 4) {
    case 0:
      return c.log_prediction(s, {t, n, 0.5 * static_cast<double>(n)}, {n % 2 == 0}, p);
    case 1:
      return c.log_prediction({{"t", t}, {"n", n}}, {{"score", -1.5}}, p);
    case 2: {
      const std::string pad = padding_for(t, n);
      return c.log_prediction({{"t", t}, {"n", n}, {"pad", std::string_view(pad)}},
                              {{"label", "multi-slot"}}, p);
    }
    default:
      return c.log_event("tick", {{"t", t}, {"n", n}}, p);
  }
}

// Checks that the journal in `dir` holds exactly threads x per_thread tagged records,
// each once, with unique sequence numbers, in the set of its priority, with the values
// it was logged with, and in per-thread order within each priority.
void expect_every_record_once(const std::filesystem::path& dir, std::int64_t threads,
                              std::int64_t per_thread) {
  const auto recs = read_journal(dir);
  EXPECT_EQ(recs.size(), static_cast<std::size_t>(threads * per_thread));
  std::set<Tag> seen;
  std::set<std::uint64_t> seqs;
  std::map<std::pair<std::int64_t, int>, std::int64_t> last_n;  // (thread, set) -> n
  std::size_t bad = 0;
  for (const auto& r : recs) {
    if (bad > 10) break;  // one mistake tends to repeat: keep the report short
    const Tag tag = tag_of(r);
    const bool ok_decode = r.error.empty();
    const bool fresh_tag = seen.insert(tag).second;
    const bool fresh_seq = seqs.insert(r.seq).second;
    const bool in_range = tag.t >= 0 && tag.t < threads && tag.n >= 0 && tag.n < per_thread;
    const bool right_set = r.set == static_cast<fd::RecordSet>(priority_for(tag.t, tag.n)) &&
                           r.priority == priority_for(tag.t, tag.n);
    auto& last = last_n.try_emplace({tag.t, static_cast<int>(r.set)}, -1).first->second;
    const bool in_order = tag.n > last;
    last = tag.n;
    bool values_ok = true;
    if (ok_decode && in_range) {
      switch (tag.n % 4) {
        case 0:
          values_ok = r.inputs.size() == 3 && r.inputs[2].d == 0.5 * static_cast<double>(tag.n) &&
                      r.outputs.size() == 1 && r.outputs[0].b == (tag.n % 2 == 0);
          break;
        case 1:
          values_ok = r.outputs.size() == 1 && r.outputs[0].d == -1.5;
          break;
        case 2:
          values_ok = r.inputs.size() == 3 && r.inputs[2].s == padding_for(tag.t, tag.n) &&
                      r.outputs.size() == 1 && r.outputs[0].s == "multi-slot";
          break;
        default:
          values_ok = r.kind == fd::kKindEvent && r.name == "tick";
          break;
      }
    }
    if (!(ok_decode && fresh_tag && fresh_seq && in_range && right_set && in_order && values_ok)) {
      ++bad;
      ADD_FAILURE() << "seq " << r.seq << " (t " << tag.t << ", n " << tag.n << "): decode '"
                    << r.error << "', duplicate tag " << !fresh_tag << ", duplicate seq "
                    << !fresh_seq << ", in range " << in_range << ", right set " << right_set
                    << ", in order " << in_order << ", values " << values_ok;
    }
  }
}

}  // namespace

TEST(Concurrency, EightProducersEveryRecordExactlyOnce) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kThreads = 8;
  constexpr std::int64_t kPerThread = fl::test::scaled(3000);
  auto o = fl::test::blocking_options(dir);  // nothing may be dropped
  o.max_producer_threads = kThreads;
  o.offline_max_queue_size = 0;
  {
    fl::Client c(o);
    const auto s = c.schema({"t", "n", "x"}, {"even"});
    std::barrier start(kThreads);
    std::atomic<std::int64_t> failures{0};
    std::vector<std::thread> threads;
    for (std::int64_t t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();  // all at once, for contention
        for (std::int64_t n = 0; n < kPerThread; ++n) {
          if (log_tagged(c, s, t, n) != fl::LogResult::Ok) failures.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    c.flush();
    EXPECT_EQ(failures.load(), 0);
    const auto st = c.get_offline_status();
    EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(kThreads * kPerThread));
    EXPECT_EQ(st.queue_size, static_cast<std::size_t>(kThreads * kPerThread));
    EXPECT_EQ(st.next_seq, static_cast<std::uint64_t>(kThreads * kPerThread + 1));
    EXPECT_EQ(st.dropped.invalid + st.dropped.too_large + st.dropped.journal_full +
                  st.dropped.journal_error,
              0u);
  }
  expect_every_record_once(dir, kThreads, kPerThread);
}

TEST(Concurrency, ThreadsThatExitMakeRoomForNewOnes) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kAtOnce = 2;   // max_producer_threads
  constexpr std::int64_t kRounds = 10;  // 20 threads over time, never more than 2 at once
  constexpr std::int64_t kPerThread = fl::test::scaled(500);
  auto o = fl::test::blocking_options(dir);
  o.max_producer_threads = kAtOnce;
  o.offline_max_queue_size = 0;
  {
    fl::Client c(o);
    const auto s = c.schema({"t", "n", "x"}, {"even"});
    std::atomic<std::int64_t> failures{0};
    for (std::int64_t round = 0; round < kRounds; ++round) {
      std::vector<std::thread> threads;
      for (std::int64_t k = 0; k < kAtOnce; ++k) {
        const std::int64_t t = round * kAtOnce + k;
        threads.emplace_back([&, t] {
          for (std::int64_t n = 0; n < kPerThread; ++n) {
            const auto r = log_tagged(c, s, t, n);
            if (r != fl::LogResult::Ok) {
              failures.fetch_add(1);
              ADD_FAILURE() << "thread " << t << " record " << n << ": " << fl::to_string(r);
              return;
            }
          }
        });
      }
      for (auto& th : threads) th.join();
      if (round % 3 == 0) c.flush();  // sometimes the previous threads' records are still queued
    }
    c.flush();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(c.get_offline_status().dropped.invalid, 0u);
    EXPECT_EQ(c.get_offline_status().committed_total,
              static_cast<std::uint64_t>(kRounds * kAtOnce * kPerThread));
  }
  expect_every_record_once(dir, kRounds * kAtOnce, kPerThread);
}

// Runs `on_exit` from its destructor, when the thread that touched it exits: a
// program's own thread_local, made before the thread first logs, whose destructor logs.
struct LogsOnThreadExit {
  std::function<void()> on_exit;
  ~LogsOnThreadExit() {
    if (on_exit) on_exit();
  }
};
thread_local LogsOnThreadExit t_logs_on_exit;

// A thread's producers are its own until it has exited: a thread_local destructor that
// logs, after flightlog's first call on that thread, still logs through them (into a
// client it has logged to, and into one it has not), and a new thread cannot take them
// meanwhile.
TEST(Concurrency, ThreadLocalDestructorsThatLogKeepTheirThreadsProducer) {
  fl::test::TempDir tmp;
  auto o = fl::test::blocking_options(tmp / "a");
  o.max_producer_threads = 1;
  fl::Client a(o);
  fl::Client b(fl::test::blocking_options(tmp / "b"));
  std::atomic<bool> exiting{false}, other_tried{false};
  std::vector<fl::LogResult> results;  // of the exiting thread, read after it is joined
  std::thread t([&] {
    t_logs_on_exit.on_exit = [&] {
      results.push_back(a.log_event("exit", {{"n", 1}}));
      results.push_back(b.log_event("exit", {{"n", 2}}));
      exiting = true;
      while (!other_tried) std::this_thread::yield();
      results.push_back(a.log_event("exit", {{"n", 3}}));
    };
    results.push_back(a.log_event("first", {{"n", 0}}));
  });
  while (!exiting) std::this_thread::yield();
  fl::LogResult other = fl::LogResult::Ok;
  std::thread([&] { other = a.log_event("other", {{"n", 4}}); }).join();
  other_tried = true;
  t.join();
  EXPECT_EQ(other, fl::LogResult::Invalid) << "another thread took a producer still in use";
  ASSERT_EQ(results.size(), 4u);
  for (auto r : results) EXPECT_EQ(r, fl::LogResult::Ok) << fl::to_string(r);
  // Once it has exited, its producer is free for the next thread.
  std::thread([&] { EXPECT_EQ(a.log_event("after", {{"n", 5}}), fl::LogResult::Ok); }).join();
  a.flush();
  b.flush();
  EXPECT_EQ(a.get_offline_status().committed_total, 4u);
  EXPECT_EQ(b.get_offline_status().committed_total, 1u);
  EXPECT_EQ(a.get_offline_status().dropped.invalid, 1u);
}

TEST(Concurrency, ConcurrentFlushesEachWaitForWhatPrecededThem) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kProducers = 4;
  constexpr std::int64_t kPerThread = fl::test::scaled(2000);
  auto o = fl::test::blocking_options(dir);
  o.offline_max_queue_size = 0;
  o.max_producer_threads = kProducers;
  fl::Client c(o);
  const auto s = c.schema({"t", "n", "x"}, {"even"});
  // Records known to have been logged (Ok returned) by any thread. A flush() that
  // starts after reading this count must leave at least that many committed.
  std::atomic<std::uint64_t> logged{0};
  std::atomic<bool> done{false};
  std::atomic<std::int64_t> violations{0};
  auto check_flush = [&](bool timed) {
    const std::uint64_t before = logged.load();
    if (timed) {
      if (!c.flush_for(30s)) violations.fetch_add(1);
    } else {
      c.flush();
    }
    const auto st = c.get_offline_status();  // status, concurrently with everything
    if (st.committed_total < before) violations.fetch_add(1);
  };
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < kProducers; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t n = 0; n < kPerThread; ++n) {
        if (log_tagged(c, s, t, n) == fl::LogResult::Ok) logged.fetch_add(1);
        if (n % 250 == 249) check_flush(t % 2 == 0);
      }
    });
  }
  // Threads that only flush, and one that only reads the status.
  for (int k = 0; k < 3; ++k) {
    threads.emplace_back([&, k] {
      while (!done.load()) check_flush(k == 0);
    });
  }
  for (std::int64_t t = 0; t < kProducers; ++t) threads[static_cast<std::size_t>(t)].join();
  done.store(true);
  for (std::size_t i = kProducers; i < threads.size(); ++i) threads[i].join();
  c.flush();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(logged.load(), static_cast<std::uint64_t>(kProducers * kPerThread));
  EXPECT_EQ(c.get_offline_status().committed_total, logged.load());
}

TEST(Concurrency, ThreadsLoggingIntoSeveralClients) {
  // Five clients (one more than a thread's fast cache holds), four threads logging
  // into all of them in turn: every record lands in its own client's journal.
  fl::test::TempDir tmp;
  constexpr int kClients = 5;
  constexpr std::int64_t kThreads = 4;
  constexpr std::int64_t kPerThread = fl::test::scaled(400);
  std::vector<std::unique_ptr<fl::Client>> clients;
  std::vector<fl::Schema> schemas;
  for (int i = 0; i < kClients; ++i) {
    auto o = fl::test::blocking_options(tmp / fl::test::cat("j", std::to_string(i)));
    clients.push_back(std::make_unique<fl::Client>(o));
    schemas.push_back(clients.back()->schema({"t", "n", "x"}, {"even"}));
  }
  std::atomic<std::int64_t> failures{0};
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t n = 0; n < kPerThread; ++n) {
        for (int i = 0; i < kClients; ++i) {
          const auto ii = static_cast<std::size_t>(i);
          if (log_tagged(*clients[ii], schemas[ii], t, n) != fl::LogResult::Ok) {
            failures.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  // A schema is only valid with the client that made it.
  EXPECT_EQ(clients[0]->log_prediction(schemas[1], {0, 0, 0.0}, {true}), fl::LogResult::Invalid);
  clients.clear();  // destructors commit
  for (int i = 0; i < kClients; ++i) {
    SCOPED_TRACE(fl::test::cat("client ", std::to_string(i)));
    expect_every_record_once(tmp / fl::test::cat("j", std::to_string(i)), kThreads, kPerThread);
  }
}

TEST(Concurrency, ThreadsOutlivingTheirClient) {
  // Threads register with a client, the client is destroyed while they still live
  // (idle), and then they exit: their exit hook must not touch the dead client. A new
  // client afterwards works from the same threads.
  fl::test::TempDir tmp;
  std::mutex mu;
  std::condition_variable cv;
  int phase = 0;  // 0: log into the first client; 1: it is gone, log into the second
  int logged = 0;
  auto first = std::make_unique<fl::Client>(fl::test::blocking_options(tmp / "a"));
  std::unique_ptr<fl::Client> second;
  std::atomic<std::int64_t> failures{0};
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      if (first->log_event("first", {{"t", t}, {"n", 0}}) != fl::LogResult::Ok) failures++;
      std::unique_lock lock(mu);
      ++logged;
      cv.notify_all();
      cv.wait(lock, [&] { return phase == 1; });
      lock.unlock();
      if (second->log_event("second", {{"t", t}, {"n", 0}}) != fl::LogResult::Ok) failures++;
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return logged == 3; });
  }
  first.reset();
  second = std::make_unique<fl::Client>(fl::test::blocking_options(tmp / "b"));
  {
    std::lock_guard lock(mu);
    phase = 1;
  }
  cv.notify_all();
  for (auto& th : threads) th.join();
  second.reset();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(read_journal(tmp / "a").size(), 3u);
  EXPECT_EQ(read_journal(tmp / "b").size(), 3u);
}

TEST(Concurrency, SchemasRegisteredWhileOthersLog) {
  // One thread keeps registering schemas and logging with each new one while others
  // log: the writer must always find the names of the schema a record was logged with.
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kProducers = 3;
  constexpr std::int64_t kPerThread = fl::test::scaled(2000);
  constexpr int kSchemas = 300;
  auto o = fl::test::blocking_options(dir);
  o.offline_max_queue_size = 0;
  {
    fl::Client c(o);
    const auto s = c.schema({"t", "n", "x"}, {"even"});
    std::atomic<std::int64_t> failures{0};
    std::vector<std::thread> threads;
    for (std::int64_t t = 0; t < kProducers; ++t) {
      threads.emplace_back([&, t] {
        for (std::int64_t n = 0; n < kPerThread; ++n) {
          if (log_tagged(c, s, t, n) != fl::LogResult::Ok) failures.fetch_add(1);
        }
      });
    }
    threads.emplace_back([&] {
      for (int k = 0; k < kSchemas; ++k) {
        const std::string in = fl::test::cat("in", std::to_string(k));
        const std::string out = fl::test::cat("out", std::to_string(k));
        const auto sk = c.schema({in}, {out});
        if (c.log_prediction(sk, {k}, {-k}, fl::Priority::High) != fl::LogResult::Ok) {
          failures.fetch_add(1);
        }
      }
    });
    for (auto& th : threads) th.join();
    c.flush();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(c.get_offline_status().dropped.invalid, 0u);  // includes writer-side malformed
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), static_cast<std::size_t>(kProducers * kPerThread + kSchemas));
  int schema_records = 0;
  for (const auto& r : recs) {
    ASSERT_EQ(r.error, "");
    if (r.inputs.size() == 1 && r.inputs[0].name.rfind("in", 0) == 0) {
      const auto k = r.inputs[0].i;
      EXPECT_EQ(r.inputs[0].name, fl::test::cat("in", std::to_string(k)));
      ASSERT_EQ(r.outputs.size(), 1u);
      EXPECT_EQ(r.outputs[0].name, fl::test::cat("out", std::to_string(k)));
      EXPECT_EQ(r.outputs[0].i, -k);
      ++schema_records;
    }
  }
  EXPECT_EQ(schema_records, kSchemas);
}

TEST(Concurrency, CleanupAndStatusWhileLogging) {
  // cleanup_offline_queue() runs on the writer thread between batches; with records
  // streaming in, every committed record is either still queued or counted as cleaned.
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr std::int64_t kProducers = 3;
  constexpr std::int64_t kPerThread = fl::test::scaled(3000);
  auto o = fl::test::blocking_options(dir);
  o.offline_max_queue_size = 0;
  fl::Client c(o);
  const auto s = c.schema({"t", "n", "x"}, {"even"});
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> removed{0};
  std::vector<std::thread> threads;
  for (std::int64_t t = 0; t < kProducers; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t n = 0; n < kPerThread; ++n) {
        ASSERT_EQ(log_tagged(c, s, t, n), fl::LogResult::Ok);
      }
    });
  }
  std::thread cleaner([&] {
    while (!done.load()) {
      removed.fetch_add(c.cleanup_offline_queue(0s));
      (void)c.get_offline_status();
      std::this_thread::sleep_for(2ms);
    }
  });
  for (auto& th : threads) th.join();
  done.store(true);
  cleaner.join();
  c.flush();
  const auto st = c.get_offline_status();
  EXPECT_EQ(st.committed_total, static_cast<std::uint64_t>(kProducers * kPerThread));
  EXPECT_GT(removed.load(), 0u);  // cleanup ran while records were committed
  EXPECT_EQ(st.dropped.cleaned_up, removed.load());
  EXPECT_EQ(st.queue_size + st.dropped.cleaned_up, st.committed_total);
  EXPECT_EQ(read_journal(dir).size(), st.queue_size);
}

TEST(Concurrency, StatusNeverMissesAnAcceptedRecordWhileTheWriterCommits) {
  // queue_size counts records in the queues, in the writer's batches and in the journal.
  // Nothing leaves here (no upload, no limit, no cleanup), so however a status read
  // interleaves with the writer's dequeues and commits, it never counts fewer records
  // than were accepted before it began.
  fl::test::TempDir tmp;
  auto o = fl::test::blocking_options(tmp / "j");
  o.offline_max_queue_size = 0;
  fl::Client c(o);
  const auto s = c.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});
  constexpr std::int64_t kRecords = fl::test::scaled(400'000);
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<bool> done{false};
  std::thread logger([&] {
    for (std::int64_t n = 0; n < kRecords; ++n) {
      const double x = static_cast<double>(n);
      ASSERT_EQ(c.log_prediction(s, {x, x, x, x}, {x}), fl::LogResult::Ok);
      accepted.fetch_add(1, std::memory_order_release);
    }
    done.store(true);
  });
  std::uint64_t reads = 0, short_reads = 0, worst = 0;
  while (!done.load()) {
    const std::uint64_t before = accepted.load(std::memory_order_acquire);
    const std::uint64_t counted = c.get_offline_status().queue_size;
    if (counted < before) {
      ++short_reads;
      worst = std::max(worst, before - counted);
    }
    ++reads;
  }
  logger.join();
  EXPECT_EQ(short_reads, 0u) << "of " << reads << " reads; the worst missed " << worst;
  EXPECT_GT(reads, 10u);  // the reads overlapped the logging
  ASSERT_TRUE(c.flush_for(60s));
  EXPECT_EQ(c.get_offline_status().queue_size, static_cast<std::size_t>(kRecords));
}
