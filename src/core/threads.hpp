// flightlog's own threads: their names, and the CPUs they may run on.
//
// A client starts up to four threads: the writer's drain and commit threads and, with an
// endpoint, the uploader and its HTTPS client's io thread. Each is named as it starts
// (name_thread), so `top -H`, `perf` and debuggers show which is which.
// Options::background_cpus keeps them all off the cores the caller's hot threads run on;
// ScopedThreadAffinity is how the constructor applies it.
#pragma once

#include <sched.h>

#include <thread>
#include <vector>

namespace flightlog::detail {

// Names `thread` (at most 15 characters, as Linux allows), before the creator returns, so
// the name is there as soon as anyone can look. Best effort: a name is a label for tools,
// and nothing depends on it.
void name_thread(std::thread& thread, const char* name) noexcept;

// Puts `thread` in the SCHED_BATCH policy: same share of CPU time as any other thread,
// but when it wakes it never preempts the thread running on a core; it takes a free
// core, or waits for the running thread's time slice to end. flightlog's threads wake
// often (the writer every poll interval and after every device flush) and have
// milliseconds to spare, while the caller's threads are mid-call; without it, a waking
// writer thread takes the core from under a logging thread that shares it. Best effort:
// needs no privilege, and a thread left in the default policy still works.
void yield_on_wakeup(std::thread& thread) noexcept;

// Restricts the calling thread to `cpus` for the guard's lifetime; threads it starts
// meanwhile are born with the same restriction (Linux threads inherit their creator's
// CPU set), which is how they start pinned before running a single instruction
// elsewhere. The destructor restores the calling thread's previous set. An empty list
// changes nothing.
//
// Throws flightlog::Error naming `background_cpus` when the set cannot be applied (for
// example, no CPU of it is available to this process under its cpuset).
class ScopedThreadAffinity {
 public:
  explicit ScopedThreadAffinity(const std::vector<unsigned>& cpus);
  ~ScopedThreadAffinity();
  ScopedThreadAffinity(const ScopedThreadAffinity&) = delete;
  ScopedThreadAffinity& operator=(const ScopedThreadAffinity&) = delete;

 private:
  bool changed_ = false;
  cpu_set_t saved_;
};

}  // namespace flightlog::detail
