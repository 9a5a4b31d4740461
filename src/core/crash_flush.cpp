#include "core/crash_flush.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "flightlog/error.hpp"
#include "writer/writer.hpp"

namespace flightlog::detail {

namespace {

constexpr int kMaxWriters = 64;
constexpr std::array<int, 7> kSignals{SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM, SIGINT};

std::atomic<Writer*> g_writers[kMaxWriters];
// Handlers between their first look at g_writers and their last use of a writer.
std::atomic<int> g_active_handlers{0};
// The thread running a flush (0: none). One flush at a time: a fault inside the flush
// goes straight to the previous action; another thread's fatal signal waits for the
// flush in progress (within the budget) before it goes on.
std::atomic<pid_t> g_flushing{0};
std::atomic<std::int64_t> g_budget_ns{0};
std::atomic<bool> g_installed{false};

// Written once by install_crash_flush before the handler is installed, read only.
struct sigaction g_previous[kSignals.size()];

static_assert(std::atomic<Writer*>::is_always_lock_free);
static_assert(std::atomic<int>::is_always_lock_free);
static_assert(std::atomic<pid_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);

std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void nap() noexcept {
  const timespec interval{0, 100'000};  // 0.1 ms
  nanosleep(&interval, nullptr);
}

// Requests a flush from every registered writer and waits for them all, or until the
// budget is spent. Async-signal-safe: atomics, clock_gettime, nanosleep.
void flush_all() noexcept {
  if (Writer::on_writer_thread()) return;  // it would wait for itself
  const std::int64_t deadline = monotonic_ns() + g_budget_ns.load(std::memory_order_relaxed);
  g_active_handlers.fetch_add(1, std::memory_order_seq_cst);
  Writer* writers[kMaxWriters];
  std::uint64_t tickets[kMaxWriters];
  int n = 0;
  for (auto& slot : g_writers) {
    Writer* w = slot.load(std::memory_order_seq_cst);
    if (w == nullptr) continue;
    writers[n] = w;
    tickets[n] = w->emergency_request();
    ++n;
  }
  for (int i = 0; i < n; ++i) {
    while (!writers[i]->emergency_done(tickets[i]) && monotonic_ns() < deadline) {
      nap();
    }
  }
  g_active_handlers.fetch_sub(1, std::memory_order_seq_cst);
}

int index_of(int sig) noexcept {
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    if (kSignals[i] == sig) return static_cast<int>(i);
  }
  return -1;
}

void on_signal(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const auto self = static_cast<pid_t>(syscall(SYS_gettid));
  pid_t none = 0;
  if (g_flushing.compare_exchange_strong(none, self, std::memory_order_acq_rel)) {
    flush_all();
    g_flushing.store(0, std::memory_order_release);
  } else if (none != self) {
    const std::int64_t deadline = monotonic_ns() + g_budget_ns.load(std::memory_order_relaxed);
    while (g_flushing.load(std::memory_order_acquire) != 0 && monotonic_ns() < deadline) {
      nap();
    }
  }
  const int i = index_of(sig);
  const struct sigaction& prev = g_previous[i < 0 ? 0 : i];
  if (prev.sa_flags & SA_SIGINFO) {
    errno = saved_errno;
    prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler == SIG_IGN) {
    errno = saved_errno;
    return;
  }
  if (prev.sa_handler == SIG_DFL) {
    // Put the default action back and send the signal again: it is blocked while this
    // handler runs, so it is delivered, with its default effect, once the handler
    // returns (a hardware fault that returns also faults again, now with SIG_DFL).
    sigaction(sig, &prev, nullptr);
    raise(sig);
    errno = saved_errno;
    return;
  }
  errno = saved_errno;
  prev.sa_handler(sig);
}

}  // namespace

void install_crash_flush(std::chrono::milliseconds budget) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(budget).count();
  g_budget_ns.store(ns < 0 ? 0 : ns, std::memory_order_relaxed);
  if (g_installed.exchange(true)) return;
  for (std::size_t i = 0; i < kSignals.size(); ++i) {
    const int sig = kSignals[i];
    if (sigaction(sig, nullptr, &g_previous[i]) != 0) {
      throw Error(std::string("install_crash_flush: cannot read the action of ") + strsignal(sig) +
                  ": " + std::strerror(errno));
    }
    // A process that ignores SIGTERM or SIGINT (nohup, a shell's background job) keeps
    // ignoring it.
    if ((sig == SIGTERM || sig == SIGINT) && !(g_previous[i].sa_flags & SA_SIGINFO) &&
        g_previous[i].sa_handler == SIG_IGN) {
      continue;
    }
    struct sigaction sa {};
    sa.sa_sigaction = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    if (sigaction(sig, &sa, nullptr) != 0) {
      throw Error(std::string("install_crash_flush: cannot install a handler for ") +
                  strsignal(sig) + ": " + std::strerror(errno));
    }
  }
}

void CrashFlushRegistration::attach(Writer* writer) noexcept {
  release();
  for (int i = 0; i < kMaxWriters; ++i) {
    Writer* expected = nullptr;
    if (g_writers[i].compare_exchange_strong(expected, writer, std::memory_order_seq_cst)) {
      slot_ = i;
      return;
    }
  }
}

void CrashFlushRegistration::release() noexcept {
  if (slot_ < 0) return;
  g_writers[slot_].store(nullptr, std::memory_order_seq_cst);
  slot_ = -1;
  // A handler that saw the writer before the store above may still be waiting on it;
  // it gives up within its budget.
  while (g_active_handlers.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

}  // namespace flightlog::detail
