// Keeping the hot path hot:
// - register a Schema once, outside the loop, then pass only values (no names copied);
// - keep records to one 64-byte slot where you can (the W1 shape below: 4 inputs and
//   1 output as doubles fit);
// - log from a bounded set of threads (max_producer_threads), each reusing its producer;
// - never call flush() in the loop: the writer commits on its own; flush at checkpoints;
// - check the LogResult only for counting: it never throws and never blocks unless the
//   priority's policy is Block.
#include <flightlog/flightlog.hpp>

#include <x86intrin.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main() {
  flightlog::Options o;
  const char* dir = std::getenv("FLIGHTLOG_DIR");  // the journal; one process owns it
  o.offline_dir = dir != nullptr ? dir : "/tmp/flightlog-low-latency-example";
  o.max_producer_threads = 2;
  o.durability = flightlog::Durability::NoMetaSync;  // one device flush per batch
  flightlog::Client client(o);
  const auto schema = client.schema({"bid", "ask", "spread", "imbalance"}, {"signal"});

  constexpr int kCalls = 200'000;
  std::uint64_t dropped = 0;
  std::vector<std::uint64_t> ticks;
  ticks.reserve(kCalls);  // allocate before the loop, not in it
  // Warm up: the first call of a thread allocates its producer.
  client.log_prediction(schema, {0.0, 0.0, 0.0, 0.0}, {0.0});
  for (int i = 0; i < kCalls; ++i) {
    // The loop's own work (a market-data update, a model call): ~2 us here.
    const auto work_end = __rdtsc() + 5000;
    while (__rdtsc() < work_end) {
    }
    const double bid = 100.0 + 0.01 * (i % 7), ask = bid + 0.02;
    const double imbalance = ((i * 37) % 200 - 100) / 100.0;
    const double signal = 0.3 * imbalance;
    const auto t0 = __rdtsc();
    const auto r = client.log_prediction(schema, {bid, ask, ask - bid, imbalance}, {signal});
    ticks.push_back(__rdtsc() - t0);
    if (r != flightlog::LogResult::Ok) ++dropped;  // the loop never waits on the journal
  }
  client.flush();  // a checkpoint, outside the hot loop
  std::sort(ticks.begin(), ticks.end());
  std::printf("%d calls: median %llu TSC ticks per call, p99 %llu; %llu dropped; %zu queued\n",
              kCalls, static_cast<unsigned long long>(ticks[ticks.size() / 2]),
              static_cast<unsigned long long>(ticks[ticks.size() * 99 / 100]),
              static_cast<unsigned long long>(dropped), client.get_offline_status().queue_size);
  return 0;
}
