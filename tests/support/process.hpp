// Runs a program (the flightlog-dump tool, usually) and captures what it prints.
//
// posix_spawn with stdout and stderr sent to temporary files: no pipe can fill up and
// stall the child, and it is safe from a process that runs other threads.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

extern char** environ;

namespace flightlog::test {

struct ProcessResult {
  int exit_code = -1;  // WEXITSTATUS, or 128 + signal if the child was killed
  std::string out;     // everything it wrote to stdout
  std::string err;     // everything it wrote to stderr
};

inline std::string read_whole_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs argv[0] with the arguments argv[1..] and waits for it. Aborts the test binary
// only if the child cannot be started at all (a broken test set-up, not a finding).
inline ProcessResult run_process(const std::vector<std::string>& argv) {
  TempDir tmp;
  const auto out_path = tmp / "stdout";
  const auto err_path = tmp / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) std::abort();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) std::abort();
  }
  ProcessResult r;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.exit_code = 128 + WTERMSIG(status);
  }
  r.out = read_whole_file(out_path);
  r.err = read_whole_file(err_path);
  return r;
}

// Runs flightlog-dump on a journal directory.
inline ProcessResult run_dump(const std::filesystem::path& dir,
                              const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{FLIGHTLOG_DUMP_PATH, dir.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv);
}

// Splits NDJSON output into its lines (without the newlines; a last empty line is not
// returned).
inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace flightlog::test
