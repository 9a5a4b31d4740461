// The live status line: a sample of the pipeline every 100 ms (kept for queue.dat and
// the queue plot), shown as one line redrawn in place every half second on a terminal,
// or as a plain line every two seconds otherwise (a log file or a pipe); either way
// also at once when the uploader's state changes (idle, offline, connected, ...).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flightlog/flightlog.hpp"

namespace flightlog::demo {

struct Sample {
  double t = 0;  // seconds since the demo started logging
  std::uint64_t calls = 0;
  double calls_per_s = 0;                            // since the previous sample
  std::array<std::size_t, kPriorityCount> queued{};  // in the journal
  std::uint64_t uncommitted = 0;  // accepted, not yet in the journal's counts (approximate)
  std::uint64_t synced = 0;
  std::size_t failed = 0;  // in the failed set now
  std::uint64_t dropped = 0;
  std::string connection;  // Client status: "idle", "offline", "connected", ...
  std::chrono::milliseconds backoff{0};
  int failures = 0;  // consecutive failed upload attempts
  bool receiver_up = false;
};

// Every drop the status counts, whatever the reason.
std::uint64_t total_dropped(const DropCounts& d);

class StatusDisplay {
 public:
  // `interactive`: redraw one line in place (for a terminal). `first_seq`: the sequence
  // of the run's first record (OfflineStatus::next_seq before it).
  StatusDisplay(bool interactive, std::uint64_t first_seq)
      : interactive_(interactive), first_seq_(first_seq) {}

  // Takes a sample (the previous one gives the rate), keeps it, and shows it when due.
  const Sample& record(const OfflineStatus& status, double t, std::uint64_t calls,
                       bool receiver_up);
  // A line of its own (an event), printed above the redrawn status line.
  void event(const std::string& text);
  // Shows the last sample if it was not, and ends the redrawn line, so later output
  // starts on a fresh one.
  void finish();

  const std::vector<Sample>& samples() const { return samples_; }

 private:
  void show(const Sample& s);

  bool interactive_;
  std::uint64_t first_seq_;
  bool line_open_ = false;
  double last_shown_ = -1e9;
  std::string last_connection_;
  std::vector<Sample> samples_;
};

std::string status_text(const Sample& s);

}  // namespace flightlog::demo
