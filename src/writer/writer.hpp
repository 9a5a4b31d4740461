// The writer: drains the per-priority queues and commits them to the journal in
// batches, one LMDB write transaction per batch.
//
// It is a two-stage pipeline, because a commit in Durability::Full waits for the device
// (two fdatasyncs, 5-30 ms on a shared VM) and the queues must keep draining meanwhile:
//
//   drain thread                                  commit thread
//   ------------                                  -------------
//   pass: read the flush ticket; drain CRITICAL,   waits for a batch, commits it (one
//   HIGH, NORMAL, LOW from every producer,         write transaction), completes the
//   encoding records into the filling batch        flush ticket the batch carries, frees
//   hand the batch over when the commit thread     the batch; runs commands (cleanup,
//   is free and min_commit_interval has passed     uploader bookkeeping) between batches
//   (at once for a flush or a full batch); else
//   keep filling it (up to batch_max_records),
//   then wait
//
// Two batch buffers alternate: one filling, one committing. While a commit waits for
// the device, the next batch grows with everything that arrives, so throughput is not
// bounded by the device's latency (group commit), and memory stays bounded by
// batch_max_records plus the queues.
//
// flush(): a pass that found every queue empty after reading ticket T proves that all
// records logged before T's flush() are in the filling batch or an earlier one. The
// filling batch then carries T; when it is committed (batches commit in order), T is
// complete. An empty batch may carry a ticket alone.
//
// The hot path never wakes the drain thread (that would be a system call): it sleeps
// writer_poll_interval when every queue is empty. With ClockSource::Cached, every wait
// of the drain thread is bounded by writer_poll_interval, so it keeps the clock fresh.
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

// Status side (any thread): returns once the drain thread is not inside a dequeue (see
// WriterCounters::in_batches), or after kDequeueWaitLimit if it stays there (descheduled
// mid-dequeue: it runs at SCHED_BATCH, and a caller of real-time priority on its CPU
// would otherwise wait for the scheduler to run it). Returns false in that case: a status
// read then may miss that one dequeue's records.
inline constexpr std::chrono::milliseconds kDequeueWaitLimit{5};
bool wait_out_dequeue(const WriterCounters& counters) noexcept;

struct WriterConfig {
  std::size_t batch_max_records = 65536;
  std::chrono::microseconds batch_max_delay{5000};
  std::chrono::microseconds poll_interval{1000};
  std::chrono::microseconds min_commit_interval{0};
  Durability durability = Durability::Full;
  std::chrono::milliseconds periodic_sync_interval{100};
  std::size_t max_queued = 0;
  std::size_t max_record_slots = 256;
  // ClockSource::Cached: the word the drain thread refreshes (see tick_clock); nullptr
  // for ClockSource::Precise.
  CachedClock* cached_clock = nullptr;
};

class Writer {
 public:
  Writer(const WriterConfig& config, Journal& journal, QueueSet& queues,
         ProducerRegistry& producers, SchemaTable& schemas, WriterCounters& counters);
  ~Writer();  // stop()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Drains every queue, commits, and joins both threads. Idempotent.
  void stop();

  // Waits until everything enqueued before the call is committed (or dropped and
  // counted). False if `deadline` passed first, or (Durability::Periodic) if a device
  // flush failed since the last flush that completed before this one: the records are
  // committed but may not survive a power loss.
  bool flush(std::optional<std::chrono::steady_clock::time_point> deadline);

  // ---- Crash flush (src/core/crash_flush.hpp) ----------------------------------------
  // The two calls below are async-signal-safe: they touch only lock-free atomics, so a
  // signal handler may call them on any thread but the writer's own two.

  // Asks for a flush without waiting and without waking anyone (the drain thread sees
  // it within writer_poll_interval). Returns the ticket to pass to emergency_done().
  std::uint64_t emergency_request() noexcept;
  // True once everything enqueued before emergency_request() returned `ticket` is
  // committed (or dropped and counted), or once the writer has stopped.
  bool emergency_done(std::uint64_t ticket) const noexcept;
  // True on the writer's drain and commit threads (a crash flush there would wait for
  // itself).
  static bool on_writer_thread() noexcept;

  // Runs `fn` on the commit thread between batches (the only thread that writes the
  // journal) and returns a future of its result (which rethrows what `fn` throws).
  // Commands run in the order they were submitted. Once the writer has stopped, `fn`
  // runs on the caller's thread (no other thread writes then).
  template <typename F>
  auto submit(F fn) -> std::future<decltype(fn())> {
    using R = decltype(fn());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(fn));
    auto result = task->get_future();
    bool inline_run = false;
    {
      std::lock_guard lock(mu_);
      if (commit_exited_) {
        inline_run = true;
      } else {
        commands_.emplace_back([task] { (*task)(); });
      }
    }
    if (inline_run) {
      (*task)();
    } else {
      commit_wake_.notify_one();
    }
    return result;
  }

  // submit() and wait.
  template <typename F>
  auto call(F fn) -> decltype(fn()) {
    return submit(std::move(fn)).get();
  }

 private:
  struct Batch {
    std::vector<std::byte> arena;
    std::vector<PendingRecord> records;
    std::uint64_t ticket = 0;  // flush ticket completed once this batch is committed
    // Records dequeued into this batch (malformed ones too), counted in
    // WriterCounters::in_batches from the moment they left the queue until the batch is
    // committed or dropped.
    std::size_t drained = 0;
    void clear() {
      arena.clear();
      records.clear();
      ticket = 0;
      drained = 0;
    }
  };

  void drain_loop();
  void commit_loop();
  // One pass over every queue into `filling_`; true if every queue was found empty.
  bool drain_pass();
  // Drain thread: refreshes the cached clock when it is kCachedClockPeriod old, and the
  // TSC calibration once a second.
  void tick_clock(std::chrono::steady_clock::time_point now) noexcept;
  void drain_producer(std::size_t priority, Producer& producer, bool& stop_pass);
  void encode(const Slot* slots, std::size_t n_slots, Priority p);
  // Drain thread: counts the records that start in `slots`, just dequeued for `filling_`
  // (see Batch::drained).
  void count_drained(const Slot* slots, std::size_t n);
  bool filling_full() const;
  void commit(Batch& batch);
  void run_commands();

  const WriterConfig config_;
  Journal& journal_;
  QueueSet& queues_;
  ProducerRegistry& producers_;
  SchemaTable::Reader schemas_;  // drain thread only
  WriterCounters& counters_;
  TimestampConverter clock_;  // drain thread only

  // Drain thread only.
  std::unique_ptr<Slot[]> drain_buf_;
  std::chrono::steady_clock::time_point pass_start_;
  std::chrono::steady_clock::time_point last_calibration_;
  std::chrono::steady_clock::time_point last_clock_tick_;
  std::chrono::steady_clock::time_point last_handover_;  // see min_commit_interval
  Batch batches_[2];
  Batch* filling_ = &batches_[0];

  // Commit thread only.
  std::chrono::steady_clock::time_point last_device_sync_;
  // A device flush failed and no flush ticket has been completed (as failed) since.
  bool sync_failure_unreported_ = false;

  // Shared, under mu_.
  std::mutex mu_;
  std::condition_variable drain_wake_;   // the drain thread sleeps on it
  std::condition_variable commit_wake_;  // the commit thread sleeps on it
  std::condition_variable done_;         // flush() waits on it
  Batch* ready_ = nullptr;               // handed to the commit thread, until committed
  std::uint64_t flush_done_ = 0;
  // Tickets up to this one completed after a failed device flush (see flush()).
  std::uint64_t sync_failed_through_ = 0;
  bool drain_exited_ = false;
  bool commit_exited_ = false;
  std::deque<std::function<void()>> commands_;

  std::atomic<std::uint64_t> flush_requested_{0};
  // Mirrors of flush_done_ and commit_exited_ readable without mu_ (crash flush).
  std::atomic<std::uint64_t> flush_done_published_{0};
  std::atomic<bool> exited_published_{false};
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
  static_assert(std::atomic<bool>::is_always_lock_free);
  std::atomic<bool> stop_{false};
  std::thread commit_thread_;
  std::thread drain_thread_;
};

}  // namespace flightlog::detail
