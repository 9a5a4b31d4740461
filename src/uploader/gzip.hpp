// gzip (RFC 1952) of request bodies, on zlib.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flightlog::detail {

// One gzip member holding `data`. `level` is zlib's: 0 (store) to 9 (smallest);
// -1 = zlib's default (6). 1 is the fastest and usually the right choice for batches of
// JSON, which compress well at any level. Throws flightlog::Error if zlib fails (out of
// memory, bad level).
std::string gzip_compress(std::string_view data, int level);

// The content of one gzip member. Throws flightlog::Error for data that is not gzip,
// is damaged or truncated, has bytes after the member, or would inflate beyond
// `max_output` bytes (a guard against decompression bombs in the test receiver).
std::string gunzip(std::string_view data, std::size_t max_output = std::size_t{1} << 30);

}  // namespace flightlog::detail
