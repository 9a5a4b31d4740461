// flightlog-bench-soak: the client process of the soak test (bench/soak drives it).
//
// Run mode (default): --producers threads log W2 records (4 double inputs feature1..4,
// output prediction; priorities 5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW) at a
// sustained total --rate to a ClickHouse endpoint, with a persistent offline_dir. Every
// record is identifiable by its inputs: feature1 = producer, feature2 = a value unique
// per producer across runs (--run * 1e9 + sequence), feature3 = run.
// Every --ack-ms the main thread notes how far each producer has logged, calls flush(),
// and appends to the ack log what that flush acknowledged:
//   A <producer> <lo> <hi>   feature2 values in [lo, hi) were logged and are committed,
//   R <producer> <value>     except this one, which log_prediction() refused (not Ok).
// Each line is written with write() and the file fdatasync'ed, so the log survives a
// SIGKILL of this process (and of the machine, once synced). Every second it appends a
// status line to --stats (counters of this run, VmHWM). SIGTERM or SIGINT ends
// producing: a last flush and ack round, then the journal is drained (retry_failed and
// sync_offline_queue until the queue and the failed set are empty, or --drain-timeout),
// and a final status line marked final=1. Exit 0 if drained, 3 if not.
//
// The api key (the ClickHouse password) is read from the file named by
// FLIGHTLOG_SOAK_PASSWORD_FILE, never from the command line, and is never printed.
//
// Check mode (--check): reads the ack log and a file of "<producer>\t<feature2>" lines
// present in ClickHouse, and prints how many acknowledged records are missing (LOST).
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "flightlog/client.hpp"
#include "flightlog/error.hpp"

namespace fl = flightlog;
namespace fb = flightlog::bench;
using namespace std::chrono_literals;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_stop(int) {
  g_stop = 1;
}

constexpr std::uint64_t kRunStride = 1'000'000'000;

struct Producer {
  std::atomic<std::uint64_t> logged{0};  // records attempted so far (sequence of the next)
  std::mutex m;
  std::vector<std::uint64_t> refused;  // sequences log_prediction() did not accept
  std::atomic<std::uint64_t> ok{0};
  std::uint64_t acked_upto = 0;  // main thread only: first sequence not yet in the ack log
};

// Appends a line to a file opened with O_APPEND; exits on a short write (the ack log
// must not silently miss a line).
void append(int fd, const std::string& s) {
  if (::write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) {
    std::perror("flightlog-bench-soak: write");
    std::exit(2);
  }
}

int open_append(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(("flightlog-bench-soak: open " + path).c_str());
    std::exit(2);
  }
  return fd;
}

std::uint64_t proc_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(k, 0) == 0) return std::strtoull(line.c_str() + k.size(), nullptr, 10);
  }
  return 0;
}

std::string stats_line(const fl::OfflineStatus& s, int run, double elapsed, std::uint64_t attempted,
                       std::uint64_t ok, bool final_line) {
  const auto& d = s.dropped;
  std::ostringstream o;
  o << "run=" << run << " t=" << elapsed << " attempted=" << attempted << " ok=" << ok
    << " committed=" << s.committed_total << " synced=" << s.synced_total
    << " failed_total=" << s.failed_total << " possibly_duplicated=" << s.possibly_duplicated
    << " queue_size=" << s.queue_size << " failed_count=" << s.failed_count;
  for (std::size_t p = 0; p < fl::kPriorityCount; ++p)
    o << " queue_full_" << p << "=" << d.queue_full[p];
  o << " too_large=" << d.too_large << " invalid=" << d.invalid << " closed=" << d.closed
    << " journal_full=" << d.journal_full << " journal_error=" << d.journal_error;
  for (std::size_t p = 0; p < fl::kPriorityCount; ++p) o << " evicted_" << p << "=" << d.evicted[p];
  o << " cleaned_up=" << d.cleaned_up << " vmhwm_kb=" << proc_status_kb("VmHWM")
    << " vmrss_kb=" << proc_status_kb("VmRSS") << " final=" << (final_line ? 1 : 0) << "\n";
  return o.str();
}

struct RunArgs {
  int run = 0;
  int producers = 4;
  double rate = 20000;
  std::string offline_dir, endpoint, ca_file, table = "flightlog_records", user = "default";
  std::string ack_log, stats;
  int ack_ms = 100;
  int drain_timeout_s = 180;
};

void produce(fl::Client& client, const fl::Schema& schema, Producer& p, int id, int run,
             double rate) {
  const std::vector<fl::Priority> prio = fb::w2_priorities(65536, 1000 + id);
  const std::uint64_t base = static_cast<std::uint64_t>(run) * kRunStride;
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t seq = 0;
  while (g_stop == 0) {
    const double due_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto due = static_cast<std::uint64_t>(due_s * rate);
    if (seq >= due) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    for (; seq < due && g_stop == 0; ++seq) {
      const double f2 = static_cast<double>(base + seq);
      const fl::LogResult r =
          client.log_prediction(schema,
                                {static_cast<double>(id), f2, static_cast<double>(run),
                                 0.5 * static_cast<double>(seq & 1023)},
                                {0.25 + 1e-3 * static_cast<double>(seq & 1023)}, prio[seq & 65535]);
      if (r == fl::LogResult::Ok) {
        p.ok.fetch_add(1, std::memory_order_relaxed);
      } else {
        std::lock_guard<std::mutex> lock(p.m);
        p.refused.push_back(seq);
      }
      // Released after the refusal is noted: a reader that sees `logged` sees it too.
      p.logged.store(seq + 1, std::memory_order_release);
    }
  }
}

// One ack round: what every producer had logged before flush() is acknowledged.
void ack_round(fl::Client& client, std::vector<Producer>& producers, int ack_fd, int run) {
  std::vector<std::uint64_t> hi(producers.size());
  for (std::size_t i = 0; i < producers.size(); ++i)
    hi[i] = producers[i].logged.load(std::memory_order_acquire);
  client.flush();
  const std::uint64_t base = static_cast<std::uint64_t>(run) * kRunStride;
  std::string out;
  for (std::size_t i = 0; i < producers.size(); ++i) {
    Producer& p = producers[i];
    if (hi[i] == p.acked_upto) continue;
    std::vector<std::uint64_t> refused;
    {
      std::lock_guard<std::mutex> lock(p.m);
      auto split = std::partition(p.refused.begin(), p.refused.end(),
                                  [&](std::uint64_t s) { return s < hi[i]; });
      refused.assign(p.refused.begin(), split);
      p.refused.erase(p.refused.begin(), split);
    }
    for (const std::uint64_t s : refused)
      out += "R " + std::to_string(i) + " " + std::to_string(base + s) + "\n";
    out += "A " + std::to_string(i) + " " + std::to_string(base + p.acked_upto) + " " +
           std::to_string(base + hi[i]) + "\n";
    p.acked_upto = hi[i];
  }
  if (out.empty()) return;
  append(ack_fd, out);
  ::fdatasync(ack_fd);
}

std::string read_password() {
  const char* path = std::getenv("FLIGHTLOG_SOAK_PASSWORD_FILE");
  if (path == nullptr || *path == '\0') return {};
  std::ifstream in(path);
  std::string pw;
  std::getline(in, pw);
  return pw;
}

int run_client(const RunArgs& a) {
  fl::Options o;
  o.endpoint = a.endpoint;
  o.upload_format = fl::UploadFormat::ClickHouse;
  o.clickhouse_table = a.table;
  o.clickhouse_user = a.user;
  o.api_key = read_password();
  if (o.api_key.empty()) {
    std::cerr << "flightlog-bench-soak: no password: set FLIGHTLOG_SOAK_PASSWORD_FILE to a "
                 "file holding it\n";
    return 2;
  }
  o.ca_file = a.ca_file;
  o.offline_dir = a.offline_dir;
  o.offline_sync_interval = 1s;
  o.backoff_base = 200ms;
  o.backoff_cap = 5000ms;
  o.connect_timeout = 2000ms;
  o.handshake_timeout = 2000ms;
  o.request_timeout = 15000ms;
  o.max_producer_threads = static_cast<std::size_t>(a.producers) + 2;

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  const int ack_fd = open_append(a.ack_log);
  const int stats_fd = open_append(a.stats);
  std::vector<Producer> producers(static_cast<std::size_t>(a.producers));
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto totals = [&](std::uint64_t& attempted, std::uint64_t& ok) {
    attempted = ok = 0;
    for (auto& p : producers) {
      attempted += p.logged.load(std::memory_order_acquire);
      ok += p.ok.load(std::memory_order_relaxed);
    }
  };

  try {
    fl::Client client(o);
    const fl::Schema schema =
        client.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});
    {
      std::string starts;
      for (int i = 0; i < a.producers; ++i)
        starts += "S " + std::to_string(i) + " " +
                  std::to_string(static_cast<std::uint64_t>(a.run) * kRunStride) + " run " +
                  std::to_string(a.run) + "\n";
      append(ack_fd, starts);
      ::fdatasync(ack_fd);
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < a.producers; ++i)
      threads.emplace_back(produce, std::ref(client), std::cref(schema),
                           std::ref(producers[static_cast<std::size_t>(i)]), i, a.run,
                           a.rate / a.producers);

    auto next_stats = std::chrono::steady_clock::now() + 1s;
    std::uint64_t attempted = 0, ok = 0;
    while (g_stop == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(a.ack_ms));
      ack_round(client, producers, ack_fd, a.run);
      if (std::chrono::steady_clock::now() >= next_stats) {
        next_stats += 1s;
        totals(attempted, ok);
        append(stats_fd,
               stats_line(client.get_offline_status(), a.run, elapsed(), attempted, ok, false));
      }
    }
    for (auto& t : threads) t.join();
    ack_round(client, producers, ack_fd, a.run);

    // Drain: the periodic sync keeps running; these passes ignore its backoff.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(a.drain_timeout_s);
    bool drained = false;
    while (std::chrono::steady_clock::now() < deadline) {
      client.retry_failed();
      client.sync_offline_queue();
      const fl::OfflineStatus s = client.get_offline_status();
      if (s.queue_size == 0 && s.failed_count == 0) {
        drained = true;
        break;
      }
      std::this_thread::sleep_for(500ms);
    }
    totals(attempted, ok);
    append(stats_fd,
           stats_line(client.get_offline_status(), a.run, elapsed(), attempted, ok, true));
    if (!drained) {
      std::cerr << "flightlog-bench-soak: journal not drained within " << a.drain_timeout_s
                << " s: " << client.get_offline_status().last_error << "\n";
    }
    ::close(ack_fd);
    ::close(stats_fd);
    return drained ? 0 : 3;
  } catch (const fl::Error& e) {
    std::cerr << "flightlog-bench-soak: " << e.what() << "\n";
    return 2;
  }
}

// LOST: acknowledged (producer, feature2) not in the present file.
int check(const std::string& ack_log, const std::string& present_path) {
  std::map<std::uint64_t, std::vector<std::uint64_t>> present;
  {
    std::ifstream in(present_path);
    std::uint64_t p = 0, v = 0;
    while (in >> p >> v) present[p].push_back(v);
  }
  for (auto& [p, v] : present) std::sort(v.begin(), v.end());
  std::map<std::uint64_t, std::vector<std::uint64_t>> refused;
  std::vector<std::array<std::uint64_t, 3>> ranges;
  {
    std::ifstream in(ack_log);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string kind;
      std::uint64_t p = 0, x = 0, y = 0;
      ls >> kind >> p >> x;
      if (kind == "R") refused[p].push_back(x);
      if (kind == "A" && (ls >> y)) ranges.push_back({p, x, y});
    }
  }
  for (auto& [p, v] : refused) std::sort(v.begin(), v.end());
  auto count_in = [](const std::vector<std::uint64_t>& v, std::uint64_t lo, std::uint64_t hi) {
    return static_cast<std::uint64_t>(std::lower_bound(v.begin(), v.end(), hi) -
                                      std::lower_bound(v.begin(), v.end(), lo));
  };
  std::uint64_t acked = 0, lost = 0, shown = 0;
  for (const auto& [p, lo, hi] : ranges) {
    const auto& pv = present[p];
    const auto& rv = refused[p];
    const std::uint64_t a = (hi - lo) - count_in(rv, lo, hi);
    const std::uint64_t here = count_in(pv, lo, hi);
    acked += a;
    if (here >= a) continue;
    lost += a - here;
    for (std::uint64_t v = lo; v < hi && shown < 10; ++v) {
      if (!std::binary_search(pv.begin(), pv.end(), v) &&
          !std::binary_search(rv.begin(), rv.end(), v)) {
        std::cout << "lost: producer " << p << " feature2 " << v << "\n";
        ++shown;
      }
    }
  }
  std::cout << "acknowledged=" << acked << " lost=" << lost << "\n";
  return lost == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flightlog-bench-soak: the client of the soak test (see bench/soak)"};
  RunArgs a;
  bool check_mode = false;
  std::string present;
  app.add_flag("--check", check_mode, "Compare --ack-log with --present and print LOST");
  app.add_option("--present", present, "Check: file of '<producer>\\t<feature2>' in ClickHouse");
  app.add_option("--run", a.run, "Run number (sets the feature2 range of this run)");
  app.add_option("--producers", a.producers, "Producer threads");
  app.add_option("--rate", a.rate, "Total records per second over all producers");
  app.add_option("--offline-dir", a.offline_dir, "Journal directory (kept across runs)");
  app.add_option("--endpoint", a.endpoint, "ClickHouse HTTPS URL");
  app.add_option("--ca-file", a.ca_file, "CA certificate of the server");
  app.add_option("--table", a.table, "ClickHouse table");
  app.add_option("--user", a.user, "ClickHouse user");
  app.add_option("--ack-log", a.ack_log, "Ack log (appended)")->required();
  app.add_option("--stats", a.stats, "Status lines (appended)");
  app.add_option("--ack-ms", a.ack_ms, "Milliseconds between flush/ack rounds");
  app.add_option("--drain-timeout", a.drain_timeout_s, "Seconds to drain after SIGTERM");
  CLI11_PARSE(app, argc, argv);
  if (check_mode) return check(a.ack_log, present);
  if (a.offline_dir.empty() || a.endpoint.empty() || a.stats.empty() || a.producers < 1 ||
      a.rate <= 0) {
    std::cerr << "flightlog-bench-soak: --offline-dir, --endpoint, --stats, --producers >= 1 "
                 "and --rate > 0 are required\n";
    return 2;
  }
  return run_client(a);
}
