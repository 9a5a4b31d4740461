// The demo's closing report: the hot-path latency table, the totals, and the checks
// that decide the exit code (every acknowledged record arrived; on loopback, the
// offline backlog arrived in priority order).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "loopback_receiver.hpp"
#include "workload.hpp"

namespace flightlog::demo {

struct LatencySummary {
  std::vector<double> sorted_ns;  // every call but each thread's first, ascending
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0, p9999 = 0, max = 0, mean = 0;
  double first_call_max_ns = 0;  // the slowest of the threads' first calls
};

LatencySummary summarize_latency(const std::vector<ThreadTally>& tallies, double ns_per_tick);
void print_latency(const LatencySummary& s, int threads, double ns_per_tick);

// What the client and the producers counted.
struct RunTotals {
  std::uint64_t calls = 0;
  std::array<std::uint64_t, 5> by_result{};              // indexed by LogResult
  std::array<std::uint64_t, kPriorityCount> accepted{};  // Ok, by priority
  double seconds = 0;                                    // of logging
  // Before the first call and after the drain. A reused --dir journal starts with the
  // evictions, cleanups and failed records of earlier runs: only the difference is this
  // run's. (Were earlier runs' queued records evicted or failed during this run, the
  // check would count them against it: the demo's queue limit and receiver make neither
  // happen.)
  OfflineStatus initial_status;
  OfflineStatus final_status;
  std::uint64_t first_seq = 0;  // the first sequence this run's records got
};

RunTotals sum_totals(const std::vector<ThreadTally>& tallies);

// Prints the totals; returns kExitOk or kExitLost.
int print_totals_and_check(const RunTotals& t, std::uint64_t arrived_unique,
                           const std::string& arrived_where, std::uint64_t duplicates,
                           bool drained);

// The backlog (records with first_seq <= seq < online_seq, committed while the receiver
// was down): per priority, its records, their first and last arrival position, and when
// the last one arrived after the receiver came up. Returns kExitOutOfOrder unless each
// priority's backlog was complete before the next lower priority's.
int print_backlog_order(const ReceiverTally& tally, std::uint64_t first_seq,
                        std::uint64_t online_seq, std::chrono::steady_clock::time_point up_at);

}  // namespace flightlog::demo
