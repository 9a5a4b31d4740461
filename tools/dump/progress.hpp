// A progress line on stderr for long reads, shown only when stderr is a terminal:
// "flightlog-dump: 1.2M of 3.4M records (35%)", redrawn every 64Ki records and cleared
// at the end. When stderr is a file or a pipe nothing is written, so logs and tests see
// only the tool's real messages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flightlog::tools {

class Progress {
 public:
  static constexpr std::uint64_t kEvery = 65536;

  // `total`: records expected (0 = unknown). `enabled`: usually stderr_is_terminal().
  Progress(std::string_view tool, std::uint64_t total, bool enabled);
  ~Progress() { finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void tick() {
    if (++count_ % kEvery == 0 && enabled_) draw();
  }
  // Clears the line if one was drawn. Idempotent.
  void finish();
  std::uint64_t count() const { return count_; }

  static bool stderr_is_terminal();

 private:
  void draw();

  std::string tool_;
  std::uint64_t total_ = 0;
  bool enabled_ = false;
  bool drawn_ = false;
  std::uint64_t count_ = 0;
};

// "950", "12.3K", "4.5M": a count for a narrow display.
std::string short_count(std::uint64_t n);

}  // namespace flightlog::tools
