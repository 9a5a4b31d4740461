// flightlog-demo: the main job (the README's first command runs it).
//
// An inference service logs W2 predictions from several threads while the upload
// endpoint is down, then comes up: the demo shows the records piling up in the journal,
// the backlog draining CRITICAL first, the hot-path latency of every call, and checks
// that every acknowledged record arrived. Its parts:
//   cli.*                the command line, the defaults and the exit codes
//   workload.*           the logging threads, paced, with a TSC timing of every call
//   loopback_receiver.*  the endpoint: the tests' TLS receiver, brought up mid-run
//   port_relay.*         the endpoint's port, refusing until the receiver is up
//   clickhouse.*         --clickhouse: table creation and the arrival count by SQL
//   status_line.*        the live status line and its samples
//   report.*             the latency table, the totals and the checks
//   plot.*               data files, the gnuplot script and the SVGs
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "bench/common.hpp"  // TscClock (the TSC's rate, as the benchmarks measure it), TempDir
#include "cli.hpp"
#include "clickhouse.hpp"
#include "flightlog/flightlog.hpp"
#include "loopback_receiver.hpp"
#include "plot.hpp"
#include "report.hpp"
#include "status_line.hpp"
#include "text.hpp"
#include "workload.hpp"

namespace fl = flightlog;
namespace fs = std::filesystem;
namespace bench = flightlog::bench;
using namespace flightlog::demo;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto kSampleEvery = std::chrono::milliseconds(100);
constexpr auto kPollEvery = std::chrono::milliseconds(20);

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) {
  g_interrupted = 1;
}

// The first Ctrl-C ends the logging early and still drains and reports; a second one
// ends the demo at once (SA_RESETHAND).
void catch_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

fl::Options demo_options(const DemoConfig& cfg, const fs::path& journal) {
  fl::Options o;
  o.offline_dir = journal;
  o.max_producer_threads = static_cast<std::size_t>(cfg.threads);
  o.upload_gzip = cfg.gzip;
  o.upload_batch_max_records = cfg.batch_records;
  // Short waits, so a demo of seconds shows the whole story: an upload pass every
  // second, retries after at most a second, a refused connection noticed at once.
  o.offline_sync_interval = std::chrono::seconds(1);
  o.backoff_base = std::chrono::milliseconds(100);
  o.backoff_cap = std::chrono::milliseconds(1000);
  o.connect_timeout = std::chrono::milliseconds(2000);
  return o;
}

std::string priority_counts(const std::array<std::size_t, fl::kPriorityCount>& q) {
  return "CRITICAL " + grouped(q[0]) + ", HIGH " + grouped(q[1]) + ", NORMAL " + grouped(q[2]) +
         ", LOW " + grouped(q[3]);
}

int run(const DemoConfig& cfg) {
  // A private directory for the run's journal (unless --dir) and the receiver's CA
  // file, removed at the end.
  const bench::TempDir work("flightlog-demo");
  const fs::path journal = cfg.dir.empty() ? work.path() / "journal" : cfg.dir;
  fl::Options options = demo_options(cfg, journal);

  std::unique_ptr<LoopbackReceiver> receiver;
  std::unique_ptr<ClickHouse> clickhouse;
  if (cfg.clickhouse()) {
    clickhouse = std::make_unique<ClickHouse>(cfg.clickhouse_url, cfg.clickhouse_user,
                                              cfg.clickhouse_password, cfg.ca_file);
    clickhouse->create_table(cfg.clickhouse_table);
    options.endpoint = cfg.clickhouse_url;
    options.upload_format = fl::UploadFormat::ClickHouse;
    options.clickhouse_table = cfg.clickhouse_table;
    options.clickhouse_user = cfg.clickhouse_user;
    options.api_key = cfg.clickhouse_password;
    options.ca_file = cfg.ca_file;
  } else {
    receiver = std::make_unique<LoopbackReceiver>();
    receiver->write_ca(work.path() / "receiver-ca.pem");
    options.endpoint = receiver->url();
    options.ca_file = work.path() / "receiver-ca.pem";
  }

  std::optional<fl::Client> client(std::in_place, options);
  const fl::Schema schema =
      client->schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});
  const fl::OfflineStatus initial = client->get_offline_status();
  const std::uint64_t first_seq = initial.next_seq;
  if (receiver) receiver->expect_journal(initial.journal_id);

  const bench::TscClock tsc(100'000'000);
  const std::chrono::duration<double> duration(cfg.duration_s);
  Workload workload(*client, schema, cfg.threads, cfg.rate, duration);

  std::printf(
      "flightlog-demo: %d threads log W2 predictions (4 features, 1 prediction; 5%% CRITICAL,\n"
      "15%% HIGH, 60%% NORMAL, 20%% LOW) at %s records/s for %.1f s\n",
      cfg.threads, grouped(static_cast<std::uint64_t>(cfg.rate)).c_str(), cfg.duration_s);
  std::printf("  journal   %s%s\n", journal.c_str(), cfg.dir.empty() ? " (temporary)" : "");
  if (receiver) {
    std::printf(
        "  endpoint  %s: nothing listens there for the first %.1f s; the uploader\n"
        "            finds it offline and backs off (0.1-1 s), the journal holds the records\n",
        options.endpoint.c_str(), cfg.offline_seconds());
  } else {
    // Without the URL's query, which could hold a credential.
    const std::size_t query = cfg.clickhouse_url.find('?');
    const std::string shown =
        cfg.clickhouse_url.substr(0, query) + (query == std::string::npos ? "" : "?...");
    std::printf("  endpoint  ClickHouse %s, table %s, user %s\n", shown.c_str(),
                cfg.clickhouse_table.c_str(), cfg.clickhouse_user.c_str());
  }
  std::printf(
      "  status    C/H/N/L = records queued in the journal per priority; +N mem = accepted,\n"
      "            not yet committed (in the queues or in the writer's batch under way)\n\n");
  std::fflush(stdout);

  StatusDisplay display(::isatty(STDOUT_FILENO) == 1, first_seq);
  catch_interrupt();
  std::uint64_t online_seq = first_seq;
  std::optional<double> up_at_s;
  const auto t0 = clock_type::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
  };
  auto bring_receiver_up = [&] {
    if (!receiver || receiver->up()) return;
    // The backlog: what the writer had committed (sequences are consecutive from
    // first_seq). Not OfflineStatus::next_seq, which may already count a batch whose
    // commit is under way, not yet readable by the uploader.
    const fl::OfflineStatus st = client->get_offline_status();
    online_seq = first_seq + st.committed_total;
    receiver->start();
    up_at_s = seconds_since_start();
    display.event(format("%5.1fs receiver up: ", *up_at_s) + grouped(st.queue_size) +
                  " records wait to be sent (in the journal: " +
                  priority_counts(st.queue_size_by_priority) + ")");
  };
  auto sample = [&] {
    display.record(client->get_offline_status(), seconds_since_start(), workload.calls(),
                   receiver ? receiver->up() : true);
  };

  workload.start();
  bool interrupted = false;
  // Samples every kSampleEvery; checks more often whether the logging is over.
  for (auto next = t0 + kSampleEvery; !workload.finished();) {
    std::this_thread::sleep_for(kPollEvery);
    if (g_interrupted && !interrupted) {
      interrupted = true;
      workload.stop();
      display.event(
          format("%5.1fs interrupted: logging stops; the journal still drains "
                 "(Ctrl-C again to quit)",
                 seconds_since_start()));
    }
    if (seconds_since_start() >= cfg.offline_seconds()) bring_receiver_up();
    if (clock_type::now() >= next) {
      sample();
      next += kSampleEvery;
    }
  }
  workload.join();
  RunTotals totals = sum_totals(workload.tallies());
  totals.seconds = workload.elapsed().count();
  totals.first_seq = first_seq;
  totals.initial_status = initial;
  display.event(format("%5.1fs logging done: ", totals.seconds) + grouped(totals.calls) +
                " calls; waiting for the journal to drain");
  bring_receiver_up();  // when interrupted before it came up
  client->flush();
  const auto drain_deadline =
      clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                              std::chrono::duration<double>(cfg.drain_timeout_s));
  fl::OfflineStatus final_status = client->get_offline_status();
  for (auto next = clock_type::now() + kSampleEvery;
       final_status.queue_size > 0 && clock_type::now() < drain_deadline;) {
    std::this_thread::sleep_for(kPollEvery);
    final_status = client->get_offline_status();
    if (clock_type::now() >= next || final_status.queue_size == 0) {
      display.record(final_status, seconds_since_start(), workload.calls(),
                     receiver ? receiver->up() : true);
      next += kSampleEvery;
    }
  }
  const bool drained = final_status.queue_size == 0;
  display.finish();
  display.event(drained ? format("%5.1fs journal drained", seconds_since_start())
                        : format("%5.1fs --drain-timeout: %s records still queued",
                                 seconds_since_start(), grouped(final_status.queue_size).c_str()));
  totals.final_status = final_status;
  client.reset();  // closes: commits everything, stops the uploader
  if (receiver) receiver->stop();

  // ---- The report --------------------------------------------------------------------
  LatencySummary latency = summarize_latency(workload.tallies(), tsc.ns_per_tick());
  print_latency(latency, cfg.threads, tsc.ns_per_tick());

  int code = kExitOk;
  if (receiver) {
    const ReceiverTally tally = receiver->tally();
    std::uint64_t arrived = 0;
    for (const Arrival& a : tally.first_arrivals) arrived += a.seq >= first_seq ? 1 : 0;
    code = print_totals_and_check(totals, arrived, "arrived at the receiver", tally.duplicates,
                                  drained);
    if (tally.foreign > 0) {
      std::printf("  (%s lines of the receiver were not records of this journal)\n",
                  grouped(tally.foreign).c_str());
    }
    const int order = print_backlog_order(tally, first_seq, online_seq, receiver->started_at());
    if (code == kExitOk) code = order;
  } else {
    try {
      const ClickHouseCount c =
          clickhouse->count(cfg.clickhouse_table, initial.journal_id, first_seq);
      code =
          print_totals_and_check(totals, c.unique_ids, "rows in " + cfg.clickhouse_table + " (SQL)",
                                 c.rows - std::min(c.rows, c.unique_ids), drained);
    } catch (const std::exception& e) {
      std::printf("\ncheck: cannot count the records in ClickHouse: %s\n", e.what());
      code = kExitLost;
    }
  }

  PlotInput plot;
  plot.sorted_ns = std::move(latency.sorted_ns);
  plot.threads = cfg.threads;
  plot.samples = display.samples();
  plot.receiver_up_at = up_at_s;
  plot.logging_ended_at = totals.seconds;
  try {
    const PlotResult r = write_plots(cfg.out, plot);
    std::printf("\ndata:  ");
    for (const auto& p : r.data) std::printf("%s  ", p.c_str());
    std::printf("\nplots: ");
    if (r.plots.empty()) {
      std::printf("none: %s\n       draw them later with: gnuplot %s\n", r.note.c_str(),
                  r.script.c_str());
    } else {
      for (const auto& p : r.plots) std::printf("%s  ", p.c_str());
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::printf("\nplots: cannot write them: %s\n", e.what());
  }
  if (!cfg.dir.empty()) {
    std::printf("journal kept in %s (flightlog-dump %s prints what it holds)\n", journal.c_str(),
                journal.c_str());
  }
  std::printf("exit code %d\n", code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = kExitOk;
  const std::optional<DemoConfig> cfg = parse_command_line(argc, argv, exit_code);
  if (!cfg) return exit_code;
  try {
    return run(*cfg);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "flightlog-demo: " << e.what() << "\n";
    return kExitSetup;
  }
}
