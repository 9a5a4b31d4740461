// Quick start: offline mode with auto-sync.
//
// Records go to a journal in ./flightlog_offline first; when FLIGHTLOG_ENDPOINT is set
// (and FLIGHTLOG_API_KEY), they are uploaded in the background every 10 seconds and
// whenever a full batch waits. Without an endpoint the journal simply keeps them.
#include <flightlog/flightlog.hpp>

#include <cstdio>
#include <cstdlib>

int main() {
  flightlog::Options options;
  options.offline_dir = "./flightlog_offline";
  if (const char* endpoint = std::getenv("FLIGHTLOG_ENDPOINT")) options.endpoint = endpoint;
  if (const char* key = std::getenv("FLIGHTLOG_API_KEY")) options.api_key = key;
  options.offline_auto_sync = true;
  options.offline_sync_interval = std::chrono::seconds(10);

  flightlog::Client client(options);

  // Log a few predictions with their input features.
  for (int i = 0; i < 100; ++i) {
    const double age = 20 + i % 50, income = 30000 + 500.0 * i;
    const double score = 0.5 + 0.004 * (i % 100);
    const auto priority = score > 0.85 ? flightlog::Priority::High : flightlog::Priority::Normal;
    client.log_prediction({{"age", age}, {"income", income}, {"segment", "retail"}},
                          {{"score", score}}, priority);
  }
  client.flush();  // everything above is now in the journal

  const flightlog::OfflineStatus status = client.get_offline_status();
  std::printf("queue size: %zu, failed: %zu, synced so far: %llu\n", status.queue_size,
              status.failed_count, static_cast<unsigned long long>(status.synced_total));

  if (!options.endpoint.empty()) {
    const flightlog::SyncResult r = client.sync_offline_queue();  // manual sync
    std::printf("manual sync: %zu synced, %zu failed\n", r.synced, r.failed);
  }
  // Keep the journal small: drop what is older than a week.
  std::printf("cleaned up: %zu\n", client.cleanup_offline_queue(std::chrono::days{7}));
  return 0;
}
