#include "report.hpp"

#include <algorithm>
#include <cstdio>

#include "bench/common.hpp"  // nearest-rank percentiles, as the benchmarks compute them
#include "cli.hpp"
#include "text.hpp"

namespace flightlog::demo {

namespace {

constexpr const char* kPriorityNames[] = {"CRITICAL", "HIGH", "NORMAL", "LOW"};

std::uint64_t sum(const std::array<std::uint64_t, kPriorityCount>& a) {
  std::uint64_t n = 0;
  for (auto v : a) n += v;
  return n;
}

void row(const char* label, std::uint64_t n, const std::string& detail = {}) {
  std::printf("  %-26s %12s%s%s\n", label, grouped(n).c_str(), detail.empty() ? "" : "  ",
              detail.c_str());
}

}  // namespace

LatencySummary summarize_latency(const std::vector<ThreadTally>& tallies, double ns_per_tick) {
  LatencySummary s;
  std::size_t n = 0;
  for (const auto& t : tallies) n += t.ticks.size();
  s.sorted_ns.reserve(n);
  double total = 0;
  for (const auto& t : tallies) {
    for (std::uint32_t ticks : t.ticks) {
      const double ns = ticks * ns_per_tick;
      s.sorted_ns.push_back(ns);
      total += ns;
    }
    s.first_call_max_ns =
        std::max(s.first_call_max_ns, static_cast<double>(t.first_call_ticks) * ns_per_tick);
  }
  const bench::Percentiles p = bench::percentiles(s.sorted_ns);  // sorts
  s.p50 = p.p50;
  s.p90 = p.p90;
  s.p99 = p.p99;
  s.p999 = p.p999;
  s.p9999 = p.p9999;
  s.max = p.max;
  s.mean = n > 0 ? total / static_cast<double>(n) : 0;
  return s;
}

void print_latency(const LatencySummary& s, int threads, double ns_per_tick) {
  std::printf(
      "\nhot-path latency of log_prediction (schema form), %s calls from %d threads\n"
      "(TSC around every call, %.3f ns per tick; each thread's first call, which registers\n"
      "the thread, is left out: the slowest took %s)\n",
      grouped(s.sorted_ns.size()).c_str(), threads, ns_per_tick,
      nanos(s.first_call_max_ns).c_str());
  std::printf("  %10s %10s %10s %10s %10s %10s %10s\n", "p50", "p90", "p99", "p99.9", "p99.99",
              "max", "mean");
  std::printf("  %10s %10s %10s %10s %10s %10s %10s\n", nanos(s.p50).c_str(), nanos(s.p90).c_str(),
              nanos(s.p99).c_str(), nanos(s.p999).c_str(), nanos(s.p9999).c_str(),
              nanos(s.max).c_str(), nanos(s.mean).c_str());
}

RunTotals sum_totals(const std::vector<ThreadTally>& tallies) {
  RunTotals t;
  for (const auto& th : tallies) {
    t.calls += th.calls;
    for (std::size_t i = 0; i < t.by_result.size(); ++i) t.by_result[i] += th.by_result[i];
    for (std::size_t p = 0; p < kPriorityCount; ++p) t.accepted[p] += th.accepted[p];
  }
  return t;
}

int print_totals_and_check(const RunTotals& t, std::uint64_t arrived_unique,
                           const std::string& arrived_where, std::uint64_t duplicates,
                           bool drained) {
  const OfflineStatus& s = t.final_status;
  const DropCounts& d = s.dropped;
  const DropCounts& d0 = t.initial_status.dropped;
  const std::uint64_t accepted = sum(t.accepted);
  const std::uint64_t refused = t.calls - accepted;
  const std::uint64_t lost_before_commit = d.journal_full + d.journal_error;
  // The persistent counts and the failed set as of this run (see RunTotals).
  const auto since_start = [](std::uint64_t now, std::uint64_t at_start) {
    return now - std::min(at_start, now);
  };
  const std::uint64_t evicted = since_start(sum(d.evicted), sum(d0.evicted));
  const std::uint64_t cleaned_up = since_start(d.cleaned_up, d0.cleaned_up);
  const std::uint64_t removed = evicted + cleaned_up;
  const std::uint64_t failed = since_start(s.failed_count, t.initial_status.failed_count);
  const std::uint64_t should_arrive = s.committed_total - std::min(removed, s.committed_total);

  std::printf("\ntotals\n");
  row("log calls", t.calls,
      format(
          "in %.1f s (%s/s)", t.seconds,
          grouped(static_cast<std::uint64_t>(static_cast<double>(t.calls) / t.seconds)).c_str()));
  row("accepted (Ok)", accepted,
      format("CRITICAL %s, HIGH %s, NORMAL %s, LOW %s", grouped(t.accepted[0]).c_str(),
             grouped(t.accepted[1]).c_str(), grouped(t.accepted[2]).c_str(),
             grouped(t.accepted[3]).c_str()));
  row("refused by the call", refused,
      format("queue full %s (C/H/N/L %s/%s/%s/%s), too large %s, invalid %s, closed %s",
             grouped(t.by_result[static_cast<std::size_t>(LogResult::QueueFull)]).c_str(),
             grouped(d.queue_full[0]).c_str(), grouped(d.queue_full[1]).c_str(),
             grouped(d.queue_full[2]).c_str(), grouped(d.queue_full[3]).c_str(),
             grouped(t.by_result[static_cast<std::size_t>(LogResult::TooLarge)]).c_str(),
             grouped(t.by_result[static_cast<std::size_t>(LogResult::Invalid)]).c_str(),
             grouped(t.by_result[static_cast<std::size_t>(LogResult::Closed)]).c_str()));
  row("dropped before commit", lost_before_commit,
      format("journal full %s, journal error %s", grouped(d.journal_full).c_str(),
             grouped(d.journal_error).c_str()));
  row("committed (acknowledged)", s.committed_total);
  row("removed from the journal", removed,
      format("evicted (queue over its maximum) %s, cleaned up %s", grouped(evicted).c_str(),
             grouped(cleaned_up).c_str()));
  row("delivered (synced)", s.synced_total);
  row("failed (moved to the failed set)", failed,
      s.last_error.empty() ? std::string() : "last error: " + s.last_error);
  row("possibly duplicated", s.possibly_duplicated, "sent in requests whose fate was unknown");
  row("still queued", s.queue_size);
  row(arrived_where.c_str(), arrived_unique,
      format("unique ids (%s duplicates)", grouped(duplicates).c_str()));

  std::vector<std::string> problems;
  if (accepted != s.committed_total + lost_before_commit) {
    problems.push_back(format(
        "%s accepted records were neither committed nor counted as dropped",
        grouped(accepted - std::min(accepted, s.committed_total + lost_before_commit)).c_str()));
  }
  if (failed > 0) problems.push_back(grouped(failed) + " records moved to the failed set");
  if (!drained) problems.push_back(grouped(s.queue_size) + " records still queued at the end");
  if (arrived_unique != should_arrive) {
    problems.push_back(format("%s of %s acknowledged records arrived",
                              grouped(arrived_unique).c_str(), grouped(should_arrive).c_str()));
  }
  if (problems.empty()) {
    std::printf("\ncheck: every acknowledged record arrived, once by id: yes (%s of %s)\n",
                grouped(arrived_unique).c_str(), grouped(should_arrive).c_str());
    return kExitOk;
  }
  std::printf("\ncheck: every acknowledged record arrived: NO\n");
  for (const auto& p : problems) std::printf("  - %s\n", p.c_str());
  return kExitLost;
}

int print_backlog_order(const ReceiverTally& tally, std::uint64_t first_seq,
                        std::uint64_t online_seq, std::chrono::steady_clock::time_point up_at) {
  struct PerPriority {
    std::uint64_t records = 0;
    std::uint64_t first_pos = 0, last_pos = 0;  // 1-based, among all of this run's arrivals
    double last_after_s = 0;
  };
  std::array<PerPriority, kPriorityCount> per{};
  std::uint64_t position = 0, backlog = 0;
  for (const Arrival& a : tally.first_arrivals) {
    if (a.seq < first_seq) continue;  // an earlier run's record in a reused journal
    ++position;
    if (a.seq >= online_seq) continue;
    ++backlog;
    const auto p = static_cast<int>(a.priority);
    PerPriority& pp = per[static_cast<std::size_t>(p)];
    if (pp.records++ == 0) pp.first_pos = position;
    pp.last_pos = position;
    pp.last_after_s = std::chrono::duration<double>(a.at - up_at).count();
  }
  std::printf(
      "\nbacklog: the %s records committed while the receiver was down, by arrival\n"
      "(positions among all %s records of this run that arrived):\n",
      grouped(backlog).c_str(), grouped(position).c_str());
  std::printf("  %-9s %10s %25s %18s\n", "priority", "records", "arrival positions",
              "all in, after");
  for (std::size_t p = 0; p < kPriorityCount; ++p) {
    const PerPriority& pp = per[p];
    if (pp.records == 0) {
      std::printf("  %-9s %10s %25s %18s\n", kPriorityNames[p], "0", "-", "-");
      continue;
    }
    const std::string range = grouped(pp.first_pos) + " - " + grouped(pp.last_pos);
    std::printf("  %-9s %10s %25s %16.2f s\n", kPriorityNames[p], grouped(pp.records).c_str(),
                range.c_str(), pp.last_after_s);
  }
  // Each priority's backlog must be complete before the next one's is: the last CRITICAL
  // record arrives before the last HIGH one, and so on. (Not "every CRITICAL record before
  // any HIGH one": a record committed while the uploader was already sending a batch
  // goes out in the next batch, after that batch's lower priorities, as it should.)
  std::string order;
  bool in_order = true;
  std::uint64_t previous_last = 0;
  for (std::size_t p = 0; p < kPriorityCount; ++p) {
    if (per[p].records == 0) continue;
    if (per[p].last_pos < previous_last) in_order = false;
    previous_last = per[p].last_pos;
    order += order.empty() ? kPriorityNames[p] : std::string(", then ") + kPriorityNames[p];
  }
  if (in_order) {
    std::printf("check: the backlog drained in priority order (%s): yes\n", order.c_str());
    return kExitOk;
  }
  std::printf(
      "check: the backlog drained in priority order: NO (a priority's last record arrived "
      "before a higher priority's)\n");
  return kExitOutOfOrder;
}

}  // namespace flightlog::demo
