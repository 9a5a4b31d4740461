// HotArena: the memory a log call touches, kept together on transparent huge pages.
//
// Why: a call after an idle pause (a trading loop is quiet, then bursts) finds its data
// cold, and on a virtual machine every 4 KiB page it touches can also miss the TLB and
// pay a page walk through both the guest's and the host's page tables. The call follows
// a chain of objects (the client's hot line, the thread's Producer, moodycamel's
// producer, the current block), each a pointer read away from the one before, so those
// misses add up instead of overlapping. Allocated by malloc, each object sits on a page
// of its own. A HotArena is one mapping that asks the kernel for 2 MiB pages
// (madvise MADV_HUGEPAGE) and holds all of them:
//
//   [ 2 MiB: header, the client's Impl, Producers, moodycamel's producers and their
//     block indexes (small objects, in the order they are made)               ]
//   [ then: the four priority queues' block pools, each on huge pages        ]
//
// so the whole chain lives on two TLB entries. bench/results/latency-huge-pages.md
// measures what that is worth. Where the kernel has transparent huge pages off, the
// mapping gets 4 KiB pages and the objects still sit side by side.
//
// Allocation is a bump pointer under a mutex: only construction paths allocate here (a
// client's constructor, a thread's first call), never the hot path itself. Nothing is
// given back before the whole arena is unmapped, after the last object in it was
// destroyed; what does not fit goes to malloc instead. Which memory is allocated here
// is chosen by scope: hot_alloc() uses the arena of the innermost HotArena::Scope on the
// calling thread, and malloc without one.
#pragma once

#include <cstddef>
#include <mutex>

namespace flightlog::detail {

class HotArena {
 public:
  // Small objects go to the first huge page; larger ones (block pools) after it.
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;
  static constexpr std::size_t kSmallMax = 64 << 10;

  // Maps an arena with room for `large_bytes` of large allocations after the small
  // region. Returns nullptr if the mapping fails (the caller then uses malloc); the
  // memory is reserved, not committed: a page is backed when first touched.
  static HotArena* create(std::size_t large_bytes) noexcept;
  // Unmaps the arena. Everything allocated in it must have been destroyed.
  static void destroy(HotArena* arena) noexcept;
  // The live arena whose mapping holds `p`, or nullptr. Takes a global mutex: for
  // destruction paths only.
  static HotArena* owner_of(const void* p) noexcept;

  // How many arenas are mapped in this process (each live client has one).
  static std::size_t live_count() noexcept;

  // `size` bytes aligned to `align` (a power of two, at most 4096), or nullptr when the
  // arena is full. Thread-safe.
  void* allocate(std::size_t size, std::size_t align) noexcept;

  // Routes hot_alloc() on this thread to `arena` (which may be nullptr: malloc) until
  // the scope ends. Scopes nest.
  class Scope {
   public:
    explicit Scope(HotArena* arena) noexcept;
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    HotArena* previous_;
  };

 private:
  HotArena(char* base, std::size_t bytes) noexcept;

  char* const base_;
  const std::size_t bytes_;
  std::mutex mu_;
  std::size_t small_used_;  // offset into [0, kHugePage)
  std::size_t large_used_;  // offset into [kHugePage, bytes_)
};

// Memory for an object the hot path touches: from the current Scope's arena if it has
// room, else malloc. Aligned to 64 bytes. nullptr only if malloc fails.
void* hot_alloc(std::size_t size) noexcept;
// hot_alloc() for a class's operator new: throws std::bad_alloc instead of nullptr.
void* hot_new(std::size_t size);
// Releases hot_alloc() memory: nothing for arena memory (it goes with the arena),
// free() for the rest.
void hot_free(void* p) noexcept;

}  // namespace flightlog::detail
