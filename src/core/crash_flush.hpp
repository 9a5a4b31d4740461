// Crash flush: on a fatal signal, commit what the live Clients still hold in memory
// before the process dies (Client::install_crash_flush documents the contract).
//
// Every Client registers its writer in a fixed table of atomic pointers (no lock, no
// allocation, so the signal handler can walk it). The handler asks each registered
// writer for a flush ticket (one atomic increment; the drain thread notices within
// writer_poll_interval), then waits, with clock_gettime and nanosleep only, until every
// ticket is complete or the budget is spent, and finally hands the signal on to the
// action that was installed before.
#pragma once

#include <atomic>
#include <chrono>

namespace flightlog::detail {

class Writer;

// Installs the handler for SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM and SIGINT
// (except a SIGTERM or SIGINT the process ignores), saving the previous actions. A
// second call only updates the budget. Throws flightlog::Error if sigaction fails.
void install_crash_flush(std::chrono::milliseconds budget);

// Puts a writer into the table for as long as this object lives (or until release()).
// If the table is full the writer is simply not covered.
class CrashFlushRegistration {
 public:
  CrashFlushRegistration() = default;
  ~CrashFlushRegistration() { release(); }
  CrashFlushRegistration(const CrashFlushRegistration&) = delete;
  CrashFlushRegistration& operator=(const CrashFlushRegistration&) = delete;

  void attach(Writer* writer) noexcept;
  // Takes the writer out of the table and waits until no handler still uses it.
  void release() noexcept;

 private:
  int slot_ = -1;
};

}  // namespace flightlog::detail
