// Record helpers the record targets share, over the test support's value encoding
// (tests/support/journal_read.hpp), for fields of any type with .name and .value
// (DecodedField, test::FieldSpec).
#pragma once

#include <cstddef>
#include <vector>

#include "../tests/support/journal_read.hpp"
#include "format/record.hpp"

namespace flightlog::fuzz {

// Sum over fields of 2 + name + value bytes: RecordEncoder::begin()'s size hint.
template <typename Fields>
std::size_t fields_bytes(const Fields& inputs, const Fields& outputs) {
  std::size_t n = 0;
  std::vector<std::byte> value;
  for (const auto* side : {&inputs, &outputs}) {
    for (const auto& f : *side) {
      value.clear();
      test::append_value_bytes(value, f.value);
      n += 2 + f.name.size() + value.size();
    }
  }
  return n;
}

// enc.field() for every input, then every output.
template <typename Fields>
void encode_fields(detail::RecordEncoder& enc, const Fields& inputs, const Fields& outputs) {
  std::vector<std::byte> value;
  for (const auto* side : {&inputs, &outputs}) {
    for (const auto& f : *side) {
      value.clear();
      test::append_value_bytes(value, f.value);
      enc.field(f.name, f.value.type(), value.data(), value.size());
    }
  }
}

}  // namespace flightlog::fuzz
