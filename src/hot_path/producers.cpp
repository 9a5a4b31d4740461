#include "hot_path/producers.hpp"

#include <pthread.h>

#include <algorithm>
#include <unordered_set>
#include <utility>

namespace flightlog::detail {

namespace {

std::atomic<std::uint64_t> g_next_registry_id{1};

// Registries that are alive. A thread's exit hook frees its producers only while their
// registry is in this set; ~ProducerRegistry removes itself first.
std::mutex g_live_mu;
std::unordered_set<std::uint64_t>& live_registries() {
  static auto* set = new std::unordered_set<std::uint64_t>();  // never destroyed: used at exit
  return *set;
}

// Every registration of a thread: which producer it holds in which registry. Only
// touched on the slow path.
//
// Why it hangs off a pthread key and not a thread_local object: C++ destroys a thread's
// thread_local objects in the reverse order of their construction, and this list is made
// on the thread's first log call. A thread_local of the program made before it (say, a
// guard that logs "thread exiting" from its destructor) would be destroyed after it and
// log into a list already gone (a use after free), or through producers already marked
// free and handed to another thread (two threads on one moodycamel producer, which loses
// records). glibc runs pthread key destructors after all thread_local destructors, and
// runs one again if a later key destructor logs and so registers anew. On the main
// thread, exit() runs no key destructors: its list stays, for static destructors that
// log, and the process ends.
struct ThreadRegistrations {
  std::vector<std::pair<std::uint64_t, Producer*>> entries;
};

// The key destructor: frees the exiting thread's producers for new threads, provided
// their registry still lives, then makes the thread forget them, so that a call it makes
// later still (from another key's destructor) registers anew instead of using a freed
// producer.
void release_thread(void* registrations) {
  auto* regs = static_cast<ThreadRegistrations*>(registrations);
  {
    std::lock_guard lock(g_live_mu);
    auto& live = live_registries();
    for (auto& [owner, producer] : regs->entries) {
      if (live.count(owner) != 0) producer->in_use.store(false, std::memory_order_release);
    }
  }
  delete regs;
  ProducerRegistry::forget_thread();
}

// The calling thread's registrations, made on first use; nullptr if they cannot be made.
ThreadRegistrations* thread_registrations() {
  static const auto key = [] {
    std::optional<pthread_key_t> k{pthread_key_t{}};
    if (pthread_key_create(&*k, release_thread) != 0) k.reset();
    return k;
  }();
  if (!key) return nullptr;
  auto* regs = static_cast<ThreadRegistrations*>(pthread_getspecific(*key));
  if (regs == nullptr) {
    regs = new ThreadRegistrations();
    if (pthread_setspecific(*key, regs) != 0) {
      delete regs;
      return nullptr;
    }
  }
  return regs;
}

}  // namespace

alignas(64) constinit thread_local ProducerRegistry::CacheEntry
    ProducerRegistry::t_cache_[kCacheEntries] = {};
alignas(32) constinit thread_local std::uintptr_t ProducerRegistry::t_queue_state_[4] = {};

namespace {
// A ProducerToken's one member, the moodycamel producer it stands for, is protected;
// a pointer to it taken in a derived class's scope reads it without a cast.
struct TokenAccess : ProducerToken {
  static constexpr auto kProducer = &TokenAccess::producer;
};
}  // namespace

void ProducerRegistry::forget_thread() noexcept {
  for (auto& e : t_cache_) e = CacheEntry{};
  set_queue_state(nullptr);
}

void ProducerRegistry::set_queue_state(const Producer* producer) noexcept {
  for (std::size_t p = 0; p < 4; ++p) {
    const bool known = producer != nullptr && producer->tokens[p].has_value();
    t_queue_state_[p] =
        known ? reinterpret_cast<std::uintptr_t>((*producer->tokens[p]).*TokenAccess::kProducer)
              : 0;
  }
}

Producer::Producer(QueueSet& queues, std::size_t staging_slots) : staging(new Slot[staging_slots]) {
  for (std::size_t p = 0; p < tokens.size(); ++p) {
    tokens[p].emplace(queues[p]);
  }
}

std::uint64_t ProducerRegistry::next_id() noexcept {
  return g_next_registry_id.fetch_add(1);
}

ProducerRegistry::ProducerRegistry(std::uint64_t id, QueueSet& queues, std::size_t max_producers,
                                   std::size_t staging_slots, HotArena* arena)
    : queues_(queues),
      id_(id),
      max_producers_(max_producers),
      staging_slots_(staging_slots),
      arena_(arena),
      slots_(new std::atomic<Producer*>[max_producers]) {
  for (std::size_t i = 0; i < max_producers; ++i) slots_[i].store(nullptr);
  std::lock_guard lock(g_live_mu);
  live_registries().insert(id_);
}

ProducerRegistry::~ProducerRegistry() {
  std::lock_guard lock(g_live_mu);
  live_registries().erase(id_);
  // This thread's cache may still name us; ids are never reused, so a stale entry
  // can never match another registry. Clear it anyway for tidiness.
  for (auto& e : t_cache_) {
    if (e.owner == id_) e = CacheEntry{};
  }
  // Other threads' hints may still name this registry's producers: harmless, see
  // prefetch_queue_state().
  if (t_cache_[0].owner == 0) set_queue_state(nullptr);
}

Producer* ProducerRegistry::local_slow() noexcept {
  try {
    ThreadRegistrations* regs = thread_registrations();
    if (regs == nullptr) return nullptr;
    Producer* found = nullptr;
    for (auto& [owner, producer] : regs->entries) {
      if (owner == id_) found = producer;
    }
    if (found == nullptr) {
      {
        // Drop the entries of registries since destroyed: a long-lived thread that logs
        // to one short-lived Client after another keeps a list as long as those alive.
        std::lock_guard lock(g_live_mu);
        const auto& live = live_registries();
        std::erase_if(regs->entries, [&](const auto& e) { return live.count(e.first) == 0; });
      }
      std::lock_guard lock(mu_);
      // Reuse the producer of a thread that has exited: its tokens are idle.
      for (auto& p : owned_) {
        bool expected = false;
        if (p->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
          found = p.get();
          found->shapes = ShapeMemo{};  // the new thread learns its own shapes
          break;
        }
      }
      if (found == nullptr) {
        const std::size_t n = count_.load(std::memory_order_relaxed);
        if (n >= max_producers_) return nullptr;
        const HotArena::Scope scope(arena_);
        owned_.push_back(std::make_unique<Producer>(queues_, staging_slots_));
        found = owned_.back().get();
        slots_[n].store(found, std::memory_order_release);
        count_.store(n + 1, std::memory_order_release);
      }
      regs->entries.emplace_back(id_, found);
    }
    // Move into the fast cache, evicting the oldest entry (it stays registered).
    for (std::size_t i = kCacheEntries - 1; i > 0; --i) t_cache_[i] = t_cache_[i - 1];
    t_cache_[0] = CacheEntry{id_, found};
    set_queue_state(found);
    return found;
  } catch (...) {
    return nullptr;  // allocation failure: the call reports Invalid, nothing throws
  }
}

}  // namespace flightlog::detail
