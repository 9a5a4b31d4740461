#include "format/record.hpp"

#include <libdeflate.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace flightlog::detail {

namespace {

template <typename T>
T load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));  // the project targets little-endian hosts (static_assert below)
  return v;
}

template <typename T>
void store(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof(T));
}

static_assert(std::endian::native == std::endian::little,
              "the journal format is little-endian; add byte swaps for this host");

// A bounds-checked reader over one record.
class Reader {
 public:
  explicit Reader(std::span<const std::byte> b) : b_(b) {}
  bool take(std::size_t n, const std::byte*& out) {
    if (n > b_.size() - pos_) return false;
    out = b_.data() + pos_;
    pos_ += n;
    return true;
  }
  std::size_t remaining() const { return b_.size() - pos_; }

 private:
  std::span<const std::byte> b_;
  std::size_t pos_ = 0;
};

std::string read_field(Reader& r, DecodedField& f) {
  const std::byte* p = nullptr;
  if (!r.take(2, p)) return "field header runs past the end";
  const auto type = static_cast<std::uint8_t>(p[0]);
  const auto name_len = static_cast<std::size_t>(p[1]);
  if (!r.take(name_len, p)) return "field name runs past the end";
  f.name = {reinterpret_cast<const char*>(p), name_len};
  switch (static_cast<Value::Type>(type)) {
    case Value::Type::Double:
      if (!r.take(8, p)) return "double value runs past the end";
      f.value = Value(load<double>(p));
      return {};
    case Value::Type::Int:
      if (!r.take(8, p)) return "integer value runs past the end";
      f.value = Value(load<std::int64_t>(p));
      return {};
    case Value::Type::Bool:
      if (!r.take(1, p)) return "bool value runs past the end";
      if (static_cast<std::uint8_t>(p[0]) > 1) return "bool value is neither 0 nor 1";
      f.value = Value(p[0] != std::byte{0});
      return {};
    case Value::Type::String: {
      if (!r.take(4, p)) return "string length runs past the end";
      const auto len = load<std::uint32_t>(p);
      if (!r.take(len, p)) return "string value runs past the end";
      f.value = Value(std::string_view(reinterpret_cast<const char*>(p), len));
      return {};
    }
  }
  return "unknown value type " + std::to_string(type);
}

}  // namespace

std::uint32_t record_crc(std::span<const std::byte> record) noexcept {
  if (record.size() < 8) return 0;
  // Everything but the checksum field itself: bytes [0, 4) and [8, end). libdeflate
  // computes the same CRC-32 as zlib's crc32, several times faster (PCLMULQDQ).
  const std::uint32_t head = libdeflate_crc32(0, record.data(), 4);
  return libdeflate_crc32(head, record.data() + 8, record.size() - 8);
}

std::string decode_record(std::span<const std::byte> bytes, DecodedRecord& out) {
  if (bytes.size() < kRecordHeaderBytes) {
    return "record of " + std::to_string(bytes.size()) + " bytes is shorter than its header";
  }
  const std::byte* h = bytes.data();
  const auto version = static_cast<std::uint8_t>(h[0]);
  if (version != kRecordVersion) {
    return "record format version " + std::to_string(version) + " is not " +
           std::to_string(kRecordVersion);
  }
  if (load<std::uint32_t>(h + 4) != record_crc(bytes)) return "checksum mismatch";
  out.kind = static_cast<std::uint8_t>(h[1]);
  if (out.kind != kKindPrediction && out.kind != kKindEvent) {
    return "unknown record kind " + std::to_string(out.kind);
  }
  const auto prio = static_cast<std::uint8_t>(h[2]);
  if (prio > 3) return "priority " + std::to_string(prio) + " out of range";
  // A use of the reserved byte would come with a new format version; with this one it
  // can only be damage the checksum happened to cover (or a bad writer).
  if (const auto reserved = static_cast<std::uint8_t>(h[23]); reserved != 0) {
    return "reserved header byte is " + std::to_string(reserved) + ", not 0";
  }
  out.priority = static_cast<Priority>(prio);
  out.ts_ns = load<std::int64_t>(h + 8);
  out.attempts = load<std::uint16_t>(h + 16);
  const auto n_in = static_cast<std::size_t>(h[18]);
  const auto n_out = static_cast<std::size_t>(h[19]);
  out.last_status = load<std::uint16_t>(h + 20);
  const auto reason_len = static_cast<std::size_t>(h[22]);
  const auto name_len = static_cast<std::size_t>(h[3]);

  Reader r(bytes.subspan(kRecordHeaderBytes));
  const std::byte* p = nullptr;
  if (!r.take(name_len, p)) return "event name runs past the end";
  out.name = {reinterpret_cast<const char*>(p), name_len};
  out.inputs.resize(n_in, DecodedField{{}, Value(0.0)});
  out.outputs.resize(n_out, DecodedField{{}, Value(0.0)});
  for (auto& f : out.inputs) {
    if (auto err = read_field(r, f); !err.empty()) return err;
  }
  for (auto& f : out.outputs) {
    if (auto err = read_field(r, f); !err.empty()) return err;
  }
  if (r.remaining() != reason_len) return "record length does not match its fields";
  if (!r.take(reason_len, p)) return "failure reason runs past the end";
  out.reason = {reinterpret_cast<const char*>(p), reason_len};
  return {};
}

bool peek_timestamp(std::span<const std::byte> bytes, std::int64_t& ts_ns) noexcept {
  if (bytes.size() < kRecordHeaderBytes) return false;
  if (static_cast<std::uint8_t>(bytes[0]) != kRecordVersion) return false;
  // Cleanup deletes by this timestamp: a damaged one must not make a record look old
  // (damaged records are kept for the dump to report).
  if (load<std::uint32_t>(bytes.data() + 4) != record_crc(bytes)) return false;
  ts_ns = load<std::int64_t>(bytes.data() + 8);
  return true;
}

void RecordEncoder::begin(std::uint8_t kind, Priority p, std::int64_t ts_ns, std::string_view name,
                          std::uint8_t n_inputs, std::uint8_t n_outputs, std::size_t fields_bytes) {
  start_ = arena_.size();
  pos_ = start_ + kRecordHeaderBytes + name.size();
  arena_.resize(pos_ + fields_bytes);
  std::byte* h = arena_.data() + start_;
  std::memset(h, 0, kRecordHeaderBytes);
  h[0] = std::byte{kRecordVersion};
  h[1] = std::byte{kind};
  h[2] = static_cast<std::byte>(p);
  h[3] = static_cast<std::byte>(name.size());
  store<std::int64_t>(h + 8, ts_ns);
  h[18] = std::byte{n_inputs};
  h[19] = std::byte{n_outputs};
  if (!name.empty()) std::memcpy(h + kRecordHeaderBytes, name.data(), name.size());
}

void RecordEncoder::field(std::string_view name, Value::Type type, const std::byte* value,
                          std::size_t size) {
  const std::size_t need = 2 + name.size() + size;
  if (pos_ + need > arena_.size()) arena_.resize(pos_ + need);
  std::byte* d = arena_.data() + pos_;
  d[0] = static_cast<std::byte>(type);
  d[1] = static_cast<std::byte>(name.size());
  if (!name.empty()) std::memcpy(d + 2, name.data(), name.size());
  if (size != 0) std::memcpy(d + 2 + name.size(), value, size);
  pos_ += need;
}

std::size_t RecordEncoder::finish() {
  arena_.resize(pos_);  // drops any unused reservation
  std::span<const std::byte> rec(arena_.data() + start_, pos_ - start_);
  store<std::uint32_t>(arena_.data() + start_ + 4, record_crc(rec));
  return start_;
}

std::vector<std::byte> with_failure(std::span<const std::byte> record, std::uint16_t attempts,
                                    std::uint16_t last_status, std::string_view reason) {
  // The caller passes a record that decoded cleanly; its old reason sits at the end.
  const auto old_reason = static_cast<std::size_t>(record[22]);
  reason = reason.substr(0, 255);
  std::vector<std::byte> out(record.begin(),
                             record.end() - static_cast<std::ptrdiff_t>(old_reason));
  out.insert(out.end(), reinterpret_cast<const std::byte*>(reason.data()),
             reinterpret_cast<const std::byte*>(reason.data()) + reason.size());
  store<std::uint16_t>(out.data() + 16, attempts);
  store<std::uint16_t>(out.data() + 20, last_status);
  out[22] = static_cast<std::byte>(reason.size());
  store<std::uint32_t>(out.data() + 4, record_crc(out));
  return out;
}

}  // namespace flightlog::detail
