// The journal's record format: how one record is laid out as an LMDB value.
//
// Every record is self-contained (names included), versioned and checksummed, so a
// dump or an uploader needs nothing but the record to render it, and a damaged record
// is found rather than shipped. All integers are little-endian.
//
//   off size field
//     0   1  format version (kRecordVersion)
//     1   1  kind: 1 prediction, 2 event
//     2   1  priority: 0 CRITICAL .. 3 LOW
//     3   1  name_len: event name length (0 for predictions)
//     4   4  CRC-32 (IEEE 802.3, as zlib's crc32) of bytes [0, 4) then [8, end)
//     8   8  timestamp, Unix-epoch nanoseconds (signed)
//    16   2  attempts: upload attempts that counted (see the uploader)
//    18   1  n_inputs
//    19   1  n_outputs
//    20   2  last_status: HTTP status of the last failed attempt (0 = none)
//    22   1  reason_len: length of the failure reason at the end (0 = none)
//    23   1  reserved, 0
//    24      event name (name_len bytes)
//            n_inputs + n_outputs fields: type(1) name_len(1) name value
//              value: double / int64 8 bytes, bool 1 byte, string u32 length + bytes
//            failure reason (reason_len bytes)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flightlog/value.hpp"

namespace flightlog::detail {

inline constexpr std::uint8_t kRecordVersion = 1;
inline constexpr std::size_t kRecordHeaderBytes = 24;
inline constexpr std::uint8_t kKindPrediction = 1;
inline constexpr std::uint8_t kKindEvent = 2;

struct DecodedField {
  std::string_view name;
  Value value;
};

// A record decoded in place: views point into the bytes it was decoded from.
struct DecodedRecord {
  std::uint8_t kind = 0;
  Priority priority = Priority::Normal;
  std::int64_t ts_ns = 0;
  std::uint16_t attempts = 0;
  std::uint16_t last_status = 0;
  std::string_view name;    // events
  std::string_view reason;  // failed records
  std::vector<DecodedField> inputs;
  std::vector<DecodedField> outputs;
};

// Decodes `bytes`. Returns an empty string on success, else what is wrong (never
// reads outside `bytes`, whatever they hold).
std::string decode_record(std::span<const std::byte> bytes, DecodedRecord& out);

// Reads only the timestamp (and checks the checksum), for cleanup. False if the record
// is too short, of an unknown version, or fails its checksum.
bool peek_timestamp(std::span<const std::byte> bytes, std::int64_t& ts_ns) noexcept;

// Incremental encoder used by the writer: begin(), field()..., finish().
class RecordEncoder {
 public:
  explicit RecordEncoder(std::vector<std::byte>& arena) : arena_(arena) {}
  // `fields_bytes`, when known, is the sum over fields of 2 + name size + value size:
  // the arena then grows once per record instead of once per field.
  void begin(std::uint8_t kind, Priority p, std::int64_t ts_ns, std::string_view name,
             std::uint8_t n_inputs, std::uint8_t n_outputs, std::size_t fields_bytes = 0);
  void field(std::string_view name, Value::Type type, const std::byte* value, std::size_t size);
  // Seals the record (writes the CRC). Returns its offset in the arena.
  std::size_t finish();

 private:
  std::vector<std::byte>& arena_;
  std::size_t start_ = 0;
  std::size_t pos_ = 0;  // where the next field goes
};

// Rewrites attempts / last_status / reason of an encoded record (the uploader) and
// reseals it. Returns the new bytes.
std::vector<std::byte> with_failure(std::span<const std::byte> record, std::uint16_t attempts,
                                    std::uint16_t last_status, std::string_view reason);

std::uint32_t record_crc(std::span<const std::byte> record) noexcept;

}  // namespace flightlog::detail
