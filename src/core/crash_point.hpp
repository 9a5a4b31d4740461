// Test hook: stop the process with SIGKILL at a named moment, to test crash recovery
// deterministically.
//
// Enabled only by the environment variable FLIGHTLOG_CRASH_AT=<point>[:<nth>], read once
// when the library is loaded: the process kills itself the nth time (1 when omitted) it
// reaches <point>. Points:
//   commit         inside a batch's write transaction, just before it commits
//   map_growth     while the journal's map grows (the batch not yet retried)
//   before_delete  the receiver accepted a batch; its delete is not yet submitted
//   delete         inside the delete transaction of delivered records, before commit
//   cleanup        inside a cleanup transaction, before commit
//   eviction       inside a batch transaction that evicted records over
//                  offline_max_queue_size, before commit
// When the variable is unset (or names no point) each hook costs one well-predicted
// compare of a global; the hooks sit on the writer and uploader threads only, never on
// the logging path.
#pragma once

#include <cstdint>

namespace flightlog::detail {

enum class CrashPoint : std::uint8_t {
  None = 0,
  Commit,
  MapGrowth,
  BeforeDelete,
  Delete,
  Cleanup,
  Eviction,
};

// The point FLIGHTLOG_CRASH_AT armed (None when unset). Set once before main().
extern const CrashPoint g_armed_crash_point;

// Counts a hit of the armed point and raises SIGKILL on the nth.
void crash_point_reached() noexcept;

inline void crash_point(CrashPoint p) noexcept {
  if (__builtin_expect(p == g_armed_crash_point, 0)) crash_point_reached();
}

}  // namespace flightlog::detail
