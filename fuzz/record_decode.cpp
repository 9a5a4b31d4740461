// Fuzz target: decode_record (src/format/record.hpp) on arbitrary bytes.
//
// The contract: for any bytes, either an empty string and the record, or a message
// saying what is wrong; never a crash, never a read outside the bytes (ASan watches an
// exact-size copy). Random bytes almost never carry the right CRC-32, so bytes refused
// for their checksum are decoded once more with the checksum made right: the fuzzer
// then reaches the field parser. A record that decodes must
// - have its views (name, reason, field names, strings) inside the bytes;
// - be exactly what RecordEncoder + with_failure write for its contents (the reserved
//   byte 23 aside, which the decoder does not check);
// - decode the same into a DecodedRecord that held a larger record before (the
//   uploader reuses one);
// - agree with peek_timestamp.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "check.hpp"
#include "format/record.hpp"
#include "records.hpp"

namespace {

namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using flightlog::Priority;
using flightlog::Value;

bool inside(std::string_view v, std::span<const std::byte> bytes) {
  const auto* p = reinterpret_cast<const std::byte*>(v.data());
  return v.empty() || (p >= bytes.data() && p + v.size() <= bytes.data() + bytes.size());
}

// The record RecordEncoder and with_failure write for `r`'s contents.
std::vector<std::byte> reencode(const fd::DecodedRecord& r) {
  std::vector<std::byte> arena;
  fd::RecordEncoder enc(arena);
  enc.begin(r.kind, r.priority, r.ts_ns, r.name, static_cast<std::uint8_t>(r.inputs.size()),
            static_cast<std::uint8_t>(r.outputs.size()));
  flightlog::fuzz::encode_fields(enc, r.inputs, r.outputs);
  enc.finish();
  return fd::with_failure(arena, r.attempts, r.last_status, r.reason);
}

bool same_record(const fd::DecodedRecord& a, const fd::DecodedRecord& b) {
  const auto oa = ft::own(a);
  const auto ob = ft::own(b);
  return oa.kind == ob.kind && oa.priority == ob.priority && oa.ts_ns == ob.ts_ns &&
         oa.attempts == ob.attempts && oa.name == ob.name && oa.inputs == ob.inputs &&
         oa.outputs == ob.outputs && a.last_status == b.last_status && a.reason == b.reason;
}

// A record with more fields than most inputs decode to, to dirty a reused DecodedRecord.
const std::vector<std::byte>& big_record() {
  static const std::vector<std::byte> rec = [] {
    std::vector<ft::FieldSpec> in, out;
    for (int i = 0; i < 6; ++i) in.push_back({"input_" + std::to_string(i), Value(i * 1.5)});
    out.push_back({"label", Value("a string value")});
    out.push_back({"score", Value(std::int64_t{-7})});
    auto r = ft::encode_record(fd::kKindEvent, Priority::High, 1'700'000'000'000'000'000,
                               "big_event", in, out);
    return fd::with_failure(r, 9, 503, "an earlier failure");
  }();
  return rec;
}

void check_decoded(std::span<const std::byte> bytes) {
  fd::DecodedRecord fresh;
  const std::string err = fd::decode_record(bytes, fresh);

  fd::DecodedRecord reused;
  FUZZ_CHECK(fd::decode_record(big_record(), reused).empty(), "the big record must decode");
  const std::string err_reused = fd::decode_record(bytes, reused);
  FUZZ_CHECK(err == err_reused, err + " | " + err_reused);

  std::int64_t peek_ts = 0;
  const bool peeked = fd::peek_timestamp(bytes, peek_ts);
  if (!err.empty()) {
    for (char c : err) FUZZ_CHECK(c >= 0x20 && c < 0x7f, "error texts are printable: " + err);
    return;
  }
  FUZZ_CHECK(same_record(fresh, reused), "a reused DecodedRecord decodes differently");
  FUZZ_CHECK(peeked && peek_ts == fresh.ts_ns, "peek_timestamp disagrees with decode_record");
  FUZZ_CHECK(fresh.kind == fd::kKindPrediction || fresh.kind == fd::kKindEvent, "kind");
  FUZZ_CHECK(static_cast<unsigned>(fresh.priority) <= 3, "priority");
  FUZZ_CHECK(inside(fresh.name, bytes) && inside(fresh.reason, bytes), "name/reason views");
  for (const auto* side : {&fresh.inputs, &fresh.outputs}) {
    for (const auto& f : *side) {
      FUZZ_CHECK(inside(f.name, bytes), "field name view outside the record");
      if (f.value.type() == Value::Type::String) {
        FUZZ_CHECK(inside(f.value.as_string(), bytes), "string view outside the record");
      }
    }
  }

  const std::vector<std::byte> again = reencode(fresh);
  FUZZ_CHECK(again.size() == bytes.size(), "re-encoded size differs");
  for (std::size_t i = 0; i < again.size(); ++i) {
    if ((i >= 4 && i < 8) || i == 23) continue;  // checksum; reserved byte
    FUZZ_CHECK(again[i] == bytes[i], "re-encoded byte " + std::to_string(i) + " differs");
  }
  fd::DecodedRecord round;
  const std::string err_again = fd::decode_record(again, round);
  FUZZ_CHECK(err_again.empty(), "the re-encoded record does not decode: " + err_again);
  FUZZ_CHECK(same_record(fresh, round), "the re-encoded record decodes differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size heap copy: one byte read past the end is an ASan report.
  std::unique_ptr<std::byte[]> copy(new std::byte[size == 0 ? 1 : size]);
  if (size != 0) std::memcpy(copy.get(), data, size);
  std::span<const std::byte> bytes(copy.get(), size);
  check_decoded(bytes);

  // Once more with the checksum made right, when that is what stopped the decoder.
  fd::DecodedRecord rec;
  if (fd::decode_record(bytes, rec) == "checksum mismatch") {
    const std::uint32_t crc = fd::record_crc(bytes);
    std::memcpy(copy.get() + 4, &crc, 4);
    check_decoded(bytes);
  }
  return 0;
}
