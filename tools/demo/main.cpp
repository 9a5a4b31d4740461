// flightlog-demo: the main job. Simulates an inference service: several threads log W2
// predictions (4 features, 1 prediction; 5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW)
// into a journal, then it prints the status and the first records of the journal as
// flightlog-dump would.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;

namespace {

fl::Priority w2_priority(std::uint32_t r) {
  const std::uint32_t pct = r % 100;
  if (pct < 5) return fl::Priority::Critical;
  if (pct < 20) return fl::Priority::High;
  if (pct < 80) return fl::Priority::Normal;
  return fl::Priority::Low;
}

void print_status(const fl::OfflineStatus& s) {
  std::printf(
      "status: queue_size=%zu (CRITICAL %zu, HIGH %zu, NORMAL %zu, LOW %zu) in_memory=%zu\n",
      s.queue_size, s.queue_size_by_priority[0], s.queue_size_by_priority[1],
      s.queue_size_by_priority[2], s.queue_size_by_priority[3], s.in_memory);
  std::printf("        failed_count=%zu committed_total=%llu next_seq=%llu journal_id=%s\n",
              s.failed_count, static_cast<unsigned long long>(s.committed_total),
              static_cast<unsigned long long>(s.next_seq), s.journal_id.c_str());
  std::uint64_t full = 0;
  for (auto v : s.dropped.queue_full) full += v;
  std::uint64_t evicted = 0;
  for (auto v : s.dropped.evicted) evicted += v;
  std::printf(
      "        dropped: queue_full=%llu too_large=%llu invalid=%llu journal_full=%llu "
      "evicted=%llu cleaned_up=%llu\n",
      static_cast<unsigned long long>(full), static_cast<unsigned long long>(s.dropped.too_large),
      static_cast<unsigned long long>(s.dropped.invalid),
      static_cast<unsigned long long>(s.dropped.journal_full),
      static_cast<unsigned long long>(evicted),
      static_cast<unsigned long long>(s.dropped.cleaned_up));
  std::printf("        journal: map %zu MiB, used %zu KiB\n", s.journal_map_bytes >> 20,
              s.journal_used_bytes >> 10);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flightlog demo: log W2 predictions from several threads into a journal"};
  std::string dir = "./flightlog_offline";
  int threads = 4;
  std::size_t per_thread = 250'000;
  std::size_t show = 5;
  app.add_option("--dir", dir, "Journal directory")->capture_default_str();
  app.add_option("--threads", threads, "Logging threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--records", per_thread, "Records per thread")->capture_default_str();
  app.add_option("--show", show, "Records of the journal to print at the end")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    fl::Options opts;
    opts.offline_dir = dir;
    // The demo wants every record: let NORMAL/LOW wait rather than drop when a burst
    // outruns the writer.
    opts.full_policy = {fl::FullPolicy::Block, fl::FullPolicy::Block, fl::FullPolicy::Block,
                        fl::FullPolicy::Block};
    fl::Client client(opts);
    const fl::Schema schema =
        client.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});

    std::printf("logging %zu W2 predictions from %d threads into %s\n",
                per_thread * static_cast<std::size_t>(threads), threads, dir.c_str());
    std::atomic<std::uint64_t> accepted{0};
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
        std::uniform_real_distribution<double> x(-1.0, 1.0);
        std::uint64_t ok = 0;
        for (std::size_t i = 0; i < per_thread; ++i) {
          const double f1 = x(rng), f2 = x(rng), f3 = x(rng), f4 = x(rng);
          const double p = 0.25 * (f1 + f2 + f3 + f4);
          ok += client.log_prediction(schema, {f1, f2, f3, f4}, {p}, w2_priority(rng())) ==
                fl::LogResult::Ok;
        }
        accepted += ok;
      });
    }
    for (auto& w : workers) w.join();
    client.flush();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("accepted %llu records; committed in %.3f s (%.0f records/s)\n",
                static_cast<unsigned long long>(accepted.load()), secs,
                static_cast<double>(accepted.load()) / secs);
    print_status(client.get_offline_status());
  } catch (const fl::Error& e) {
    std::cerr << "flightlog-demo: " << e.what() << "\n";
    return 2;
  }

  // The client is closed; show the journal as flightlog-dump prints it.
  auto journal = fd::Journal::open_read_only(dir);
  std::printf("first %zu records of each priority (flightlog-dump %s):\n", show, dir.c_str());
  fd::DecodedRecord rec;
  std::string line;
  for (std::size_t s = 0; s < 4; ++s) {
    journal->scan(static_cast<fd::RecordSet>(s), 0, show,
                  [&](std::uint64_t seq, std::span<const std::byte> b) {
                    if (!fd::decode_record(b, rec).empty()) return;
                    line.clear();
                    fd::append_record_json(line, journal->journal_id(), seq, rec,
                                           fd::RecordState::Queued);
                    std::printf("%s\n", line.c_str());
                  });
  }
  return 0;
}
