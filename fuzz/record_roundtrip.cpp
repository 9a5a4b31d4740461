// Fuzz target: RecordEncoder -> decode_record round trip (src/format/record.hpp), with
// records built from fuzz-derived kinds, priorities, timestamps, names and fields of
// every type (any bytes in names and strings, any bit pattern in doubles).
//
// Several records go into one arena after some bytes already there, as the writer
// fills its batch arena, with the size hint of begin() absent, exact or too large.
// Each must decode to exactly what was encoded (doubles compared by bits). Then
// with_failure() sets attempts, status and a reason (longer ones are cut at 255 bytes),
// twice, as the uploader does on two failed attempts: the record must still decode,
// with the new delivery state and the same contents.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "check.hpp"
#include "format/record.hpp"
#include "generate.hpp"
#include "records.hpp"

namespace {

namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using flightlog::Priority;
using flightlog::Value;

struct Spec {
  std::uint8_t kind = fd::kKindPrediction;
  Priority priority = Priority::Normal;
  std::int64_t ts_ns = 0;
  std::string name;
  std::vector<ft::FieldSpec> inputs, outputs;
};

// Draws record specs from the input.
class Builder {
 public:
  explicit Builder(FuzzedDataProvider& in) : gen_(in), in_(in) {}

  Spec spec() {
    Spec s;
    s.kind = in_.ConsumeBool() ? fd::kKindEvent : fd::kKindPrediction;
    s.priority = static_cast<Priority>(in_.ConsumeIntegralInRange<int>(0, 3));
    s.ts_ns = in_.ConsumeIntegral<std::int64_t>();
    if (s.kind == fd::kKindEvent) s.name = std::string(gen_.text(255));
    const auto n_in = in_.ConsumeIntegralInRange<std::size_t>(0, 255);
    const auto n_out = in_.ConsumeIntegralInRange<std::size_t>(0, 255);
    for (std::size_t i = 0; i < n_in + n_out && in_.remaining_bytes() > 0; ++i) {
      auto& side = i < n_in ? s.inputs : s.outputs;
      const auto name = gen_.text(255);
      side.push_back({std::string(name), gen_.value()});
    }
    return s;
  }

 private:
  flightlog::fuzz::Generator gen_;
  FuzzedDataProvider& in_;
};

std::size_t fields_bytes(const Spec& s) {
  return flightlog::fuzz::fields_bytes(s.inputs, s.outputs);
}

void check_contents(const fd::DecodedRecord& r, const Spec& s, const std::string& where) {
  FUZZ_CHECK(r.kind == s.kind && r.priority == s.priority && r.ts_ns == s.ts_ns,
             where + ": header fields differ");
  FUZZ_CHECK(r.name == (s.kind == fd::kKindEvent ? s.name : std::string()), where + ": name");
  FUZZ_CHECK(r.inputs.size() == s.inputs.size() && r.outputs.size() == s.outputs.size(),
             where + ": field counts differ");
  for (int side = 0; side < 2; ++side) {
    const auto& got = side == 0 ? r.inputs : r.outputs;
    const auto& want = side == 0 ? s.inputs : s.outputs;
    for (std::size_t i = 0; i < got.size(); ++i) {
      FUZZ_CHECK(
          ft::OwnedField(got[i].name, got[i].value) == ft::OwnedField(want[i].name, want[i].value),
          where + ": field " + std::to_string(i) + " differs");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Builder build(in);
  std::vector<std::byte> arena(in.ConsumeIntegralInRange<std::size_t>(0, 64), std::byte{0x5a});
  const int n_records = in.ConsumeIntegralInRange<int>(1, 4);
  std::vector<Spec> specs;
  std::vector<std::size_t> offsets;
  for (int k = 0; k < n_records; ++k) {
    specs.push_back(build.spec());
    const Spec& s = specs.back();
    std::size_t hint = 0;
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
      case 1:
        hint = fields_bytes(s);
        break;
      case 2:
        hint = fields_bytes(s) + in.ConsumeIntegralInRange<std::size_t>(1, 256);
        break;
      default:
        break;
    }
    fd::RecordEncoder enc(arena);
    enc.begin(s.kind, s.priority, s.ts_ns, s.name, static_cast<std::uint8_t>(s.inputs.size()),
              static_cast<std::uint8_t>(s.outputs.size()), hint);
    flightlog::fuzz::encode_fields(enc, s.inputs, s.outputs);
    offsets.push_back(enc.finish());
  }

  for (int k = 0; k < n_records; ++k) {
    const Spec& s = specs[k];
    const std::size_t end = k + 1 < n_records ? offsets[k + 1] : arena.size();
    const std::span<const std::byte> bytes(arena.data() + offsets[k], end - offsets[k]);
    FUZZ_CHECK(bytes.size() == fd::kRecordHeaderBytes + s.name.size() + fields_bytes(s),
               "record " + std::to_string(k) + " has " + std::to_string(bytes.size()) + " bytes");
    fd::DecodedRecord r;
    const std::string err = fd::decode_record(bytes, r);
    FUZZ_CHECK(err.empty(), "an encoded record does not decode: " + err);
    check_contents(r, s, "encoded");
    FUZZ_CHECK(r.attempts == 0 && r.last_status == 0 && r.reason.empty(), "fresh delivery state");

    std::vector<std::byte> failed(bytes.begin(), bytes.end());
    for (int attempt = 0; attempt < 2; ++attempt) {
      const auto attempts = in.ConsumeIntegral<std::uint16_t>();
      const auto status = in.ConsumeIntegral<std::uint16_t>();
      const std::string reason = in.ConsumeRandomLengthString(300);
      failed = fd::with_failure(failed, attempts, status, reason);
      fd::DecodedRecord f;
      const std::string ferr = fd::decode_record(failed, f);
      FUZZ_CHECK(ferr.empty(), "a record after with_failure does not decode: " + ferr);
      check_contents(f, s, "with_failure");
      FUZZ_CHECK(f.attempts == attempts && f.last_status == status &&
                     f.reason == std::string_view(reason).substr(0, 255),
                 "with_failure's delivery state differs");
    }
  }
  return 0;
}
