// Validation of what a caller configures: Options, run by the Client constructor before
// anything is created, and the names of a schema.
//
// Kept out of client.cpp on purpose: code added there, however cold, can tip GCC's
// inlining budget for the translation unit and leave the logging calls with out-of-line
// calls (the duplicate-name check did: the span form of the named log_prediction called
// moodycamel's enqueue out of line). After a change to client.cpp, compare the logging
// calls in `objdump -d -r -C` of its object file before and after.
#pragma once

#include <string>
#include <vector>

#include "flightlog/options.hpp"

namespace flightlog::detail {

// Throws flightlog::Error naming the first option that is out of range, with the range.
void validate_options(const Options& o);

// Throws flightlog::Error for more than 255 names on a side, a name over 255 bytes, or a
// name repeated within a side (each side becomes one JSON object).
void validate_schema_names(const std::vector<std::string>& inputs,
                           const std::vector<std::string>& outputs);

}  // namespace flightlog::detail
