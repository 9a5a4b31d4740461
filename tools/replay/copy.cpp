#include "copy.hpp"

#include "format/record.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

void Copier::add(std::span<const std::byte> bytes, Priority priority) {
  if (failed_) return;
  const std::vector<std::byte> fresh = fd::with_failure(bytes, 0, 0, {});
  const auto offset = static_cast<std::uint32_t>(arena_.size());
  arena_.insert(arena_.end(), fresh.begin(), fresh.end());
  pending_.push_back({priority, offset, static_cast<std::uint32_t>(fresh.size())});
}

bool Copier::commit() {
  if (failed_) return false;
  if (pending_.empty()) return true;
  const std::uint64_t first = target_.counts().next_seq;
  // All or nothing: a part stored would break the numbering of the copies (see copy.hpp).
  const fd::CommitOutcome out = target_.commit_all(arena_, pending_, /*max_queued=*/0);
  if (out.committed == pending_.size()) {
    if (summary_.copied == 0) summary_.first_seq = first;
    summary_.copied += out.committed;
    summary_.last_seq = first + out.committed - 1;
  } else {
    summary_.dropped += pending_.size();
    summary_.error = out.error;
    failed_ = true;
  }
  arena_.clear();
  pending_.clear();
  return !failed_;
}

}  // namespace flightlog::tools
