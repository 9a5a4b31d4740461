// The writer thread: drains the per-priority queues and commits them to the journal in
// batches, one LMDB write transaction per batch.
//
// One pass: read the flush ticket; drain CRITICAL from every producer, then HIGH,
// NORMAL, LOW, encoding each record into the batch; stop early when the batch reaches
// batch_max_records or batch_max_delay; commit. A pass that found every queue empty
// after reading the ticket proves that everything logged before the ticket's flush()
// is committed, so it completes that ticket. Between passes it runs queued commands
// (cleanup), and when every queue was empty it sleeps up to writer_poll_interval: the
// hot path never wakes it, because waking is a system call.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/counters.hpp"
#include "flightlog/options.hpp"
#include "format/record.hpp"
#include "hot_path/clock.hpp"
#include "hot_path/producers.hpp"
#include "hot_path/schema_table.hpp"
#include "journal/journal.hpp"

namespace flightlog::detail {

struct WriterConfig {
  std::size_t batch_max_records = 8192;
  std::chrono::microseconds batch_max_delay{5000};
  std::chrono::microseconds poll_interval{1000};
  Durability durability = Durability::Full;
  std::chrono::milliseconds periodic_sync_interval{100};
  std::size_t max_queued = 0;
  std::size_t max_record_slots = 256;
};

class Writer {
 public:
  Writer(const WriterConfig& config, Journal& journal, QueueSet& queues,
         ProducerRegistry& producers, SchemaTable& schemas, WriterCounters& counters);
  ~Writer();  // stop()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Drains every queue, commits, and joins the thread. Idempotent.
  void stop();

  // Waits until everything enqueued before the call is committed (or dropped and
  // counted). False if `deadline` passed first.
  bool flush(std::optional<std::chrono::steady_clock::time_point> deadline);

  // Runs `fn` on the writer thread between batches and returns its result; rethrows
  // what it throws. Once the writer has stopped, `fn` runs on the caller's thread (no
  // other thread writes then).
  template <typename F>
  auto call(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto result = task->get_future();
    bool inline_run = false;
    {
      std::lock_guard lock(mu_);
      if (exited_.load()) {
        inline_run = true;
      } else {
        commands_.emplace_back([task] { (*task)(); });
      }
    }
    if (inline_run) {
      (*task)();
    } else {
      wake_.notify_one();
    }
    return result.get();
  }

  std::string last_error() const;

 private:
  void run();
  // One pass over every queue; returns true if every queue was found empty.
  bool drain_pass();
  void drain_producer(std::size_t priority, Producer& producer, bool& batch_full);
  void encode(const Slot* slots, std::size_t n_slots, Priority p);
  void commit_batch();
  void run_commands();

  const WriterConfig config_;
  Journal& journal_;
  QueueSet& queues_;
  ProducerRegistry& producers_;
  SchemaTable::Reader schemas_;
  WriterCounters& counters_;
  TimestampConverter clock_;

  std::unique_ptr<Slot[]> drain_buf_;
  std::size_t drain_cap_ = 0;
  std::vector<std::byte> arena_;
  std::vector<PendingRecord> batch_;
  std::chrono::steady_clock::time_point batch_start_;
  std::chrono::steady_clock::time_point last_device_sync_;
  std::chrono::steady_clock::time_point last_calibration_;

  mutable std::mutex mu_;
  std::condition_variable wake_;  // writer sleeps on it
  std::condition_variable done_;  // flush() waits on it
  std::atomic<std::uint64_t> flush_requested_{0};
  std::uint64_t flush_done_ = 0;  // under mu_
  std::atomic<bool> stop_{false};
  std::atomic<bool> exited_{false};  // run() returned; flush() stops waiting
  std::deque<std::function<void()>> commands_;
  std::string last_error_;  // under mu_
  std::thread thread_;
};

}  // namespace flightlog::detail
