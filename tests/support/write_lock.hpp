// Another process holding a journal's LMDB write lock: the writer's commits wait on it,
// as they would behind a slow device flush, for as long as a test wants.
#pragma once

#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace flightlog::test {

class WriteLockHolder {
 public:
  // Forks the holder. Construct it before the Client whose writer it will stall (a fork
  // after the Client's threads start would copy a process mid-flight); the child opens
  // the journal only when hold() asks, so the Client can open it first.
  explicit WriteLockHolder(const std::filesystem::path& dir) {
    if (pipe(to_child_) != 0 || pipe(to_parent_) != 0) ADD_FAILURE() << "pipe failed";
    child_ = fork();
    if (child_ < 0) ADD_FAILURE() << "fork failed";
    if (child_ == 0) run_child(dir);
  }

  ~WriteLockHolder() {
    if (child_ > 0 && !released_) release();
    for (int fd : {to_child_[0], to_child_[1], to_parent_[0], to_parent_[1]}) close(fd);
  }

  WriteLockHolder(const WriteLockHolder&) = delete;
  WriteLockHolder& operator=(const WriteLockHolder&) = delete;

  // Returns once the child holds the write lock.
  void hold() {
    char b = 0;
    ASSERT_EQ(write(to_child_[1], "G", 1), 1);
    ASSERT_EQ(read(to_parent_[0], &b, 1), 1);
  }

  // Lets the lock go and reaps the child; fails the test if the child failed.
  void release() {
    released_ = true;
    ASSERT_EQ(write(to_child_[1], "R", 1), 1);
    int status = 0;
    ASSERT_EQ(waitpid(child_, &status, 0), child_);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "lock holder status " << status;
  }

 private:
  [[noreturn]] void run_child(const std::filesystem::path& dir) {
    char b = 0;
    if (read(to_child_[0], &b, 1) != 1) _exit(2);
    MDB_env* env = nullptr;
    MDB_txn* txn = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0 ||
        mdb_env_open(env, dir.c_str(), 0, 0600) != 0 || mdb_txn_begin(env, nullptr, 0, &txn) != 0) {
      _exit(3);
    }
    if (write(to_parent_[1], "L", 1) != 1) _exit(4);  // holding the write lock
    if (read(to_child_[0], &b, 1) != 1) _exit(5);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    _exit(0);
  }

  int to_child_[2] = {-1, -1};
  int to_parent_[2] = {-1, -1};
  pid_t child_ = -1;
  bool released_ = false;
};

}  // namespace flightlog::test
