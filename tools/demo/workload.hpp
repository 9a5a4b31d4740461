// The simulated inference service: threads that log W2 predictions at a steady rate
// and time every log call.
//
// Each thread logs its share of --rate in small bursts (it sleeps about a millisecond
// between them, as a service waits for requests), in the schema form: 4 double
// features, 1 double prediction, priorities drawn 5% CRITICAL, 15% HIGH, 60% NORMAL,
// 20% LOW (bench-method.md, W2). Every call is timed with the TSC into a buffer
// preallocated before the thread starts, so measuring allocates nothing in the loop.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"

namespace flightlog::demo {

struct ThreadTally {
  std::vector<std::uint32_t> ticks;    // TSC ticks of each call after the first, in order
  std::uint64_t first_call_ticks = 0;  // the thread's first call registers the thread
  std::uint64_t calls = 0;
  std::array<std::uint64_t, 5> by_result{};              // indexed by LogResult
  std::array<std::uint64_t, kPriorityCount> accepted{};  // LogResult::Ok, by priority
};

class Workload {
 public:
  // Preallocates every thread's buffers. `rate` is records per second for all threads.
  Workload(Client& client, const Schema& schema, int threads, double rate,
           std::chrono::duration<double> duration);
  ~Workload();  // join()

  void start();
  // Asks the threads to end early (at their next burst).
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  void join();
  bool finished() const;
  // Calls made so far by every thread (updated once per burst).
  std::uint64_t calls() const;
  // From start() to the last call of the last thread to finish. Valid after join().
  std::chrono::duration<double> elapsed() const;
  // Valid after join().
  const std::vector<ThreadTally>& tallies() const { return tallies_; }

 private:
  struct alignas(64) LiveCount {
    std::atomic<std::uint64_t> calls{0};
    std::atomic<bool> done{false};
    std::chrono::steady_clock::time_point finished_at;  // written before done
  };
  void run(std::size_t index, std::chrono::steady_clock::time_point start);

  Client& client_;
  Schema schema_;
  double per_thread_rate_;
  std::chrono::duration<double> duration_;
  std::vector<ThreadTally> tallies_;
  std::vector<std::vector<Priority>> priorities_;
  std::unique_ptr<LiveCount[]> live_;
  std::atomic<bool> stop_{false};
  std::chrono::steady_clock::time_point start_;
  std::vector<std::thread> threads_;
};

}  // namespace flightlog::demo
