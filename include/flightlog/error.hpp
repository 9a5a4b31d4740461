// flightlog/error.hpp: the one exception type flightlog throws.
//
// Only set-up and maintenance calls throw (the Client constructor, schema(),
// cleanup_offline_queue(), retry_failed(), install_crash_flush()); the logging calls
// never do. The message names
// the option, path or record at fault and never contains the api_key.
#pragma once

#include <stdexcept>
#include <string>

namespace flightlog {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace flightlog
