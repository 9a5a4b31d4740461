// flightlog-dump --follow: after the records present at start, prints records as they
// are committed, until SIGINT or SIGTERM.
//
// Each poll reads the journal's next_seq (a short read transaction), then walks only the
// keys committed since the previous poll, [previous next_seq, next_seq), in every set
// the selection walks: new records show up in their priority's set, or in the failed set
// if the uploader gave up on them before the poll. Each record is printed once. Records
// delivered and deleted between two polls are not seen. Nothing is ever written.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "journal/journal.hpp"
#include "render.hpp"
#include "selection.hpp"

namespace flightlog::tools {

struct FollowResult {
  std::size_t printed = 0;
  std::size_t damaged = 0;
};

// Polls every `interval` starting from key `from_seq` until a stop is requested
// (stop_signal.hpp) or `limit` records (0: no limit) have been printed; prints with
// `printer` to stdout, flushing after each poll; reports damaged records with
// `on_damaged`.
FollowResult follow(detail::Journal& journal, const Selection& sel, RecordPrinter& printer,
                    std::uint64_t from_seq, std::size_t limit, std::chrono::milliseconds interval,
                    const OnDamaged& on_damaged);

}  // namespace flightlog::tools
