#include "uploader/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <string>

#include "flightlog/error.hpp"

namespace flightlog::detail {

namespace {

// windowBits 15 + 16: zlib writes (or, inflating, expects only) a gzip wrapper.
constexpr int kGzipWindowBits = MAX_WBITS | 16;
constexpr int kMemLevel = 8;  // zlib's default

// zlib's counters are 32-bit (uInt): feed and drain at most this much per call.
constexpr std::size_t kMaxChunk = UINT_MAX;

std::string zlib_text(const z_stream& zs, int rc) {
  if (zs.msg != nullptr) return zs.msg;
  switch (rc) {
    case Z_MEM_ERROR:
      return "out of memory";
    case Z_STREAM_ERROR:
      return "invalid parameter";
    case Z_DATA_ERROR:
      return "damaged data";
    case Z_BUF_ERROR:
      return "truncated data";
    default:
      return "zlib error " + std::to_string(rc);
  }
}

}  // namespace

std::string gzip_compress(std::string_view data, int level) {
  z_stream zs{};
  int rc = deflateInit2(&zs, level, Z_DEFLATED, kGzipWindowBits, kMemLevel, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) throw Error("gzip: cannot start compression: " + zlib_text(zs, rc));

  // deflateBound covers the whole output (wrapper included) for one Z_FINISH pass, so
  // the usual case is one allocation and no copy.
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(std::min<std::size_t>(data.size(), ULONG_MAX))));
  std::size_t in_pos = 0;
  std::size_t out_pos = 0;
  for (;;) {
    std::size_t in_chunk = std::min(data.size() - in_pos, kMaxChunk);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_chunk);
    if (out_pos == out.size()) out.resize(out.size() * 2 + 64);
    std::size_t out_chunk = std::min(out.size() - out_pos, kMaxChunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_chunk);
    bool last = in_pos + in_chunk == data.size();
    rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
    in_pos += in_chunk - zs.avail_in;
    out_pos += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string why = zlib_text(zs, rc);
      deflateEnd(&zs);
      throw Error("gzip: compression failed: " + why);
    }
  }
  deflateEnd(&zs);
  out.resize(out_pos);
  return out;
}

std::string gunzip(std::string_view data, std::size_t max_output) {
  z_stream zs{};
  int rc = inflateInit2(&zs, kGzipWindowBits);
  if (rc != Z_OK) throw Error("gunzip: cannot start decompression: " + zlib_text(zs, rc));

  std::string out;
  out.resize(std::min<std::size_t>(std::max<std::size_t>(data.size() * 4, 256), max_output));
  std::size_t in_pos = 0;
  std::size_t out_pos = 0;
  for (;;) {
    if (out_pos == out.size()) {
      if (out.size() >= max_output) {
        inflateEnd(&zs);
        throw Error("gunzip: the data inflates beyond " + std::to_string(max_output) + " bytes");
      }
      out.resize(std::min(out.size() * 2, max_output));
    }
    std::size_t in_chunk = std::min(data.size() - in_pos, kMaxChunk);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_chunk);
    std::size_t out_chunk = std::min(out.size() - out_pos, kMaxChunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    std::size_t consumed = in_chunk - zs.avail_in;
    std::size_t produced = out_chunk - zs.avail_out;
    in_pos += consumed;
    out_pos += produced;
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && consumed == 0 && produced == 0 && in_pos == data.size()) {
      inflateEnd(&zs);
      throw Error("gunzip: truncated gzip data (" + std::to_string(data.size()) + " bytes)");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string why = zlib_text(zs, rc);
      inflateEnd(&zs);
      throw Error("gunzip: not valid gzip data: " + why);
    }
  }
  inflateEnd(&zs);
  if (in_pos != data.size()) {
    throw Error("gunzip: " + std::to_string(data.size() - in_pos) +
                " bytes follow the gzip member");
  }
  out.resize(out_pos);
  return out;
}

}  // namespace flightlog::detail
