#include "hot_path/hot_arena.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace flightlog::detail {

namespace {

// The live arenas, for owner_of(). Never destroyed: a client may be destroyed at exit.
std::mutex g_arenas_mu;
std::vector<HotArena*>& live_arenas() {
  static auto* arenas = new std::vector<HotArena*>();
  return *arenas;
}

thread_local HotArena* t_scope_arena = nullptr;

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
  return (n + to - 1) / to * to;
}

}  // namespace

HotArena::HotArena(char* base, std::size_t bytes) noexcept
    : base_(base),
      bytes_(bytes),
      small_used_(round_up(sizeof(HotArena), 64)),
      large_used_(kHugePage) {}

HotArena* HotArena::create(std::size_t large_bytes) noexcept {
  const std::size_t bytes = kHugePage + round_up(large_bytes, kHugePage);
  // Over-map by one huge page so the arena can start on a 2 MiB boundary (a huge page
  // can only back an aligned 2 MiB range), then give back the unused ends.
  const std::size_t mapped = bytes + kHugePage;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t tail = start + mapped - (aligned + bytes);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  char* base = reinterpret_cast<char*>(aligned);
  // A hint: without transparent huge pages (or with them disabled) it fails or does
  // nothing, and the arena still works on 4 KiB pages.
  madvise(base, bytes, MADV_HUGEPAGE);
  // The arena's own header sits at the start of its first page.
  auto* arena = new (base) HotArena(base, bytes);
  try {
    std::lock_guard lock(g_arenas_mu);
    live_arenas().push_back(arena);
  } catch (...) {
    arena->~HotArena();
    munmap(base, bytes);
    return nullptr;
  }
  return arena;
}

void HotArena::destroy(HotArena* arena) noexcept {
  if (arena == nullptr) return;
  {
    std::lock_guard lock(g_arenas_mu);
    auto& arenas = live_arenas();
    arenas.erase(std::remove(arenas.begin(), arenas.end(), arena), arenas.end());
  }
  char* const base = arena->base_;
  const std::size_t bytes = arena->bytes_;
  arena->~HotArena();
  munmap(base, bytes);
}

HotArena* HotArena::owner_of(const void* p) noexcept {
  const auto* c = static_cast<const char*>(p);
  std::lock_guard lock(g_arenas_mu);
  for (HotArena* a : live_arenas()) {
    if (c >= a->base_ && c < a->base_ + a->bytes_) return a;
  }
  return nullptr;
}

std::size_t HotArena::live_count() noexcept {
  std::lock_guard lock(g_arenas_mu);
  return live_arenas().size();
}

void* HotArena::allocate(std::size_t size, std::size_t align) noexcept {
  std::lock_guard lock(mu_);
  // Small objects fill the first huge page; whatever does not fit there (or is large)
  // goes after it.
  if (size <= kSmallMax) {
    const std::size_t at = round_up(small_used_, align);
    if (at + size <= kHugePage) {
      small_used_ = at + size;
      return base_ + at;
    }
  }
  const std::size_t at = round_up(large_used_, align);
  if (at + size > bytes_) return nullptr;
  large_used_ = at + size;
  return base_ + at;
}

HotArena::Scope::Scope(HotArena* arena) noexcept : previous_(t_scope_arena) {
  t_scope_arena = arena;
}

HotArena::Scope::~Scope() {
  t_scope_arena = previous_;
}

void* hot_alloc(std::size_t size) noexcept {
  if (HotArena* arena = t_scope_arena) {
    if (void* p = arena->allocate(size, 64)) return p;
  }
  return std::aligned_alloc(64, round_up(std::max<std::size_t>(size, 1), 64));
}

void* hot_new(std::size_t size) {
  if (void* p = hot_alloc(size)) return p;
  throw std::bad_alloc();
}

void hot_free(void* p) noexcept {
  if (p == nullptr || HotArena::owner_of(p) != nullptr) return;
  std::free(p);
}

}  // namespace flightlog::detail
