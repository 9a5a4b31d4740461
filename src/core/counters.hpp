// Counters shared by the hot path, the writer and get_offline_status().
//
// Hot-path counters are touched only on the rare paths (a drop or a rejection), so the
// accepted path writes no shared cache line. Each group sits on its own cache line.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace flightlog::detail {

struct alignas(64) HotPathCounters {
  std::array<std::atomic<std::uint64_t>, 4> queue_full{};
  std::atomic<std::uint64_t> too_large{0};
  std::atomic<std::uint64_t> invalid{0};
  std::atomic<std::uint64_t> closed{0};
};

struct alignas(64) WriterCounters {
  std::atomic<std::uint64_t> committed{0};
  std::atomic<std::uint64_t> commits{0};  // write transactions that committed records
  std::atomic<std::uint64_t> journal_full{0};
  std::atomic<std::uint64_t> journal_error{0};
  std::atomic<std::uint64_t> malformed{0};  // in-memory records the writer could not read
  std::atomic<std::uint64_t> device_sync_failures{0};  // Durability::Periodic's flushes
  // Records drained from the queues into a batch and not yet committed (or dropped): up
  // to two batches' worth. Raised right after a dequeue (while `dequeuing` is set) and
  // lowered after the journal published the commit's counts. A status reads the queues,
  // waits until `dequeuing` is clear (wait_out_dequeue: at most 5 ms), then reads this,
  // then the journal: a record that moves on between the reads is met again further
  // along, so it may be counted twice for an instant, and zero times only if the drain
  // thread stayed descheduled inside a dequeue for those 5 ms.
  std::atomic<std::uint64_t> in_batches{0};
  std::atomic<bool> dequeuing{false};  // set by the drain thread around each dequeue

  // Why the journal last dropped records (journal_full or journal_error) or last failed
  // to flush to the device; empty if it never did. Written only on such failures, so
  // the mutex costs nothing on commits that succeed.
  void set_journal_error(std::string why) {
    std::lock_guard lock(error_mu_);
    journal_error_text_ = std::move(why);
  }
  std::string journal_error_text() const {
    std::lock_guard lock(error_mu_);
    return journal_error_text_;
  }

 private:
  mutable std::mutex error_mu_;
  std::string journal_error_text_;
};

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace flightlog::detail
