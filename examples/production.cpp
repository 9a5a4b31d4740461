// A production set-up: credentials from the environment, a persistent journal
// directory, explicit limits, and a health check that alerts on queue size and failed
// records.
//
//   FLIGHTLOG_DIR       journal directory (default /tmp/flightlog-production-example)
//   FLIGHTLOG_ENDPOINT  https://... upload URL (optional: journal only without it)
//   FLIGHTLOG_API_KEY   credential for the endpoint (never written anywhere)
//   FLIGHTLOG_CA_FILE   PEM of trusted CAs (optional: system CAs by default)
#include <flightlog/flightlog.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

// Returns false and prints an alert when the pipeline needs a person.
bool health_check(const flightlog::OfflineStatus& s, std::size_t max_queue,
                  std::size_t max_failed) {
  bool healthy = true;
  if (s.queue_size > max_queue) {
    std::printf("ALERT: %zu records waiting to sync (threshold %zu); last error: %s\n",
                s.queue_size, max_queue, s.last_error.empty() ? "none" : s.last_error.c_str());
    healthy = false;
  }
  if (s.failed_count > max_failed) {
    std::printf("ALERT: %zu records failed permanently (threshold %zu)\n", s.failed_count,
                max_failed);
    healthy = false;
  }
  std::uint64_t dropped =
      s.dropped.too_large + s.dropped.invalid + s.dropped.journal_full + s.dropped.journal_error;
  for (auto v : s.dropped.queue_full) dropped += v;
  if (dropped > 0) {
    std::printf("ALERT: %llu records dropped (see status.dropped by reason)\n",
                static_cast<unsigned long long>(dropped));
    healthy = false;
  }
  return healthy;
}

}  // namespace

int main() {
  flightlog::Options o;
  o.offline_dir = env("FLIGHTLOG_DIR", "/tmp/flightlog-production-example");
  o.endpoint = env("FLIGHTLOG_ENDPOINT");
  o.api_key = env("FLIGHTLOG_API_KEY");
  o.ca_file = env("FLIGHTLOG_CA_FILE");
  o.durability = flightlog::Durability::Full;  // acknowledged records survive power loss
  o.offline_max_queue_size = 5'000'000;        // then LOW records are evicted first
  o.journal_max_bytes = std::size_t{8} << 30;
  o.max_attempts = 3;
  o.upload_gzip = true;
  // This service would rather wait a few microseconds than lose a NORMAL record in a
  // burst; LOW keeps the default (drop and count).
  o.full_policy[static_cast<std::size_t>(flightlog::Priority::Normal)] =
      flightlog::FullPolicy::Block;

  try {
    flightlog::Client client(o);
    const auto schema = client.schema({"feature1", "feature2"}, {"prediction"});
    for (int i = 0; i < 10'000; ++i) {
      client.log_prediction(schema, {0.001 * i, -0.002 * i}, {0.5}, flightlog::Priority::Normal);
    }
    client.flush();
    const auto status = client.get_offline_status();
    std::printf("journal %s: %zu queued, %zu failed, %llu synced\n", status.journal_id.c_str(),
                status.queue_size, status.failed_count,
                static_cast<unsigned long long>(status.synced_total));
    // Thresholds for the example: alert above a million waiting or any failed record.
    return health_check(status, 1'000'000, 0) ? 0 : 1;
  } catch (const flightlog::Error& e) {
    std::fprintf(stderr, "flightlog: %s\n", e.what());  // names the bad option or path
    return 2;
  }
}
