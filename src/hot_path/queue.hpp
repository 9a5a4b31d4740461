// The per-priority lock-free queues and the traits they are tuned with.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <cstdlib>
#include <cstring>

#include "hot_path/slot.hpp"

namespace flightlog::detail {

// Most slots one producer (thread) may have waiting in one priority's queue.
//
// Why a hard per-producer cap: moodycamel's explicit producers keep every block they
// ever took and reuse only their own, never returning them to the shared pool. Without
// a cap, one thread's burst (or a thread that has since gone idle) can hold every block
// of the pool, and another thread then finds the queue "full" forever although it is
// empty. With the cap, a producer never holds more than kProducerSlots / 64 + 1 blocks,
// and the pool is sized for max_producer_threads such producers, so every thread always
// gets its share.
inline constexpr std::size_t kProducerSlots = 4096;

struct QueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  // 64 slots x 64 B = one 4 KiB page per block: a producer cycles through few blocks,
  // so the hot path stays on warm memory.
  static constexpr std::size_t BLOCK_SIZE = 64;
  // The cap above (enforced by moodycamel at block granularity).
  static constexpr std::size_t MAX_SUBQUEUE_SIZE = kProducerSlots;
  // Block-index entries per producer: room for the capped number of blocks, so
  // try_enqueue never needs to grow (allocate) the index.
  static constexpr std::size_t EXPLICIT_INITIAL_INDEX_SIZE = 128;
  // flightlog always uses producer tokens; no implicit producers, no hash table.
  static constexpr std::size_t INITIAL_IMPLICIT_PRODUCER_HASH_SIZE = 0;

  // Touch every page at allocation, so the first pass of the hot path through the
  // preallocated pool does not take page faults.
  static void* malloc(std::size_t size) {
    void* p = std::malloc(size);
    if (p != nullptr) std::memset(p, 0, size);
    return p;
  }
  static void free(void* p) { std::free(p); }
};

using SlotQueue = moodycamel::ConcurrentQueue<Slot, QueueTraits>;
using ProducerToken = moodycamel::ProducerToken;

}  // namespace flightlog::detail
