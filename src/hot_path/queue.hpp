// The per-priority lock-free queues and the traits they are tuned with.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <cstdlib>
#include <cstring>

#include "hot_path/hot_arena.hpp"
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

  // From the client's HotArena where the allocation happens in its scope (the pools, in
  // the client's constructor; a thread's producers, on its first call), so the hot path's
  // objects share huge pages. Every page is touched at allocation, so the first pass of
  // the hot path through the preallocated pool does not take page faults.
  static void* malloc(std::size_t size) {
    void* p = hot_alloc(size);
    if (p != nullptr) std::memset(p, 0, size);
    return p;
  }
  static void free(void* p) { hot_free(p); }
};

using SlotQueue = moodycamel::ConcurrentQueue<Slot, QueueTraits>;

// A queue as the client makes it: a full share (kProducerSlots) preallocated for each
// of `max_producers` explicit producers.
inline SlotQueue make_slot_queue(std::size_t max_producers) {
  return SlotQueue(kProducerSlots, max_producers, 0);
}

// At least the bytes make_slot_queue() allocates for its block pool: moodycamel's own
// sizing of the pool for those arguments, with room to spare per block for its header.
constexpr std::size_t slot_queue_pool_bytes(std::size_t max_producers) {
  const std::size_t blocks =
      (kProducerSlots / QueueTraits::BLOCK_SIZE - 1) * (max_producers + 1) + 2 * max_producers;
  return blocks * (QueueTraits::BLOCK_SIZE * sizeof(Slot) + 256) + 4096;
}
using ProducerToken = moodycamel::ProducerToken;

}  // namespace flightlog::detail
