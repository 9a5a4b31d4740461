// LMDB's own accounting of a journal file: map size, pages in use and pages on the free
// list, for flightlog-dump --stats.
//
// Reads through an LMDB environment of its own (read-only, one short read transaction,
// no directory lock). LMDB forbids opening one environment twice in a process at the
// same time (closing the second would drop the first's POSIX locks), so call this only
// while no Journal of the same directory is open in this process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace flightlog::detail {

struct JournalSpace {
  std::size_t map_bytes = 0;           // the memory map's size (the file may be smaller)
  std::size_t file_bytes = 0;          // size of data.mdb on disk
  std::size_t page_bytes = 0;          // LMDB page size
  std::uint64_t pages_used = 0;        // high-water mark: pages ever allocated in the file
  std::uint64_t pages_free = 0;        // on LMDB's free list, reusable without growth
  std::uint64_t pages_never_used = 0;  // beyond the high-water mark, up to the map size
  unsigned readers = 0;  // reader slots used, high-water mark (a stale reader pins pages)
  unsigned max_readers = 0;
};

// Fills `out`. Returns an empty string, or what went wrong (with the path).
std::string read_journal_space(const std::filesystem::path& dir, JournalSpace& out);

}  // namespace flightlog::detail
