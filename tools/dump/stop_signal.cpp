#include "stop_signal.hpp"

#include <csignal>
#include <thread>

namespace flightlog::tools {

namespace {

volatile std::sig_atomic_t g_stop = 0;

extern "C" void on_stop_signal(int) {
  g_stop = 1;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() noexcept {
  return g_stop != 0;
}

bool sleep_unless_stopped(std::chrono::milliseconds d) {
  constexpr auto kStep = std::chrono::milliseconds(20);
  const auto end = std::chrono::steady_clock::now() + d;
  while (!stop_requested()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= end) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(kStep, end - now));
  }
  return false;
}

}  // namespace flightlog::tools
