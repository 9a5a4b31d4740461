#include "output.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

namespace flightlog::tools {

namespace {

// errno of stdout's first failure: ferror() says that a write failed, not why.
int first_error = 0;

void note_failure() {
  if (first_error == 0) first_error = errno != 0 ? errno : EIO;
}

}  // namespace

bool write_stdout(std::string& text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
    note_failure();
  }
  text.clear();
  return first_error == 0 && std::ferror(stdout) == 0;
}

bool flush_stdout() {
  if (std::fflush(stdout) != 0) note_failure();
  return first_error == 0 && std::ferror(stdout) == 0;
}

bool output_failed(const char* tool) {
  flush_stdout();
  if (first_error == 0 && std::ferror(stdout) == 0) return false;
  if (first_error == 0) first_error = EIO;
  std::cerr << tool << ": cannot write the output: " << std::strerror(first_error) << "\n";
  return true;
}

}  // namespace flightlog::tools
