// Ownership of a journal directory: one Client, in any process, at a time.
//
// flock(LOCK_EX | LOCK_NB) on <dir>/flightlog.lock. flock belongs to the open file
// description, so a second Client in the same process is refused just like one in
// another process, and the kernel drops the lock when the owner dies (kill -9
// included): no stale lock to clean up. The owner's pid is written into the file so
// the error can name it.
#pragma once

#include <filesystem>

namespace flightlog::detail {

// Checks and prepares `dir` for a journal: creates it with mode 0700 if missing;
// refuses an empty path, a symbolic link, a non-directory, a directory owned by another
// user or writable by group or others. Throws flightlog::Error naming the problem.
void prepare_journal_directory(const std::filesystem::path& dir);

class DirLock {
 public:
  // Throws flightlog::Error if another owner holds it (naming its pid) or the lock
  // file cannot be created.
  explicit DirLock(const std::filesystem::path& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace flightlog::detail
