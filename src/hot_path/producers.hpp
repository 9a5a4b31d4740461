// Producers: each logging thread's moodycamel tokens, found from the thread in a few
// nanoseconds, and listed for the writer, which drains them one by one.
//
// Why per-producer draining: a record may span several slots. Dequeuing from one
// producer at a time (try_dequeue_bulk_from_producer) keeps a record's slots together,
// and lets the writer fetch the rest of a record cut by a full buffer from the same
// producer. It is also the fastest dequeue moodycamel offers.
//
// Lifetime: a Client owns its producers; a thread caches raw pointers to them in a
// thread_local table keyed by the client's never-reused id. When a thread exits, after
// its thread_local destructors (which may still log), its producers are marked free for
// the next new thread, provided the client still lives (checked under a global mutex the
// client's destructor also takes).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "hot_path/hot_arena.hpp"
#include "hot_path/queue.hpp"
#include "hot_path/shape_memo.hpp"
#include "hot_path/slot.hpp"

namespace flightlog::detail {

using QueueSet = std::array<SlotQueue, 4>;

// One queue per priority, each made by make_slot_queue(max_producers).
inline QueueSet make_queue_set(std::size_t max_producers) {
  return {make_slot_queue(max_producers), make_slot_queue(max_producers),
          make_slot_queue(max_producers), make_slot_queue(max_producers)};
}

// Cache-line aligned: the tokens, all the hot path reads here, share one line.
struct alignas(64) Producer {
  Producer(QueueSet& queues, std::size_t staging_slots);
  // Beside moodycamel's producers, in the client's HotArena when made in its scope.
  static void* operator new(std::size_t size) { return hot_new(size); }
  static void operator delete(void* p) noexcept { hot_free(p); }
  ProducerToken& token(std::size_t priority) noexcept { return *tokens[priority]; }

  // Inline (no pointer to chase): the first call after an idle pause finds the tokens
  // in the cache lines it loads for the Producer itself.
  std::array<std::optional<ProducerToken>, 4> tokens;  // one per priority
  std::unique_ptr<Slot[]> staging;                     // multi-slot records are built here
  std::atomic<bool> in_use{true};
  ShapeMemo shapes;  // named-form shapes this producer logs as implicit schemas
};

static_assert(sizeof(Producer::tokens) <= 64, "the hot path expects the tokens on one line");

class ProducerRegistry {
 public:
  // `id` comes from next_id(): never reused, so a thread's cache entry for a registry
  // that is gone can never match a new one.
  // `arena`: where a thread's Producer and moodycamel's producers for it are made
  // (nullptr: malloc).
  ProducerRegistry(std::uint64_t id, QueueSet& queues, std::size_t max_producers,
                   std::size_t staging_slots, HotArena* arena);
  static std::uint64_t next_id() noexcept;
  ~ProducerRegistry();
  ProducerRegistry(const ProducerRegistry&) = delete;
  ProducerRegistry& operator=(const ProducerRegistry&) = delete;

  // The calling thread's producer of registry `id` if its thread-local cache holds it,
  // else nullptr (then call local_slow()). Static, so a caller that keeps the id on a
  // cache line it reads anyway touches no registry line.
  [[gnu::always_inline]] static Producer* cached(std::uint64_t id) noexcept {
    // Entry 0 first and apart, so the usual hit (one client) falls straight through.
    if (t_cache_[0].owner == id) [[likely]] {
      return t_cache_[0].producer;
    }
    for (std::size_t i = 1; i < kCacheEntries; ++i) {
      if (t_cache_[i].owner == id) return t_cache_[i].producer;
    }
    return nullptr;
  }

  // Starts loading, for `priority`, the queue's side of the calling thread's most
  // recently looked-up producer: moodycamel's producer object, whose tail index and tail
  // block every enqueue reads. Without this, the call finds that object only at the end
  // of a chain of dependent loads (thread cache -> Producer -> token -> it), and after an
  // idle pause each link can miss the TLB as well as the cache. The hint is one
  // thread-local load away, so its misses overlap the chain's instead of following it:
  // the call's longest chain becomes thread cache -> moodycamel producer -> block, as
  // long as the bare queue's own (token -> producer -> block).
  // A hint for another client (a thread logging to several), for a client since
  // destroyed, or for none yet (0) only wastes the prefetch: a prefetch never faults.
  [[gnu::always_inline]] static void prefetch_queue_state(std::size_t priority) noexcept {
    // Integer arithmetic: the hint may be 0, and offsetting a null pointer is undefined.
    const std::uintptr_t state = queue_state_hint(priority);
    // The tail index is 24 bytes from the hint, the tail block pointer 56 bytes
    // (tests/hot_path_test.cpp checks): one line in the client's HotArena, which starts
    // every object on a line, but two where malloc placed the object instead.
    __builtin_prefetch(reinterpret_cast<const void*>(state + 24), 1);
    __builtin_prefetch(reinterpret_cast<const void*>(state + 56), 1);
  }

  // The address prefetch_queue_state() starts from: the moodycamel producer (the base
  // a ProducerToken points to) of `priority` behind this thread's most recently
  // looked-up producer; 0 before the thread's first lookup.
  [[gnu::always_inline]] static std::uintptr_t queue_state_hint(std::size_t priority) noexcept {
    return t_queue_state_[priority & 3];
  }

  // Empties the calling thread's cache and hints, so its next call looks its producer
  // up again (local_slow). For the thread-exit hook, once the thread's producers are
  // freed.
  static void forget_thread() noexcept;

  // Finds or registers the calling thread's producer and caches it: allocates on a
  // thread's first call, takes the registration mutex. nullptr when max_producers
  // threads already hold one, or allocation failed.
  Producer* local_slow() noexcept;

  // For the writer: producers [0, count()) are valid for the registry's life.
  std::size_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  Producer& at(std::size_t i) noexcept { return *slots_[i].load(std::memory_order_acquire); }

 private:
  struct CacheEntry {
    std::uint64_t owner;
    Producer* producer;
  };
  static constexpr std::size_t kCacheEntries = 4;
  // The hot path reads this with one %fs-relative load, no call:
  // - constinit: zero-initialised at compile time, so the compiler emits no check of a
  //   thread-local init function before each access;
  // - initial-exec: the library is linked at program start (static archive or a shared
  //   library the program links against), so the variable sits at a fixed offset from
  //   the thread pointer. The default model for -fPIC code calls __tls_get_addr on every
  //   access instead. A program that dlopen()s flightlog late still works: glibc keeps a
  //   reserve of static TLS for such libraries, and this table takes 64 bytes of it.
  // - alignas(64): the four entries fill exactly one cache line.
  alignas(64) [[gnu::tls_model(
      "initial-exec")]] static constinit thread_local CacheEntry t_cache_[kCacheEntries];
  // For prefetch_queue_state(): the moodycamel producers behind t_cache_[0], one per
  // priority, set whenever entry 0 changes. Same storage model as t_cache_.
  alignas(32) [[gnu::tls_model("initial-exec")]] static constinit thread_local std::uintptr_t
      t_queue_state_[4];
  static void set_queue_state(const Producer* producer) noexcept;

  QueueSet& queues_;
  const std::uint64_t id_;
  const std::size_t max_producers_;
  const std::size_t staging_slots_;
  HotArena* const arena_;
  std::mutex mu_;  // registration only
  std::vector<std::unique_ptr<Producer>> owned_;
  std::unique_ptr<std::atomic<Producer*>[]> slots_;
  std::atomic<std::size_t> count_{0};
};

}  // namespace flightlog::detail
