// flightlog-replay --to-journal: copies chosen records into another journal, as queued
// records of their priority, ready for that journal's own uploader (or dump).
//
// Ids: a record's id is <journal id>-<seq>, and neither part is stored in the record
// itself; the target journal has its own id and hands out its own sequence numbers. So
// copies get NEW ids: <target journal id>-<target seq>. The copies are committed in the
// source's sync order with consecutive target sequence numbers, and the summary names
// the range, so the i-th selected source record (flightlog-dump with the same filters)
// is the i-th copy. A receiver that de-duplicates by id cannot tell a copy from its
// original: do not ship both the source and the copy to the same receiver.
//
// Copies start afresh: attempts 0, no last status or reason (as requeue_failed does).
// The target is opened for writing, with its directory lock: it must not be in use by a
// running Client. The source is only read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "journal/journal.hpp"

namespace flightlog::tools {

struct CopySummary {
  std::size_t copied = 0;
  std::size_t dropped = 0;      // a commit failed (journal full, I/O error)
  std::uint64_t first_seq = 0;  // target seqs of the copies: [first_seq, last_seq]
  std::uint64_t last_seq = 0;
  std::string error;  // why records were dropped
};

class Copier {
 public:
  explicit Copier(detail::Journal& target) : target_(target) {}

  // Stages one record (call inside a scan: it copies the bytes).
  void add(std::span<const std::byte> bytes, Priority priority);
  // Commits what is staged, in one write transaction, all of it or none (a full target
  // journal stores none of it). Call between read transactions. Returns false once a
  // commit has failed (the rest is not copied).
  bool commit();
  const CopySummary& summary() const { return summary_; }

 private:
  detail::Journal& target_;
  std::vector<std::byte> arena_;
  std::vector<detail::PendingRecord> pending_;
  CopySummary summary_;
  bool failed_ = false;
};

}  // namespace flightlog::tools
