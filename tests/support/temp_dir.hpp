// A fresh directory under $TMPDIR (or /tmp), removed with everything in it. The tests,
// the benchmarks and the demo all make their journals here: on the machine's ordinary
// disk, so durable figures pay for real device flushes.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace flightlog::test {

class TempDir {
 public:
  // `prefix` names the directory (`<prefix>.XXXXXX`), so a leftover one says who made it.
  explicit TempDir(const std::string& prefix = "flightlog-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "cannot make " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace flightlog::test
