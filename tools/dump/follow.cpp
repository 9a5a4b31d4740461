#include "follow.hpp"

#include <cstdio>

#include "output.hpp"
#include "stop_signal.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

FollowResult follow(fd::Journal& journal, const Selection& sel, RecordPrinter& printer,
                    std::uint64_t from_seq, std::size_t limit, std::chrono::milliseconds interval,
                    const OnDamaged& on_damaged) {
  FollowResult result;
  std::uint64_t watermark = from_seq;
  std::string text;
  // A record moved from its priority's set to the failed set between the two sets'
  // transactions is visited once: walk() skips it in the failed set.
  while (sleep_unless_stopped(interval)) {
    journal.refresh_counts();
    const std::uint64_t next = journal.counts().next_seq;
    if (next <= watermark) continue;
    WalkOptions opts;
    opts.from_seq = watermark;
    opts.below_seq = next;
    opts.limit = limit == 0 ? 0 : limit - result.printed;
    opts.between_chunks = [&] { return write_stdout(text) && !stop_requested(); };
    const WalkResult w = walk(
        journal, sel, opts,
        [&](const Visited& v) {
          printer.record(text, v.seq, v.rec, state_of(v.set));
          ++result.printed;
        },
        [&](fd::RecordSet set, std::uint64_t seq, const std::string& error) {
          ++result.damaged;
          on_damaged(set, seq, error);
        });
    flush_stdout();
    result.damaged += report_read_errors("flightlog-dump", w);
    if (w.stopped) break;
    watermark = next;
    if (limit != 0 && result.printed >= limit) break;
  }
  return result;
}

}  // namespace flightlog::tools
