#include "core/threads.hpp"

#include <pthread.h>

#include <cstring>
#include <string>

#include "flightlog/error.hpp"

namespace flightlog::detail {

void name_thread(std::thread& thread, const char* name) noexcept {
  pthread_setname_np(thread.native_handle(), name);  // fails only for names over 15 characters
}

void yield_on_wakeup(std::thread& thread) noexcept {
  const sched_param param{};  // SCHED_BATCH takes priority 0
  pthread_setschedparam(thread.native_handle(), SCHED_BATCH, &param);
}

ScopedThreadAffinity::ScopedThreadAffinity(const std::vector<unsigned>& cpus) : saved_{} {
  if (cpus.empty()) return;
  if (int rc = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_); rc != 0) {
    throw Error(
        std::string("invalid option background_cpus: cannot read the calling thread's CPU set: ") +
        std::strerror(rc));
  }
  cpu_set_t wanted;
  CPU_ZERO(&wanted);
  for (unsigned c : cpus) CPU_SET(c, &wanted);  // validate_options() checked c < CPU_SETSIZE
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof wanted, &wanted); rc != 0) {
    std::string list;
    for (unsigned c : cpus) list += (list.empty() ? "" : ",") + std::to_string(c);
    throw Error("invalid option background_cpus: cannot run threads on CPUs " + list + ": " +
                std::strerror(rc));
  }
  changed_ = true;
}

ScopedThreadAffinity::~ScopedThreadAffinity() {
  // Restoring a set this thread ran with a moment ago cannot fail for want of CPUs.
  if (changed_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
}

}  // namespace flightlog::detail
