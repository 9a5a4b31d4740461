// flightlog-bench-latency: the hot-path latency of logging one W1 prediction (4 double
// inputs, 1 double output, priority NORMAL), against the floor of the queue flightlog is
// built on and against spdlog's asynchronous logger. Method: bench/method.md.
//
// Contestants, run one after another, each with its own consumer thread(s) running:
//   floor   moodycamel::ConcurrentQueue<Pod64>::try_enqueue(token, pod) of a 64-byte POD
//           with a producer token; a consumer drains it the way flightlog's writer does
//           (per producer, 1,024 at a time, sleeping 1 ms when everything is empty)
//   schema  client.log_prediction(schema, {x1, x2, x3, x4}, {p})
//   named   client.log_prediction({{"feature1", x1}, ...}, {{"prediction", p}})
//   spdlog  async logger (overrun_oldest, never blocks) to a file, the same five values
//
// Methods (each producer thread runs the same loop, all threads start together):
//   burst     a busy wait of 2.0-2.2 ms, then 20 calls timed together with rdtsc; one
//             sample = the burst's time / 20. The pause lets every consumer keep up, so
//             the figure is the caller's cost, not a full queue's.
//   per-call  rdtsc around every single call, with the same pause every 20 calls. The
//             samples include the timer's own cost (printed as "timer overhead").
//
// Placements: free (no thread pinned) and pinned (1 producer on --producer-cpu, default 0;
// each contestant's own threads on the other CPUs). On 2 cores, a contestant with more
// threads of its own (flightlog has two) is more often woken on the producer's core when
// free; the "preempted" column counts how often a producer lost its core.
#include <concurrentqueue/concurrentqueue.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <CLI/CLI.hpp>

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "flightlog/flightlog.hpp"
#include "hot_path/hot_arena.hpp"
#include "hot_path/queue.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using namespace flightlog::bench;

namespace {

enum class Method { Burst, PerCall };

const char* method_name(Method m) {
  return m == Method::Burst ? "burst" : "per-call";
}

struct Config {
  int bursts = 10'000;                    // per thread, burst method
  int burst_size = 20;                    // calls per burst; also the per-call pacing group
  int warmup_bursts = 50;                 // per thread and round, before measuring, not recorded
  std::size_t percall_calls = 1'000'000;  // per configuration, split over rounds and threads
  int rounds = 20;                        // contestants take turns this many times (see below)
  fl::Durability durability = fl::Durability::Full;  // flightlog's contestants (default Options)
  long min_commit_interval_us = -1;                  // flightlog's; < 0: the library's default
  // Pinned placement: the producer thread on producer_cpu, every contestant's own
  // threads (the floor's consumer, flightlog's writer, spdlog's worker) on the other
  // CPUs, each by its own means. Free: the scheduler places every thread.
  bool pin = false;
  unsigned producer_cpu = 0;
  // > 0: also print, for every round, the p50 of each run of this many consecutive
  // samples, to see whether a contestant's cost changes during one instance's life.
  std::size_t segment_samples = 0;

  // The CPUs of the pinned placement other than the producer's.
  std::vector<unsigned> consumer_cpus() const {
    std::vector<unsigned> out;
    for (unsigned c = 0; c < std::thread::hardware_concurrency(); ++c) {
      if (c != producer_cpu) out.push_back(c);
    }
    return out;
  }
};

// ---- The measurement loop --------------------------------------------------------------

// Runs one thread's measurement of `call` and returns its samples in nanoseconds.
// `call(i)` logs the W1 record of index i. A template, so the floor's try_enqueue is
// inlined exactly as a user's would be and no contestant pays for an indirect call.
template <typename Call>
std::vector<double> measure(Call& call, Method method, const Config& cfg, std::size_t calls,
                            const TscClock& clock, std::uint64_t seed) {
  Pacer pacer(clock, seed);
  const int n = cfg.burst_size;
  std::uint64_t i = 0;
  // Warm-up with the same pacing: takes first-call allocations (flightlog's producer,
  // spdlog's buffers), page faults and cold caches out of the figures.
  for (int b = 0; b < cfg.warmup_bursts; ++b) {
    pacer.wait();
    for (int k = 0; k < n; ++k) call(i++);
  }

  std::vector<double> out;
  if (method == Method::Burst) {
    out.reserve(static_cast<std::size_t>(cfg.bursts));
    for (int b = 0; b < cfg.bursts; ++b) {
      pacer.wait();
      const std::uint64_t t0 = tsc_begin();
      for (int k = 0; k < n; ++k) call(i++);
      const std::uint64_t t1 = tsc_end();
      out.push_back(clock.to_ns(static_cast<double>(t1 - t0)) / n);
    }
    return out;
  }
  // Per call: raw ticks into a buffer sized (and its pages touched) beforehand.
  std::vector<std::uint64_t> ticks(calls);
  std::size_t c = 0;
  while (c < calls) {
    pacer.wait();
    for (int k = 0; k < n && c < calls; ++k, ++c) {
      const std::uint64_t t0 = tsc_begin();
      call(i++);
      const std::uint64_t t1 = tsc_end();
      ticks[c] = t1 - t0;
    }
  }
  out.reserve(calls);
  for (std::uint64_t t : ticks) out.push_back(clock.to_ns(static_cast<double>(t)));
  return out;
}

// ---- Contestants ---------------------------------------------------------------------
//
// Each contestant sets itself up for `threads` producers in its constructor, hands each
// thread a `Call` (its hot-path call, by value, so per-thread state stays on that
// thread), and in finish() drains its consumer and checks that every call got through.
// finish() returns a warning, or "" when everything was delivered.

// The floor: the queue alone, with a slot the size of flightlog's.
struct alignas(64) Pod64 {
  std::uint64_t seq;
  double values[5];
  std::uint64_t reserved[2];
};
static_assert(sizeof(Pod64) == 64);

// Stamped = true is the floor plus what flightlog's timestamp costs: one rdtsc per call
// stored in the slot (an ablation, printed as "floor+tsc", so the table shows how much
// of flightlog's distance to the floor is the clock read alone).
// FlightlogQueue = true is the floor on the queue as flightlog configures it (an
// ablation, "floor+q"): its traits (64-slot blocks, 4096 slots per producer) and its
// memory (a HotArena: pages touched in advance, on transparent huge pages), where the
// floor proper is moodycamel as it comes (32-slot blocks, malloc). The difference is
// what that configuration is worth to a bare enqueue; the targets use the floor proper.
template <bool Stamped, bool FlightlogQueue = false>
class FloorContestant {
 public:
  using Queue =
      std::conditional_t<FlightlogQueue, moodycamel::ConcurrentQueue<Pod64, fd::QueueTraits>,
                         moodycamel::ConcurrentQueue<Pod64>>;

  FloorContestant(int threads, const Config& cfg)
      : arena_(FlightlogQueue ? fd::HotArena::create(
                                    fd::slot_queue_pool_bytes(static_cast<std::size_t>(threads)))
                              : nullptr) {
    // Preallocated like flightlog's queues (4096 slots per producer): try_enqueue never
    // allocates, so it fails rather than mallocs when the pool runs out.
    const fd::HotArena::Scope scope(arena_.get());
    queue_ = std::make_unique<Queue>(std::size_t{4096} * static_cast<std::size_t>(threads),
                                     static_cast<std::size_t>(threads), 0);
    for (int t = 0; t < threads; ++t) {
      tokens_.push_back(std::make_unique<moodycamel::ProducerToken>(*queue_));
    }
    consumer_ = std::thread([this, cfg] {
      if (cfg.pin) pin_to(cfg.consumer_cpus());
      drain();
    });
  }

  struct Call {
    Queue* queue;
    moodycamel::ProducerToken* token;
    std::uint64_t failures = 0;
    void operator()(std::uint64_t i) noexcept {
      const W1Values v = w1_values(i);
      std::uint64_t stamp = 0;
      if constexpr (Stamped) stamp = __rdtsc();
      const Pod64 pod{i, {v.f1, v.f2, v.f3, v.f4, v.prediction}, {stamp, 0}};
      if (!queue->try_enqueue(*token, pod)) ++failures;
    }
  };
  Call caller(int t) { return Call{queue_.get(), tokens_[static_cast<std::size_t>(t)].get()}; }
  void done(const Call& c) { failures_ += c.failures; }

  std::string finish(std::uint64_t expected) {
    stop_.store(true, std::memory_order_release);
    consumer_.join();
    if (failures_ != 0 || consumed_ != expected) {
      return "floor: " + std::to_string(failures_) + " failed enqueues, consumed " +
             std::to_string(consumed_) + " of " + std::to_string(expected);
    }
    return "";
  }

 private:
  // Mirrors flightlog's writer: drain each producer in chunks of 1,024, read every
  // record (the writer encodes each), sleep 1 ms (writer_poll_interval) when all empty.
  void drain() {
    std::vector<Pod64> buf(1024);
    for (;;) {
      const bool stopping = stop_.load(std::memory_order_acquire);
      std::size_t got = 0;
      for (auto& token : tokens_) {
        std::size_t n = 0;
        while ((n = queue_->try_dequeue_bulk_from_producer(*token, buf.data(), buf.size())) > 0) {
          for (std::size_t k = 0; k < n; ++k) checksum_ += buf[k].seq;
          got += n;
        }
      }
      consumed_ += got;
      if (got == 0) {
        if (stopping) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }

  // Unmapped last: the queue and the producers live in it (floor+q).
  struct ArenaDeleter {
    void operator()(fd::HotArena* a) const noexcept {
      if (a != nullptr) fd::HotArena::destroy(a);
    }
  };
  std::unique_ptr<fd::HotArena, ArenaDeleter> arena_;
  std::unique_ptr<Queue> queue_;
  std::vector<std::unique_ptr<moodycamel::ProducerToken>> tokens_;
  std::thread consumer_;
  std::atomic<bool> stop_{false};
  std::uint64_t consumed_ = 0;  // consumer thread only, read after join
  std::uint64_t checksum_ = 0;  // keeps the reads from being optimised away
  std::uint64_t failures_ = 0;
};

// flightlog in either form. Default options (Durability::Full, Drop for NORMAL,
// ClockSource::Cached), in a fresh journal, so a writer that fell behind would show up
// as drops in finish(). Precise: the same with ClockSource::Precise, an rdtsc per call
// ("schema+precise", "named+precise").
template <bool Named, bool Precise = false>
class FlightlogContestant {
 public:
  FlightlogContestant(int threads, const Config& cfg)
      : client_(options(dir_.path(), threads, cfg)),
        schema_(client_.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"})) {}

  struct Call {
    fl::Client* client;
    fl::Schema schema;
    std::uint64_t failures = 0;
    void operator()(std::uint64_t i) noexcept {
      const W1Values v = w1_values(i);
      fl::LogResult r;
      if constexpr (Named) {
        r = client->log_prediction(
            {{"feature1", v.f1}, {"feature2", v.f2}, {"feature3", v.f3}, {"feature4", v.f4}},
            {{"prediction", v.prediction}});
      } else {
        r = client->log_prediction(schema, {v.f1, v.f2, v.f3, v.f4}, {v.prediction});
      }
      if (r != fl::LogResult::Ok) ++failures;
    }
  };
  Call caller(int) { return Call{&client_, schema_}; }
  void done(const Call& c) { failures_ += c.failures; }

  std::string finish(std::uint64_t expected) {
    client_.flush();
    const fl::OfflineStatus s = client_.get_offline_status();
    std::uint64_t dropped = s.dropped.too_large + s.dropped.invalid + s.dropped.closed +
                            s.dropped.journal_full + s.dropped.journal_error;
    for (auto d : s.dropped.queue_full) dropped += d;
    if (failures_ != 0 || dropped != 0 || s.committed_total != expected) {
      return std::string(Named ? "named" : "schema") + (Precise ? "+precise" : "") + ": " +
             std::to_string(failures_) + " calls not Ok, " + std::to_string(dropped) +
             " dropped, committed " + std::to_string(s.committed_total) + " of " +
             std::to_string(expected);
    }
    return "";
  }

 private:
  static fl::Options options(const std::filesystem::path& dir, int threads, const Config& cfg) {
    fl::Options o;
    o.durability = cfg.durability;
    if (cfg.min_commit_interval_us >= 0) {
      o.min_commit_interval = std::chrono::microseconds(cfg.min_commit_interval_us);
    }
    if (cfg.pin) o.background_cpus = cfg.consumer_cpus();
    o.offline_dir = dir / "journal";
    o.max_producer_threads = std::max(o.max_producer_threads, static_cast<std::size_t>(threads));
    if (Precise) o.clock_source = fl::ClockSource::Precise;
    return o;
  }

  TempDir dir_;  // declared first: outlives the client
  fl::Client client_;
  fl::Schema schema_;
  std::uint64_t failures_ = 0;
};

// spdlog's asynchronous logger: the caller formats the message (fmt) and posts it to a
// bounded queue; a pool thread writes it to the file. overrun_oldest: never blocks.
class SpdlogContestant {
 public:
  SpdlogContestant(int, const Config& cfg)
      : pool_(std::make_shared<spdlog::details::thread_pool>(8192, 1,
                                                             [cfg] {
                                                               if (cfg.pin) {
                                                                 pin_to(cfg.consumer_cpus());
                                                               }
                                                             })),
        logger_(std::make_shared<spdlog::async_logger>(
            "bench",
            std::make_shared<spdlog::sinks::basic_file_sink_mt>((dir_ / "spdlog.log").string(),
                                                                true),
            pool_, spdlog::async_overflow_policy::overrun_oldest)) {}

  struct Call {
    spdlog::async_logger* logger;
    void operator()(std::uint64_t i) {
      const W1Values v = w1_values(i);
      logger->info("feature1={} feature2={} feature3={} feature4={} prediction={}", v.f1, v.f2,
                   v.f3, v.f4, v.prediction);
    }
  };
  Call caller(int) { return Call{logger_.get()}; }
  void done(const Call&) {}

  std::string finish(std::uint64_t) {
    logger_->flush();
    const std::size_t overruns = pool_->overrun_counter();
    logger_.reset();
    pool_.reset();  // joins the pool thread once the queue is drained
    return overruns == 0 ? "" : "spdlog: " + std::to_string(overruns) + " messages overrun";
  }

 private:
  TempDir dir_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

// ---- Running a configuration ----------------------------------------------------------
//
// A configuration (method x thread count) is measured in rounds: each round runs every
// contestant once, with a fresh instance (new journal, new queue, new log file) and its
// share of the bursts or calls. On a shared machine a neighbour's build that starts or
// stops mid-run then lands on every contestant alike, instead of on whichever one was
// running at that moment, so the ratios stay meaningful. There are 20 rounds because an
// instance's p50 itself varies: on this VM one round's p50 can be twice the next one's
// for the same contestant (where its memory and threads land). With 4-5 rounds that
// alone moved the schema/floor ratio by +-0.2 from run to run; in one run of 10 rounds
// the schema form's round p50s spread by 17% (standard deviation) and the floor's by 9%,
// about 6% on the ratio of the pooled p50s. Twice the rounds at half the length should
// cut that by about 1.4 (rounds vary independently) and halve how long a neighbour's
// burst of load can favour one contestant. Each round warms up with 50 bursts instead of
// 100 (a thread's first calls, its allocations, are over well within 1,000 calls), so
// the warm-up takes as long in total as before.

struct Result {
  std::string contestant;
  Method method;
  int threads;
  bool pinned;
  Percentiles p;
  std::string warning;
  // Per-call method only: the first call after each pause, and the other calls. The
  // pause lets caches and TLBs go cold, so the first call shows what a burst pays once.
  Percentiles first;
  Percentiles rest;
  // Each round's figures, in round order (latency-rounds.csv): rounds run one after
  // another, so a row of the file shows what the machine was like then.
  struct RoundFigures {
    double p50;
    long preemptions;  // involuntary context switches of the producers while measured
  };
  std::vector<RoundFigures> rounds;

  long preemptions() const {
    long sum = 0;
    for (const RoundFigures& f : rounds) sum += f.preemptions;
    return sum;
  }
};

// Involuntary context switches of the calling thread so far: how often the scheduler
// took its core away (to another thread, the contestant's own consumers included).
long involuntary_switches() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_nivcsw;
}

// What one round of one contestant yields.
struct Round {
  std::vector<double> samples;  // ns, every thread's, thread by thread
  long preemptions = 0;         // involuntary switches of its producers while measured
  std::string warning;          // "" when every call was delivered
};

template <typename Contestant>
Round run_round(int threads, Method method, const Config& round_cfg, const TscClock& clock,
                unsigned round) {
  // A whole number of pacing groups per thread, so sample k of a thread is call
  // k % burst_size of its group (the split into first and other calls relies on it).
  const auto group = static_cast<std::size_t>(round_cfg.burst_size);
  const std::size_t per_thread_calls =
      round_cfg.percall_calls / static_cast<std::size_t>(threads) / group * group;
  std::vector<std::vector<double>> per_thread(static_cast<std::size_t>(threads));
  Round out;
  Contestant contestant(threads, round_cfg);
  std::mutex done_mu;
  StartGate gate;
  std::vector<std::thread> producers;
  for (int t = 0; t < threads; ++t) {
    producers.emplace_back([&, t] {
      if (round_cfg.pin) pin_to({round_cfg.producer_cpu});
      auto call = contestant.caller(t);
      gate.wait();
      const std::uint64_t seed = 1000 * round + static_cast<unsigned>(t);
      const long switches_before = involuntary_switches();
      per_thread[static_cast<std::size_t>(t)] =
          measure(call, method, round_cfg, per_thread_calls, clock, seed);
      const long switches = involuntary_switches() - switches_before;
      std::lock_guard lock(done_mu);
      contestant.done(call);
      out.preemptions += switches;
    });
  }
  gate.open();
  for (auto& p : producers) p.join();
  const std::uint64_t measured = method == Method::Burst ? std::uint64_t(round_cfg.bursts) *
                                                               std::uint64_t(round_cfg.burst_size)
                                                         : per_thread_calls;
  const std::uint64_t per_thread_total =
      std::uint64_t(round_cfg.warmup_bursts) * std::uint64_t(round_cfg.burst_size) + measured;
  for (auto& s : per_thread) out.samples.insert(out.samples.end(), s.begin(), s.end());
  out.warning = contestant.finish(per_thread_total * static_cast<std::uint64_t>(threads));
  return out;
}

Round run_round_of(const std::string& name, int threads, Method method, const Config& round_cfg,
                   const TscClock& clock, unsigned round) {
  if (name == "floor") {
    return run_round<FloorContestant<false>>(threads, method, round_cfg, clock, round);
  }
  if (name == "floor+tsc") {
    return run_round<FloorContestant<true>>(threads, method, round_cfg, clock, round);
  }
  if (name == "floor+q") {
    return run_round<FloorContestant<false, true>>(threads, method, round_cfg, clock, round);
  }
  if (name == "schema") {
    return run_round<FlightlogContestant<false>>(threads, method, round_cfg, clock, round);
  }
  if (name == "named") {
    return run_round<FlightlogContestant<true>>(threads, method, round_cfg, clock, round);
  }
  if (name == "schema+precise") {
    return run_round<FlightlogContestant<false, true>>(threads, method, round_cfg, clock, round);
  }
  if (name == "named+precise") {
    return run_round<FlightlogContestant<true, true>>(threads, method, round_cfg, clock, round);
  }
  return run_round<SpdlogContestant>(threads, method, round_cfg, clock, round);
}

// The p50 of each run of `n` consecutive samples, in order.
std::string segment_p50s(const std::vector<double>& samples, std::size_t n) {
  std::string out;
  for (std::size_t at = 0; at + n <= samples.size(); at += n) {
    std::vector<double> run(samples.begin() + static_cast<std::ptrdiff_t>(at),
                            samples.begin() + static_cast<std::ptrdiff_t>(at + n));
    out += ' ' + fixed(percentiles(run).p50);
  }
  return out;
}

// Measures every contestant in one configuration; results in the order of `names`.
std::vector<Result> run_configuration(const std::vector<std::string>& names, int threads,
                                      Method method, const Config& cfg, const TscClock& clock) {
  Config round_cfg = cfg;
  round_cfg.bursts = cfg.bursts / cfg.rounds;
  round_cfg.percall_calls = cfg.percall_calls / static_cast<std::size_t>(cfg.rounds);
  // Each contestant's result fills in round by round; its samples are kept apart until
  // the end, when the percentiles are taken over all rounds.
  std::vector<Result> out;
  for (const std::string& name : names) {
    out.push_back(Result{name, method, threads, cfg.pin, {}, "", {}, {}, {}});
  }
  std::vector<std::vector<double>> samples(names.size());
  std::vector<std::string> segments(names.size());  // --segment-samples, this round
  for (int round = 0; round < cfg.rounds; ++round) {
    std::cout << "  " << method_name(method) << ", " << threads << " thread(s), "
              << (cfg.pin ? "pinned" : "free") << ", round " << round + 1 << "/" << cfg.rounds
              << ", p50:";
    for (std::size_t c = 0; c < names.size(); ++c) {
      Result& r = out[c];
      Round got = run_round_of(names[c], threads, method, round_cfg, clock,
                               static_cast<unsigned>(round + 1));
      const std::string& w = got.warning;
      if (!w.empty()) {
        std::cerr << "\nWARNING: round " << round + 1 << ": " << w << std::endl;
        r.warning +=
            (r.warning.empty() ? "" : "; ") + ("round " + std::to_string(round + 1) + ": " + w);
      }
      samples[c].insert(samples[c].end(), got.samples.begin(), got.samples.end());
      if (cfg.segment_samples > 0) segments[c] = segment_p50s(got.samples, cfg.segment_samples);
      r.rounds.push_back({percentiles(got.samples).p50, got.preemptions});  // sorts got.samples
      std::cout << ' ' << names[c] << ' ' << fixed(r.rounds.back().p50) << " (" << got.preemptions
                << " preempted)" << std::flush;
    }
    std::cout << std::endl;
    if (cfg.segment_samples > 0) {
      for (std::size_t c = 0; c < names.size(); ++c) {
        std::cout << "    " << names[c] << ", p50 of each " << cfg.segment_samples
                  << " samples:" << segments[c] << std::endl;
      }
    }
  }
  for (std::size_t c = 0; c < names.size(); ++c) {
    Result& r = out[c];
    if (method == Method::PerCall) {
      std::vector<double> first, rest;
      for (std::size_t k = 0; k < samples[c].size(); ++k) {
        (k % static_cast<std::size_t>(cfg.burst_size) == 0 ? first : rest).push_back(samples[c][k]);
      }
      r.first = percentiles(first);
      r.rest = percentiles(rest);
    }
    r.p = percentiles(samples[c]);  // sorts: after the split, which needs call order
  }
  return out;
}

// The timer's own cost: an empty region timed the per-call way, back to back.
double timer_overhead_ns(const TscClock& clock) {
  std::vector<double> s(200'000);
  for (auto& x : s) {
    const std::uint64_t t0 = tsc_begin();
    const std::uint64_t t1 = tsc_end();
    x = clock.to_ns(static_cast<double>(t1 - t0));
  }
  return percentiles(s).p50;
}

// ---- Output --------------------------------------------------------------------------

const Result* find(const std::vector<Result>& rs, const std::string& name, Method m, int threads,
                   bool pinned) {
  for (const auto& r : rs) {
    if (r.contestant == name && r.method == m && r.threads == threads && r.pinned == pinned) {
      return &r;
    }
  }
  return nullptr;
}

void write_csv(const std::filesystem::path& file, const std::vector<Result>& results) {
  std::ofstream out(file);
  out << "method,threads,placement,contestant,samples,p50_ns,p90_ns,p99_ns,p99.9_ns,p99.99_ns,"
         "max_ns,first_call_p50_ns,first_call_p99_ns,other_calls_p50_ns,other_calls_p99_ns,"
         "preempted,warning\n";
  for (const auto& r : results) {
    out << method_name(r.method) << ',' << r.threads << ',' << (r.pinned ? "pinned" : "free") << ','
        << r.contestant << ',' << r.p.n << ',' << fixed(r.p.p50, 2) << ',' << fixed(r.p.p90, 2)
        << ',' << fixed(r.p.p99, 2) << ',' << fixed(r.p.p999, 2) << ',' << fixed(r.p.p9999, 2)
        << ',' << fixed(r.p.max, 2) << ',';
    if (r.method == Method::PerCall) {
      out << fixed(r.first.p50, 2) << ',' << fixed(r.first.p99, 2) << ',' << fixed(r.rest.p50, 2)
          << ',' << fixed(r.rest.p99, 2);
    } else {
      out << ",,,";
    }
    out << ',' << r.preemptions() << ",\"" << r.warning << "\"\n";
  }
}

// Every round's p50 and preemptions of every contestant, one row each. Round k of every
// contestant of a configuration ran within the same few seconds.
void write_rounds_csv(const std::filesystem::path& file, const std::vector<Result>& results) {
  std::ofstream out(file);
  out << "method,threads,placement,round,contestant,p50_ns,preempted\n";
  for (const auto& r : results) {
    for (std::size_t k = 0; k < r.rounds.size(); ++k) {
      out << method_name(r.method) << ',' << r.threads << ',' << (r.pinned ? "pinned" : "free")
          << ',' << k + 1 << ',' << r.contestant << ',' << fixed(r.rounds[k].p50, 2) << ','
          << r.rounds[k].preemptions << '\n';
    }
  }
}

// One configuration's table (nothing if it was not measured), with the per-call method's
// first-call split and any warnings.
void write_table(std::ostream& md, const std::vector<Result>& results, const Config& cfg, Method m,
                 int threads, bool pinned) {
  auto in_table = [&](const Result& r) {
    return r.method == m && r.threads == threads && r.pinned == pinned;
  };
  if (std::none_of(results.begin(), results.end(), in_table)) return;
  const Result* floor = find(results, "floor", m, threads, pinned);
  md << "### " << method_name(m) << " method, " << threads << " producer thread"
     << (threads == 1 ? "" : "s") << (pinned ? ", pinned" : "") << "\n\n"
     << "| contestant | samples | p50 | p90 | p99 | p99.9 | p99.99 | max | p50 / floor | "
        "p99.9 / floor | preempted |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : results) {
    if (!in_table(r)) continue;
    md << "| " << r.contestant << " | " << r.p.n << " | " << fixed(r.p.p50) << " | "
       << fixed(r.p.p90) << " | " << fixed(r.p.p99) << " | " << fixed(r.p.p999) << " | "
       << fixed(r.p.p9999) << " | " << fixed(r.p.max) << " | "
       << (floor ? fixed(r.p.p50 / floor->p.p50, 2) + "x" : "-") << " | "
       << (floor ? fixed(r.p.p999 / floor->p.p999, 2) + "x" : "-") << " | " << r.preemptions()
       << " |\n";
  }
  md << "\n";
  if (m == Method::PerCall) {
    md << "The same samples split by position in the pacing group: the first call after "
       << "each pause (caches and TLBs gone cold) and the other " << cfg.burst_size - 1 << ".\n\n"
       << "| contestant | first call p50 | first call p99 | other calls p50 | other calls p99 |\n"
       << "|---|---:|---:|---:|---:|\n";
    for (const auto& r : results) {
      if (!in_table(r)) continue;
      md << "| " << r.contestant << " | " << fixed(r.first.p50) << " | " << fixed(r.first.p99)
         << " | " << fixed(r.rest.p50) << " | " << fixed(r.rest.p99) << " |\n";
    }
    md << "\n";
  }
  for (const auto& r : results) {
    if (in_table(r) && !r.warning.empty()) md << "**Warning:** " << r.warning << "\n\n";
  }
}

void write_markdown(const std::filesystem::path& file, const std::vector<Result>& results,
                    const Config& cfg, const std::vector<int>& thread_counts, double ghz,
                    double overhead_ns) {
  std::ofstream md(file);
  md << "## Hot-path latency (W1: 4 double inputs, 1 double output, NORMAL)\n\n"
     << "Nanoseconds per call. TSC " << fixed(ghz, 3) << " GHz (calibrated against "
     << "CLOCK_MONOTONIC_RAW). Timer overhead (an empty region timed like one per-call "
     << "sample): p50 " << fixed(overhead_ns) << " ns; it is included in the per-call "
     << "figures and amortised over " << cfg.burst_size << " calls in the burst figures.\n\n"
     << "- **burst**: per thread, " << cfg.bursts << " bursts of " << cfg.burst_size
     << " calls, each after a busy wait of 2.0-2.2 ms (uniform); one sample = burst time / "
     << cfg.burst_size << ".\n"
     << "- **per-call**: rdtsc around every call, " << cfg.percall_calls
     << " calls per configuration (split evenly over its rounds and threads), paced like the "
        "bursts: "
     << "the same 2.0-2.2 ms busy wait every " << cfg.burst_size
     << " calls (so the run does not take forever).\n"
     << "- Contestants take turns in " << cfg.rounds << " interleaved rounds (each round: a "
     << "fresh instance of every contestant with 1/" << cfg.rounds << " of the samples), so "
     << "load from neighbours on this shared machine falls on all of them alike. Every thread "
     << "of every round first runs " << cfg.warmup_bursts << " unrecorded warm-up bursts.\n"
     << "- Placement. Tables without a suffix: no thread is pinned, the scheduler places them "
     << "all; with more producer threads than cores, the tail includes preemption. Tables "
     << "marked **pinned**: the producer thread runs on CPU " << cfg.producer_cpu
     << " and every contestant's own "
     << "threads on the other CPUs, each by its own means (the floor's consumer pins itself, "
     << "flightlog gets `Options::background_cpus`, spdlog's worker pins itself in the thread "
     << "pool's start hook): how a latency-sensitive program deploys a logger.\n"
     << "- preempted = involuntary context switches of the producer threads over the whole "
     << "measurement, pauses included (getrusage RUSAGE_THREAD): how often the scheduler gave "
     << "a producer's core to another thread, the contestant's own consumers among them.\n"
     << "- floor = `moodycamel::ConcurrentQueue<Pod64>::try_enqueue(token, pod)`; floor+tsc = "
     << "the same with one `rdtsc` stored in the pod (an ablation: what a per-record hot-path "
     << "timestamp alone costs beside the floor; not a target); floor+q = the floor on the "
     << "queue as flightlog configures it (its traits, 64-slot blocks, on a HotArena of "
     << "pre-touched transparent huge pages; an ablation, not a target); schema / "
     << "named = flightlog's two forms of `log_prediction` (default Options, "
     << (cfg.durability == fl::Durability::Full ? "" : "except ")
     << "Durability::" << durability_name(cfg.durability)
     << (cfg.min_commit_interval_us >= 0
             ? ", min_commit_interval " + std::to_string(cfg.min_commit_interval_us) + " us"
             : std::string())
     << ", ClockSource::Cached: a load of the writer's clock word); schema+precise / "
     << "named+precise = the same with ClockSource::Precise (an rdtsc per call, the opt-in "
     << "for per-call nanoseconds; held to the same limits for comparison); "
     << "spdlog = async logger, `overrun_oldest`, basic file sink, same five values.\n\n";
  for (bool pinned : {false, true}) {
    for (Method m : {Method::Burst, Method::PerCall}) {
      for (int threads : thread_counts) write_table(md, results, cfg, m, threads, pinned);
    }
  }
}

// Issue 2's targets (burst method, 1 thread), for each placement measured: schema and
// named forms with default options, and the same with ClockSource::Precise, against the
// floor and spdlog.
std::vector<Target> targets(const std::vector<Result>& rs) {
  struct Rule {
    const char* contestant;
    const char* against;
    bool tail;  // p99.9 instead of p50
    double at_most;
  };
  static constexpr Rule kRules[] = {
      {"schema", "floor", false, 1.2},        {"schema", "spdlog", false, 0.04},
      {"schema", "floor", true, 2.0},         {"named", "floor", false, 2.0},
      {"named", "spdlog", false, 0.1},        {"schema+precise", "floor", false, 1.2},
      {"schema+precise", "floor", true, 2.0}, {"schema+precise", "spdlog", false, 0.04},
      {"named+precise", "floor", false, 2.0}, {"named+precise", "spdlog", false, 0.1},
  };
  std::vector<Target> out;
  for (bool pinned : {false, true}) {
    for (const Rule& rule : kRules) {
      const Result* a = find(rs, rule.contestant, Method::Burst, 1, pinned);
      const Result* b = find(rs, rule.against, Method::Burst, 1, pinned);
      if (a == nullptr || b == nullptr) continue;
      const char* stat = rule.tail ? "p99.9" : "p50";
      const double ratio = rule.tail ? a->p.p999 / b->p.p999 : a->p.p50 / b->p.p50;
      out.push_back({std::string("latency: ") + rule.contestant + " " + stat + " / " +
                         rule.against + " " + stat + " (burst; 1 thread" +
                         (pinned ? "; pinned)" : ")"),
                     ratio, rule.at_most, true});
    }
    // The same against the floor on flightlog's queue configuration, where it ran.
    for (const char* form : {"schema", "named"}) {
      const Result* a = find(rs, form, Method::Burst, 1, pinned);
      const Result* b = find(rs, "floor+q", Method::Burst, 1, pinned);
      if (a == nullptr || b == nullptr) continue;
      out.push_back({std::string("ablation: ") + form + " p50 / floor+q p50 (burst; 1 thread" +
                         (pinned ? "; pinned)" : ")"),
                     a->p.p50 / b->p.p50, 0, true, true});
    }
  }
  return out;
}

bool wanted(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Hot-path latency of flightlog against the raw queue floor and spdlog (W1)."};
  Config cfg;
  std::string out_dir = ".";
  std::vector<int> thread_counts{1, 4};
  std::vector<std::string> contestants{"floor",          "floor+tsc",     "schema", "named",
                                       "schema+precise", "named+precise", "spdlog"};
  std::vector<std::string> methods{"burst", "per-call"};
  app.add_option("--out", out_dir,
                 "Directory for latency.csv, latency-rounds.csv, latency.md, latency-targets.csv");
  app.add_option("--threads", thread_counts, "Producer thread counts")->delimiter(',');
  app.add_option("--contestants", contestants,
                 "Any of floor,floor+tsc,floor+q,schema,named,schema+precise,named+precise,"
                 "spdlog (floor+q: an ablation, not run unless named)")
      ->delimiter(',');
  app.add_option("--methods", methods, "Any of burst,per-call")->delimiter(',');
  app.add_option("--bursts", cfg.bursts, "Bursts per thread (burst method)");
  app.add_option("--burst-size", cfg.burst_size, "Calls per burst / per pacing group");
  app.add_option("--warmup-bursts", cfg.warmup_bursts, "Unrecorded bursts per thread and round");
  app.add_option("--rounds", cfg.rounds, "Turns the contestants take (interleaved)");
  app.add_option("--segment-samples", cfg.segment_samples,
                 "Also print each round's p50 per this many consecutive samples (0: off)");
  std::vector<std::string> durability_names;
  for (const DurabilityMode& m : kDurabilityModes) durability_names.emplace_back(m.name);
  std::string durability = durability_name(cfg.durability);
  app.add_option("--durability", durability,
                 "flightlog's durability mode (default Full, the library's default)")
      ->check(CLI::IsMember(durability_names));
  app.add_option("--min-commit-interval-us", cfg.min_commit_interval_us,
                 "flightlog's Options::min_commit_interval (default: the library's default)")
      ->check(CLI::Range(0L, 10'000'000L));
  app.add_option("--percall-calls", cfg.percall_calls,
                 "Timed calls per configuration, split over its threads (per-call method)");
  std::vector<std::string> placements{"free", "pinned"};
  app.add_option("--placements", placements,
                 "free (the scheduler places every thread) and/or pinned (1 producer thread on "
                 "--producer-cpu; the contestants' own threads on the other CPUs; measured "
                 "with 1 producer thread only)")
      ->delimiter(',')
      ->check(CLI::IsMember({"free", "pinned"}));
  app.add_option("--producer-cpu", cfg.producer_cpu, "The producer's CPU when pinned (default 0)")
      ->check(CLI::Range(0u, std::max(1u, std::thread::hardware_concurrency()) - 1));
  CLI11_PARSE(app, argc, argv);
  if (wanted(placements, "pinned") && cfg.consumer_cpus().empty()) {
    std::cerr << "--placements pinned needs at least 2 CPUs" << std::endl;
    return 1;
  }
  for (const DurabilityMode& m : kDurabilityModes) {
    if (durability == m.name) cfg.durability = m.mode;
  }

  const TscClock clock;
  const double overhead = timer_overhead_ns(clock);
  std::cout << "TSC " << fixed(1.0 / clock.ns_per_tick(), 3) << " GHz, timer overhead p50 "
            << fixed(overhead) << " ns" << std::endl;

  // The fixed order floor, schema, named, spdlog: spdlog's file write-back then follows
  // the others rather than preceding them.
  std::vector<std::string> names;
  for (const char* c : {"floor", "floor+tsc", "floor+q", "schema", "named", "schema+precise",
                        "named+precise", "spdlog"}) {
    if (wanted(contestants, c)) names.push_back(c);
  }
  std::vector<Result> results;
  for (bool pin : {false, true}) {
    if (!wanted(placements, pin ? "pinned" : "free")) continue;
    for (int threads : thread_counts) {
      if (pin && threads != 1) continue;  // one CPU for the producers: one producer
      for (const std::string& mname : methods) {
        const Method m = mname == "burst" ? Method::Burst : Method::PerCall;
        Config c = cfg;
        c.pin = pin;
        for (auto& r : run_configuration(names, threads, m, c, clock)) results.push_back(r);
      }
    }
  }

  const std::filesystem::path out(out_dir);
  std::filesystem::create_directories(out);
  write_csv(out / "latency.csv", results);
  write_rounds_csv(out / "latency-rounds.csv", results);
  write_markdown(out / "latency.md", results, cfg, thread_counts, 1.0 / clock.ns_per_tick(),
                 overhead);
  const auto t = targets(results);
  write_targets(out / "latency-targets.csv", t);
  print_targets(t);
  return 0;
}
