#include "status_line.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

#include "text.hpp"

namespace flightlog::demo {

namespace {

// The line is redrawn this often on a terminal, and printed this often otherwise.
// Samples come more often (they feed the plot): a sample within a little less than
// the period is shown.
constexpr double kRedrawEvery = 0.5;
constexpr double kPlainEvery = 2.0;
constexpr double kSlack = 0.05;

// 123 -> "123", 56789 -> "56.8k", 1234567 -> "1.23M"
std::string compact(std::uint64_t n) {
  if (n < 1'000) return std::to_string(n);
  if (n < 1'000'000) return format("%.1fk", static_cast<double>(n) / 1e3);
  return format("%.2fM", static_cast<double>(n) / 1e6);
}

std::size_t terminal_columns() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

std::uint64_t total_dropped(const DropCounts& d) {
  std::uint64_t n =
      d.too_large + d.invalid + d.closed + d.journal_full + d.journal_error + d.cleaned_up;
  for (std::size_t p = 0; p < kPriorityCount; ++p) n += d.queue_full[p] + d.evicted[p];
  return n;
}

// Most important first, so a narrow terminal cuts the least useful part: time, rate,
// the uploader's state, the queues, the counts.
std::string status_text(const Sample& s) {
  std::string line = format("%5.1fs %6s rec/s | ", s.t,
                            compact(static_cast<std::uint64_t>(s.calls_per_s)).c_str());
  line += s.connection.empty() ? "idle" : s.connection;
  if (s.backoff.count() > 0) {
    line += format(", retry in %.2fs (%d failure%s)", static_cast<double>(s.backoff.count()) / 1e3,
                   s.failures, s.failures == 1 ? "" : "s");
  }
  line += " | queue";
  static constexpr const char* kLetters[] = {"C", "H", "N", "L"};
  for (std::size_t p = 0; p < kPriorityCount; ++p) {
    line += format(" %s %s", kLetters[p], compact(s.queued[p]).c_str());
  }
  if (s.uncommitted > 0) line += " +" + compact(s.uncommitted) + " mem";
  line += " | synced " + compact(s.synced) + " failed " + compact(s.failed) + " dropped " +
          compact(s.dropped);
  return line;
}

const Sample& StatusDisplay::record(const OfflineStatus& status, double t, std::uint64_t calls,
                                    bool receiver_up) {
  Sample s;
  s.t = t;
  s.calls = calls;
  const double prev_t = samples_.empty() ? 0 : samples_.back().t;
  const std::uint64_t prev_calls = samples_.empty() ? 0 : samples_.back().calls;
  if (t > prev_t) s.calls_per_s = static_cast<double>(calls - prev_calls) / (t - prev_t);
  s.queued = status.queue_size_by_priority;
  // Accepted but not yet in the journal's counts: in the queues or in a batch the writer
  // is building. (OfflineStatus::in_memory counts queue slots only.) Records get
  // consecutive sequences from first_seq, and next_seq counts a batch as soon as the
  // journal's counts do, so nothing shows twice. From the calls made so far, so
  // approximate by the calls of a burst.
  const DropCounts& d = status.dropped;
  std::uint64_t settled = (status.next_seq - std::min(status.next_seq, first_seq_)) + d.too_large +
                          d.invalid + d.closed + d.journal_full + d.journal_error;
  for (auto q : d.queue_full) settled += q;
  s.uncommitted = calls > settled ? calls - settled : 0;
  s.synced = status.synced_total;
  s.failed = status.failed_count;
  s.dropped = total_dropped(status.dropped);
  s.connection = status.connection_state;
  s.backoff = status.current_backoff;
  s.failures = status.consecutive_failures;
  s.receiver_up = receiver_up;
  samples_.push_back(std::move(s));
  show(samples_.back());
  return samples_.back();
}

void StatusDisplay::show(const Sample& s) {
  // Due, or the uploader's state changed (plain lines would miss a short phase).
  const bool changed = s.connection != last_connection_;
  if (!changed && s.t - last_shown_ < (interactive_ ? kRedrawEvery : kPlainEvery) - kSlack) {
    return;
  }
  last_shown_ = s.t;
  last_connection_ = s.connection;
  if (interactive_) {
    std::string line = status_text(s);
    const std::size_t cols = terminal_columns();
    if (line.size() >= cols) line.resize(cols - 1);
    std::printf("\r\033[K%s", line.c_str());
    line_open_ = true;
  } else {
    std::printf("%s\n", status_text(s).c_str());
  }
  std::fflush(stdout);
}

void StatusDisplay::event(const std::string& text) {
  if (line_open_) std::printf("\r\033[K");
  std::printf("%s\n", text.c_str());
  if (line_open_ && !samples_.empty()) {
    line_open_ = false;
    last_shown_ = -1e9;
    show(samples_.back());
  }
  std::fflush(stdout);
}

void StatusDisplay::finish() {
  if (!samples_.empty() && samples_.back().t != last_shown_) {
    last_shown_ = -1e9;
    show(samples_.back());  // the final state, whenever it came
  }
  if (line_open_) std::printf("\n");
  line_open_ = false;
  std::fflush(stdout);
}

}  // namespace flightlog::demo
