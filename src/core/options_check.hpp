// Validation of Options, run by the Client constructor before anything is created.
#pragma once

#include "flightlog/options.hpp"

namespace flightlog::detail {

// Throws flightlog::Error naming the first option that is out of range, with the range.
void validate_options(const Options& o);

}  // namespace flightlog::detail
