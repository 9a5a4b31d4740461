#include "journal/dir_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "flightlog/error.hpp"

namespace flightlog::detail {

namespace {

std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

void prepare_journal_directory(const std::filesystem::path& given) {
  if (given.empty()) throw Error("offline_dir is empty: give the journal a directory");
  // lstat("link/") follows the link: inspect the path without its trailing separators.
  std::string text = given.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  const std::filesystem::path dir(text);
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      throw Error("offline_dir " + quoted(dir) + " cannot be inspected: " + errno_text(errno));
    }
    std::error_code ec;
    if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      throw Error("offline_dir " + quoted(dir) + " cannot be created: " + errno_text(errno));
    }
    if (lstat(dir.c_str(), &st) != 0) {
      throw Error("offline_dir " + quoted(dir) + " cannot be inspected: " + errno_text(errno));
    }
  }
  if (S_ISLNK(st.st_mode)) {
    throw Error("offline_dir " + quoted(dir) +
                " is a symbolic link; give the real directory (links are refused so the "
                "journal cannot be redirected)");
  }
  if (!S_ISDIR(st.st_mode)) throw Error("offline_dir " + quoted(dir) + " is not a directory");
  if (st.st_uid != geteuid()) {
    throw Error("offline_dir " + quoted(dir) + " belongs to another user (uid " +
                std::to_string(st.st_uid) + ")");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
    throw Error("offline_dir " + quoted(dir) + " is writable by group or others (mode " + mode +
                "); run chmod 700 on it");
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    throw Error("offline_dir " + quoted(dir) + " is not writable: " + errno_text(errno));
  }
}

DirLock::DirLock(const std::filesystem::path& dir) {
  const auto path = dir / "flightlog.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) {
    throw Error("cannot open lock file " + quoted(path) + ": " + errno_text(errno));
  }
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {};
    const ssize_t n = pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      std::string owner = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "unknown";
      while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) owner.pop_back();
      throw Error("offline_dir " + quoted(dir) +
                  " is already in use by another flightlog client (pid " + owner +
                  "); each journal directory has one owner at a time");
    }
    throw Error("cannot lock " + quoted(path) + ": " + errno_text(err));
  }
  fchmod(fd_, 0600);
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] ssize_t w = pwrite(fd_, pid.data(), pid.size(), 0);
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace flightlog::detail
