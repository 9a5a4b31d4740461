#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace flightlog::tools {

std::string short_count(std::uint64_t n) {
  char buf[32];
  if (n < 1000) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  } else if (n < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.1fK", static_cast<double>(n) / 1e3);
  } else if (n < 1'000'000'000) {
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fG", static_cast<double>(n) / 1e9);
  }
  return buf;
}

Progress::Progress(std::string_view tool, std::uint64_t total, bool enabled)
    : tool_(tool), total_(total), enabled_(enabled) {}

bool Progress::stderr_is_terminal() {
  return isatty(STDERR_FILENO) == 1;
}

void Progress::draw() {
  std::string line = "\r" + tool_ + ": " + short_count(count_);
  if (total_ > 0) {
    const std::uint64_t pct = count_ >= total_ ? 100 : count_ * 100 / total_;
    line += " of " + short_count(total_) + " records (" + std::to_string(pct) + "%)";
  } else {
    line += " records";
  }
  line += "\033[K";  // erase what a longer previous line left
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace flightlog::tools
