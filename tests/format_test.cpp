// Unit tests of the journal's record format (format/record.hpp) and of its JSON
// rendering (format/json.hpp), the text the dump tool prints and the uploader sends.
//
// Every JSON text produced here is checked with simdjson's DOM parser; decoding of
// damaged bytes is run on exactly-sized heap buffers so that ASan catches any read
// outside them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <bit>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "format/json.hpp"
#include "format/record.hpp"
#include "support/journal_read.hpp"
#include "support/strings.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::cat;
using fl::test::FieldSpec;
using fl::test::OwnedField;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kDenormMin = std::numeric_limits<double>::denorm_min();

// A record with one field of every value type on each side, with awkward values.
std::vector<FieldSpec> sample_inputs() {
  static const std::string kBinary("a\0b\xff\"\\", 6);  // embedded NUL, invalid UTF-8
  static const std::string kLong(70'000, 'x');          // longer than 16 bits of length
  return {
      {"d", 1.5},
      {"neg_zero", -0.0},
      {"max", DBL_MAX},
      {"denorm", kDenormMin},
      {"nan", kNaN},
      {"inf", -kInf},
      {"i_min", std::numeric_limits<std::int64_t>::min()},
      {"i_max", std::numeric_limits<std::int64_t>::max()},
      {"t", true},
      {"f", false},
      {"empty", std::string_view()},
      {"binary", std::string_view(kBinary)},
      {"long", std::string_view(kLong)},
      {"", 0},  // an empty name is legal
  };
}

std::vector<FieldSpec> sample_outputs() {
  return {{"p", 0.25}, {"label", "cat"}, {"n", std::int64_t{-7}}, {"ok", true}};
}

std::vector<OwnedField> owned(const std::vector<FieldSpec>& specs) {
  std::vector<OwnedField> out;
  for (const auto& f : specs) out.emplace_back(f.name, f.value);
  return out;
}

std::vector<OwnedField> owned(const std::vector<fd::DecodedField>& fields) {
  std::vector<OwnedField> out;
  for (const auto& f : fields) out.emplace_back(f.name, f.value);
  return out;
}

std::span<const std::byte> span_of(const std::vector<std::byte>& v) {
  return {v.data(), v.size()};
}

// Decodes a copy of `bytes` held in a heap block of exactly their size, so a read past
// the end is a heap-buffer-overflow under ASan rather than a read of the vector's slack.
std::string decode_exact(std::span<const std::byte> bytes, fd::DecodedRecord& out) {
  auto copy = std::make_unique<std::byte[]>(bytes.size() == 0 ? 1 : bytes.size());
  std::copy(bytes.begin(), bytes.end(), copy.get());
  std::string err = fd::decode_record({copy.get(), bytes.size()}, out);
  // Views into `copy` die with it; the callers only look at the error then, or at
  // fields they copied. Clear the views to make misuse obvious.
  out.name = {};
  out.reason = {};
  for (auto* side : {&out.inputs, &out.outputs}) {
    for (auto& f : *side) f.name = {};
  }
  return err;
}

// Rewrites the CRC so that a deliberately altered record passes the checksum and the
// structural checks behind it are exercised.
void reseal(std::vector<std::byte>& rec) {
  const std::uint32_t crc = fd::record_crc(span_of(rec));
  std::memcpy(rec.data() + 4, &crc, 4);
}

// Parses one JSON text with simdjson; fails the test if it is not valid JSON.
simdjson::dom::element parse_json(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element doc;
  const auto err = parser.parse(text).get(doc);
  EXPECT_EQ(err, simdjson::SUCCESS) << simdjson::error_message(err) << " in: " << text;
  return doc;
}

std::string json_string_of(std::string_view s) {
  std::string out;
  fd::append_json_string(out, s);
  return out;
}

std::string json_value_of(const fl::Value& v) {
  std::string out;
  fd::append_json_value(out, v);
  return out;
}

// The string a JSON string literal holds, as simdjson decodes it.
std::string decoded_json_string(const std::string& literal) {
  simdjson::dom::parser parser;
  const std::string doc = cat("[", literal, "]");
  simdjson::dom::element e = parse_json(parser, doc);
  std::string_view s;
  EXPECT_EQ(e.at(0).get_string().get(s), simdjson::SUCCESS) << literal;
  return std::string(s);
}

}  // namespace

// ---- Record encode / decode --------------------------------------------------------------

TEST(Record, PredictionRoundTripsEveryValueType) {
  const auto in = sample_inputs();
  const auto out = sample_outputs();
  const std::int64_t ts = 1'700'000'000'123'456'789;
  const auto bytes =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::High, ts, {}, in, out);

  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record(span_of(bytes), rec), "");
  EXPECT_EQ(rec.kind, fd::kKindPrediction);
  EXPECT_EQ(rec.priority, fl::Priority::High);
  EXPECT_EQ(rec.ts_ns, ts);
  EXPECT_EQ(rec.attempts, 0);
  EXPECT_EQ(rec.last_status, 0);
  EXPECT_TRUE(rec.name.empty());
  EXPECT_TRUE(rec.reason.empty());
  EXPECT_EQ(owned(rec.inputs), owned(in));
  EXPECT_EQ(owned(rec.outputs), owned(out));
}

TEST(Record, EventRoundTripsForEveryPriorityAndTimestamp) {
  const std::string long_name(255, 'n');  // the longest event name
  for (auto p :
       {fl::Priority::Critical, fl::Priority::High, fl::Priority::Normal, fl::Priority::Low}) {
    for (std::int64_t ts :
         {std::int64_t{0}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::int64_t>::max()}) {
      const auto bytes =
          fl::test::encode_record(fd::kKindEvent, p, ts, long_name, {{"k", "v"}, {"x", 2.0}}, {});
      fd::DecodedRecord rec;
      ASSERT_EQ(fd::decode_record(span_of(bytes), rec), "");
      EXPECT_EQ(rec.kind, fd::kKindEvent);
      EXPECT_EQ(rec.priority, p);
      EXPECT_EQ(rec.ts_ns, ts);
      EXPECT_EQ(rec.name, long_name);
      ASSERT_EQ(rec.inputs.size(), 2u);
      EXPECT_EQ(rec.inputs[0].value.as_string(), "v");
      EXPECT_TRUE(rec.outputs.empty());
      std::int64_t peeked = 0;
      EXPECT_TRUE(fd::peek_timestamp(span_of(bytes), peeked));
      EXPECT_EQ(peeked, ts);
    }
  }
}

TEST(Record, EmptyRecordRoundTrips) {
  const auto bytes = fl::test::encode_record(fd::kKindPrediction, fl::Priority::Low, 5, {}, {}, {});
  EXPECT_EQ(bytes.size(), fd::kRecordHeaderBytes);
  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record(span_of(bytes), rec), "");
  EXPECT_TRUE(rec.inputs.empty());
  EXPECT_TRUE(rec.outputs.empty());
}

TEST(Record, EncoderAppendsSeveralRecordsToOneArena) {
  // The writer encodes a whole batch into one arena; each record must stand alone.
  std::vector<std::byte> arena;
  fd::RecordEncoder enc(arena);
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (int i = 0; i < 3; ++i) {
    const std::size_t begin = arena.size();
    enc.begin(fd::kKindPrediction, fl::Priority::Normal, i, {}, 1, 0);
    const std::int64_t v = i * 100;
    enc.field("v", fl::Value::Type::Int, reinterpret_cast<const std::byte*>(&v), 8);
    EXPECT_EQ(enc.finish(), begin);
    spans.emplace_back(begin, arena.size() - begin);
  }
  for (int i = 0; i < 3; ++i) {
    fd::DecodedRecord rec;
    const auto [off, len] = spans[static_cast<std::size_t>(i)];
    ASSERT_EQ(fd::decode_record({arena.data() + off, len}, rec), "");
    EXPECT_EQ(rec.ts_ns, i);
    EXPECT_EQ(rec.inputs.at(0).value.as_int(), i * 100);
  }
}

TEST(Record, EveryTruncationIsAnErrorAndStaysInBounds) {
  const auto bytes = fl::test::encode_record(fd::kKindEvent, fl::Priority::Normal, 42, "evt",
                                             sample_inputs(), sample_outputs());
  for (std::size_t len = 0; len < bytes.size(); len += (len < 400 ? 1 : 997)) {
    std::span<const std::byte> prefix(bytes.data(), len);
    fd::DecodedRecord rec;
    EXPECT_NE(decode_exact(prefix, rec), "") << "prefix of " << len << " bytes decoded";

    // The same prefix with a valid checksum: the structural checks must refuse it.
    if (len >= 8) {
      std::vector<std::byte> sealed(prefix.begin(), prefix.end());
      reseal(sealed);
      EXPECT_NE(decode_exact(span_of(sealed), rec), "") << "resealed prefix of " << len;
    }
  }
}

// Every byte counts: byte 0 (version) is checked by value and covered by the CRC with
// the rest of the header (kind, priority, event name length: a flipped priority bit
// would otherwise ship a NORMAL record as LOW); bytes 4..7 hold the CRC itself.
TEST(Record, EveryBitFlipIsDetected) {
  const auto bytes = fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, 42, {},
                                             {{"a", 1.0}, {"s", "text"}}, {{"p", true}});
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto damaged = bytes;
      damaged[i] ^= static_cast<std::byte>(1u << bit);
      fd::DecodedRecord rec;
      EXPECT_NE(decode_exact(span_of(damaged), rec), "") << "byte " << i << " bit " << bit;
    }
  }
}

TEST(Record, WrongVersionIsRefused) {
  const auto good =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, 1, {}, {{"a", 1.0}}, {});
  for (int version : {0, 2, 99, 255}) {
    auto bytes = good;
    bytes[0] = static_cast<std::byte>(version);
    reseal(bytes);
    fd::DecodedRecord rec;
    const std::string err = decode_exact(span_of(bytes), rec);
    EXPECT_NE(err.find("version"), std::string::npos) << err;
    EXPECT_NE(err.find(std::to_string(version)), std::string::npos) << err;
    std::int64_t ts = 0;
    EXPECT_FALSE(fd::peek_timestamp(span_of(bytes), ts));
  }
}

TEST(Record, BogusKindPriorityReservedTypeAndBoolAreRefused) {
  // One field: header (24) + type(1) name_len(1) name "b"(1) + bool value (1).
  const auto good =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, 1, {}, {{"b", true}}, {});
  ASSERT_EQ(good.size(), 28u);
  struct Case {
    std::size_t offset;
    std::uint8_t value;
    const char* what;
  };
  for (const Case& c : {Case{1, 0, "kind"}, Case{1, 3, "kind"}, Case{1, 200, "kind"},
                        Case{2, 4, "priority"}, Case{2, 255, "priority"}, Case{23, 1, "reserved"},
                        Case{23, 128, "reserved"}, Case{24, 0, "type"}, Case{24, 5, "type"},
                        Case{24, 255, "type"}, Case{27, 2, "bool"}, Case{27, 255, "bool"}}) {
    auto bytes = good;
    bytes[c.offset] = static_cast<std::byte>(c.value);
    reseal(bytes);
    fd::DecodedRecord rec;
    const std::string err = decode_exact(span_of(bytes), rec);
    EXPECT_NE(err.find(c.what), std::string::npos)
        << "offset " << c.offset << " value " << int(c.value) << ": '" << err << "'";
  }
}

TEST(Record, LengthsThatRunPastTheEndAreRefused) {
  const auto good =
      fl::test::encode_record(fd::kKindEvent, fl::Priority::Normal, 1, "ev", {{"s", "abc"}}, {});
  // Layout: header(24) name "ev"(2) | type(1)=26 name_len(1)=27 "s"(1)=28 len(4)=29..32 "abc"
  struct Case {
    std::size_t offset;
    std::vector<std::uint8_t> value;
  };
  for (const Case& c : {
           Case{3, {255}},                      // event name length
           Case{27, {255}},                     // field name length
           Case{29, {0xff, 0xff, 0xff, 0xff}},  // string length 4 GiB
           Case{29, {4, 0, 0, 0}},              // string length one past the end
           Case{18, {2}},                       // two inputs, only one present
           Case{19, {1}},                       // an output that is not there
           Case{22, {1}},                       // a failure reason that is not there
       }) {
    auto bytes = good;
    for (std::size_t k = 0; k < c.value.size(); ++k) {
      bytes[c.offset + k] = static_cast<std::byte>(c.value[k]);
    }
    reseal(bytes);
    fd::DecodedRecord rec;
    EXPECT_NE(decode_exact(span_of(bytes), rec), "") << "offset " << c.offset;
  }
  // Trailing bytes that no field accounts for.
  auto longer = good;
  longer.push_back(std::byte{0});
  reseal(longer);
  fd::DecodedRecord rec;
  EXPECT_NE(decode_exact(span_of(longer), rec).find("length"), std::string::npos);
}

TEST(Record, RandomDamageNeverReadsOutOfBounds) {
  // Random mutations of a valid record, resealed so that they get past the checksum.
  // Whatever decode_record says, every view it returns must lie inside the input.
  const auto good = fl::test::encode_record(fd::kKindEvent, fl::Priority::High, 7, "event",
                                            {{"a", 1.0}, {"s", "hello"}, {"b", false}},
                                            {{"i", std::int64_t{3}}, {"t", "xyz"}});
  std::mt19937_64 rng(12345);
  std::size_t accepted = 0;
  for (int iter = 0; iter < 20'000; ++iter) {
    auto bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      bytes[rng() % bytes.size()] = static_cast<std::byte>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 1));
    bytes[0] = std::byte{fd::kRecordVersion};
    if (bytes.size() >= 8) reseal(bytes);
    auto copy = std::make_unique<std::byte[]>(bytes.size() + 1);
    std::copy(bytes.begin(), bytes.end(), copy.get());
    const std::byte* lo = copy.get();
    const std::byte* hi = lo + bytes.size();
    auto inside = [&](std::string_view s) {
      const auto* p = reinterpret_cast<const std::byte*>(s.data());
      return s.empty() || (p >= lo && p + s.size() <= hi);
    };
    fd::DecodedRecord rec;
    if (fd::decode_record({lo, bytes.size()}, rec).empty()) {
      ++accepted;
      EXPECT_TRUE(inside(rec.name));
      EXPECT_TRUE(inside(rec.reason));
      for (const auto* side : {&rec.inputs, &rec.outputs}) {
        for (const auto& f : *side) {
          EXPECT_TRUE(inside(f.name));
          if (f.value.type() == fl::Value::Type::String) {
            EXPECT_TRUE(inside(f.value.as_string()));
          }
        }
      }
    }
  }
  // Some mutations only change values; they decode. Most must not.
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, 20'000u);
}

TEST(Record, WithFailureSetsDeliveryStateAndKeepsTheData) {
  const auto in = sample_inputs();
  const auto out = sample_outputs();
  const auto bytes =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::Low, 99, {}, in, out);

  const auto failed = fd::with_failure(span_of(bytes), 3, 503, "service unavailable");
  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record(span_of(failed), rec), "");
  EXPECT_EQ(rec.attempts, 3);
  EXPECT_EQ(rec.last_status, 503);
  EXPECT_EQ(rec.reason, "service unavailable");
  EXPECT_EQ(rec.ts_ns, 99);
  EXPECT_EQ(rec.priority, fl::Priority::Low);
  EXPECT_EQ(owned(rec.inputs), owned(in));
  EXPECT_EQ(owned(rec.outputs), owned(out));

  // A second failure replaces the reason rather than appending to it.
  const auto again = fd::with_failure(span_of(failed), 4, 400, "bad");
  ASSERT_EQ(fd::decode_record(span_of(again), rec), "");
  EXPECT_EQ(rec.attempts, 4);
  EXPECT_EQ(rec.last_status, 400);
  EXPECT_EQ(rec.reason, "bad");
  EXPECT_EQ(again.size(), bytes.size() + 3);
  EXPECT_EQ(owned(rec.outputs), owned(out));

  // Reasons are cut at 255 bytes (the header holds an 8-bit length).
  const std::string long_reason(1000, 'r');
  const auto cut = fd::with_failure(span_of(bytes), 1, 500, long_reason);
  ASSERT_EQ(fd::decode_record(span_of(cut), rec), "");
  EXPECT_EQ(rec.reason, long_reason.substr(0, 255));

  // Clearing the failure gives back the original bytes.
  const auto cleared = fd::with_failure(span_of(again), 0, 0, "");
  EXPECT_EQ(cleared, bytes);
}

// ---- JSON strings -----------------------------------------------------------------------

TEST(JsonString, QuotesBackslashesAndEveryControlCharacterAreEscaped) {
  std::string all;
  for (int c = 0; c < 0x20; ++c) all.push_back(static_cast<char>(c));
  all += "\x7f\"\\/ plain";
  const std::string lit = json_string_of(all);
  // No raw control character may appear inside a JSON string.
  for (char c : lit) EXPECT_GE(static_cast<unsigned char>(c), 0x20u) << lit;
  EXPECT_EQ(decoded_json_string(lit), all);
  // Each control character alone, too.
  for (int c = 0; c <= 0x7f; ++c) {
    const std::string one(1, static_cast<char>(c));
    EXPECT_EQ(decoded_json_string(json_string_of(one)), one) << "char " << c;
  }
}

TEST(JsonString, ValidMultiByteUtf8IsKeptAsIs) {
  for (const char* s :
       {"\xC2\x80", "\xC3\xA9t\xC3\xA9", "\xDF\xBF", "\xE0\xA0\x80", "\xE2\x82\xAC", "\xEF\xBF\xBD",
        "\xEF\xBF\xBF", "\xED\x9F\xBF", "\xEE\x80\x80", "\xF0\x90\x80\x80", "\xF0\x9D\x84\x9E",
        "\xF4\x8F\xBF\xBF", "mixed \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 end"}) {
    const std::string lit = json_string_of(s);
    EXPECT_EQ(lit, cat("\"", s, "\""));  // kept byte for byte, not \u-escaped
    EXPECT_EQ(decoded_json_string(lit), s);
  }
}

TEST(JsonString, InvalidUtf8BecomesReplacementCharacters) {
  const std::string R = "\xEF\xBF\xBD";  // U+FFFD, one per byte that is not valid UTF-8
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"\xC0\xAF", R + R},                                  // overlong '/'
      {"\xC1\xBF", R + R},                                  // overlong
      {"\xE0\x80\xAF", R + R + R},                          // overlong, 3 bytes
      {"\xE0\x9F\xBF", R + R + R},                          // overlong, 3 bytes (U+07FF)
      {"\xF0\x80\x80\xAF", R + R + R + R},                  // overlong, 4 bytes
      {"\xF0\x8F\xBF\xBF", R + R + R + R},                  // overlong, 4 bytes (U+FFFF)
      {"\xED\xA0\x80", R + R + R},                          // high surrogate U+D800
      {"\xED\xBF\xBF", R + R + R},                          // low surrogate U+DFFF
      {"\xED\xA0\xBD\xED\xB8\x80", R + R + R + R + R + R},  // CESU-8 surrogate pair
      {"\xF4\x90\x80\x80", R + R + R + R},                  // above U+10FFFF
      {"\xF5\x80\x80\x80", R + R + R + R},                  // lead byte never valid
      {"\xE2\x82", R + R},                                  // truncated at the end
      {"a\xE2\x82z", cat("a", R, R, "z")},                  // truncated in the middle
      {"\xF0\x9F\x98", R + R + R},                          // truncated 4-byte sequence
      {"\xC3", R},                                          // lone lead byte
      {"\x80", R},                                          // lone continuation byte
      {"x\xBF\x80y", cat("x", R, R, "y")},                  // stray continuation bytes
      {"\xFF", R},
      {"\xFE\xFF", R + R},
      {"\xC3\xA9\xFF\xC3\xA9", cat("\xC3\xA9", R, "\xC3\xA9")},  // valid around invalid
  };
  for (const auto& c : cases) {
    const std::string lit = json_string_of(c.in);
    EXPECT_EQ(decoded_json_string(lit), c.out) << "input of " << c.in.size() << " bytes";
  }
}

TEST(JsonString, RandomBytesAlwaysGiveValidJson) {
  std::mt19937_64 rng(7);
  simdjson::dom::parser parser;
  for (int iter = 0; iter < 5'000; ++iter) {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    const std::string doc = cat("[", json_string_of(s), "]");
    simdjson::dom::element e;
    ASSERT_EQ(parser.parse(doc).get(e), simdjson::SUCCESS) << "iteration " << iter;
  }
}

// ---- JSON numbers -----------------------------------------------------------------------

TEST(JsonNumber, NanAndInfinitiesBecomeStrings) {
  EXPECT_EQ(json_value_of(kNaN), "\"NaN\"");
  EXPECT_EQ(json_value_of(-kNaN), "\"NaN\"");
  EXPECT_EQ(json_value_of(std::numeric_limits<double>::signaling_NaN()), "\"NaN\"");
  EXPECT_EQ(json_value_of(kInf), "\"Infinity\"");
  EXPECT_EQ(json_value_of(-kInf), "\"-Infinity\"");
}

TEST(JsonNumber, IntegersBoolsAndStringsRender) {
  simdjson::dom::parser parser;
  for (std::int64_t i :
       {std::numeric_limits<std::int64_t>::min(), std::int64_t{-1}, std::int64_t{0},
        std::int64_t{42}, std::numeric_limits<std::int64_t>::max()}) {
    const std::string doc = cat("[", json_value_of(i), "]");
    std::int64_t back = 0;
    ASSERT_EQ(parse_json(parser, doc).at(0).get_int64().get(back), simdjson::SUCCESS) << doc;
    EXPECT_EQ(back, i);
  }
  EXPECT_EQ(json_value_of(true), "true");
  EXPECT_EQ(json_value_of(false), "false");
  EXPECT_EQ(json_value_of("a\"b"), "\"a\\\"b\"");
}

namespace {

// Checks that `d` renders as a JSON number that reads back to the same bits through
// std::from_chars (a correctly rounding reader) and that simdjson accepts the text.
void expect_double_round_trips(double d, simdjson::dom::parser& parser) {
  const std::string text = json_value_of(d);
  double back = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), back);
  ASSERT_EQ(ec, std::errc()) << text;
  EXPECT_EQ(end, text.data() + text.size()) << text;
  EXPECT_EQ(std::bit_cast<std::uint64_t>(back), std::bit_cast<std::uint64_t>(d)) << text;
  const std::string doc = cat("[", text, "]");
  simdjson::dom::element e = parse_json(parser, doc);
  double sj = 0;
  ASSERT_EQ(e.at(0).get_double().get(sj), simdjson::SUCCESS) << text;
  EXPECT_EQ(sj, d) << text;  // value equality: simdjson reads "-0" as integer 0, see below
}

}  // namespace

TEST(JsonNumber, SpecialFiniteDoublesRoundTripExactly) {
  simdjson::dom::parser parser;
  for (double d : {0.0,
                   -0.0,
                   1.0,
                   -1.0,
                   0.1,
                   1.0 / 3.0,
                   2.5e-308,
                   DBL_MAX,
                   -DBL_MAX,
                   DBL_MIN,
                   -DBL_MIN,
                   kDenormMin,
                   -kDenormMin,
                   3 * kDenormMin,
                   DBL_MIN - kDenormMin,
                   DBL_EPSILON,
                   1e15,
                   1e16,
                   1e17,
                   123456789.125,
                   9007199254740993.0,
                   0x1p63,
                   -0x1p63,
                   1e22,
                   1e300,
                   -1e-300}) {
    expect_double_round_trips(d, parser);
  }
  // -0.0 keeps its sign in the text.
  EXPECT_EQ(json_value_of(-0.0).front(), '-');
}

TEST(JsonNumber, RandomFiniteDoublesRoundTripExactly) {
  std::mt19937_64 rng(2024);
  simdjson::dom::parser parser;
  int tested = 0;
  while (tested < 100'000) {
    const double d = std::bit_cast<double>(rng());
    if (!std::isfinite(d)) continue;
    expect_double_round_trips(d, parser);
    if (HasFailure()) return;
    ++tested;
  }
}

// Integral doubles keep a ".0": std::to_chars alone prints 3.0 as "3", -0.0 as "-0" and
// 2^64 as "18446744073709551616", which parsers that type numbers by their syntax read
// as integers: simdjson reads "-0" as integer 0 (the sign lost) and refuses
// "18446744073709551616" outright, so the whole line would be unparsable for it.
TEST(JsonNumber, IntegralDoublesReadBackAsDoublesInSimdjson) {
  simdjson::dom::parser parser;
  for (double d :
       {-0.0, 3.0, 0x1p64, static_cast<double>(std::numeric_limits<std::uint64_t>::max()), -0x1p64,
        -10399679658775009280.0, 1e20, 123456789012345678901.0}) {
    const std::string doc = cat("[", json_value_of(d), "]");
    simdjson::dom::element e = parse_json(parser, doc);
    if (HasFailure()) continue;
    EXPECT_TRUE(e.at(0).is_double()) << doc;
    double back = 1;
    ASSERT_EQ(e.at(0).get_double().get(back), simdjson::SUCCESS) << doc;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(back), std::bit_cast<std::uint64_t>(d)) << doc;
  }
}

// ---- Timestamps and whole records -------------------------------------------------------

TEST(JsonTime, Rfc3339WithNineFractionalDigits) {
  struct Case {
    std::int64_t ns;
    const char* text;
  };
  for (const Case& c : {
           Case{0, "1970-01-01T00:00:00.000000000Z"},
           Case{1, "1970-01-01T00:00:00.000000001Z"},
           Case{-1, "1969-12-31T23:59:59.999999999Z"},
           Case{-1'000'000'000, "1969-12-31T23:59:59.000000000Z"},
           Case{-1'500'000'000, "1969-12-31T23:59:58.500000000Z"},
           Case{951'782'400'000'000'000, "2000-02-29T00:00:00.000000000Z"},
           Case{1'700'000'000'123'456'789, "2023-11-14T22:13:20.123456789Z"},
           Case{-2'208'988'800'000'000'000, "1900-01-01T00:00:00.000000000Z"},
           Case{std::numeric_limits<std::int64_t>::min(), "1677-09-21T00:12:43.145224192Z"},
           Case{std::numeric_limits<std::int64_t>::max(), "2262-04-11T23:47:16.854775807Z"},
       }) {
    std::string out;
    fd::append_rfc3339(out, c.ns);
    EXPECT_EQ(out, c.text) << c.ns;
  }
}

TEST(JsonRecord, EveryFieldIsPresentAndValid) {
  const auto in = sample_inputs();
  const auto out = sample_outputs();
  const std::int64_t ts = -123'456'789;  // before 1970
  const auto bytes =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::Critical, ts, {}, in, out);
  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record(span_of(bytes), rec), "");
  std::string line;
  fd::append_record_json(line, "0123456789abcdef", 77, rec, fd::RecordState::Queued);

  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse_json(parser, line);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(std::string_view(doc["id"]), "0123456789abcdef-77");
  EXPECT_EQ(std::int64_t(doc["seq"]), 77);
  EXPECT_EQ(std::string_view(doc["priority"]), "CRITICAL");
  EXPECT_EQ(std::string_view(doc["ts"]), "1969-12-31T23:59:59.876543211Z");
  EXPECT_EQ(std::int64_t(doc["ts_ns"]), ts);
  EXPECT_EQ(std::string_view(doc["type"]), "prediction");
  EXPECT_EQ(std::int64_t(doc["attempts"]), 0);
  EXPECT_EQ(std::string_view(doc["state"]), "queued");
  EXPECT_EQ(doc["last_status"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(doc["reason"].error(), simdjson::NO_SUCH_FIELD);

  simdjson::dom::object inputs = doc["inputs"];
  EXPECT_EQ(double(inputs["d"]), 1.5);
  EXPECT_EQ(double(inputs["max"]), DBL_MAX);
  EXPECT_EQ(double(inputs["denorm"]), kDenormMin);
  EXPECT_EQ(std::string_view(inputs["nan"]), "NaN");
  EXPECT_EQ(std::string_view(inputs["inf"]), "-Infinity");
  EXPECT_EQ(std::int64_t(inputs["i_min"]), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(std::int64_t(inputs["i_max"]), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(bool(inputs["t"]), true);
  EXPECT_EQ(bool(inputs["f"]), false);
  EXPECT_EQ(std::string_view(inputs["empty"]), "");
  EXPECT_EQ(std::string_view(inputs["binary"]), std::string_view("a\0b\xEF\xBF\xBD\"\\", 8));
  EXPECT_EQ(std::string_view(inputs["long"]).size(), 70'000u);
  EXPECT_EQ(std::int64_t(inputs[""]), 0);
  simdjson::dom::object output = doc["output"];
  EXPECT_EQ(double(output["p"]), 0.25);
  EXPECT_EQ(std::string_view(output["label"]), "cat");
}

TEST(JsonRecord, EventsAndFailedRecordsAndAwkwardNames) {
  // Names need the same escaping as values.
  const std::string weird_name = std::string("q\"b\\c\n\x01\x1f\x7f") + "\xC0\xAF" + "\xE2\x82\xAC";
  const std::string weird_expected =
      std::string("q\"b\\c\n\x01\x1f\x7f") + "\xEF\xBF\xBD\xEF\xBF\xBD" + "\xE2\x82\xAC";
  const auto bytes = fl::test::encode_record(fd::kKindEvent, fl::Priority::Low, 0, weird_name,
                                             {{weird_name, 1.0}}, {});
  const auto failed = fd::with_failure(span_of(bytes), 3, 422, "bad \"field\"\n\xFF");
  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record(span_of(failed), rec), "");
  std::string line;
  fd::append_record_json(line, "id", 1, rec, fd::RecordState::Failed);

  simdjson::dom::parser parser;
  simdjson::dom::element doc = parse_json(parser, line);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(std::string_view(doc["type"]), "event");
  EXPECT_EQ(std::string_view(doc["name"]), weird_expected);
  EXPECT_EQ(std::string_view(doc["priority"]), "LOW");
  EXPECT_EQ(std::string_view(doc["state"]), "failed");
  EXPECT_EQ(std::int64_t(doc["attempts"]), 3);
  EXPECT_EQ(std::int64_t(doc["last_status"]), 422);
  EXPECT_EQ(std::string_view(doc["reason"]), "bad \"field\"\n\xEF\xBF\xBD");
  simdjson::dom::object inputs = doc["inputs"];
  EXPECT_EQ(double(inputs[weird_expected]), 1.0);
  EXPECT_EQ(simdjson::dom::object(doc["output"]).size(), 0u);

  // Without delivery state (the form an uploader may send).
  line.clear();
  fd::append_record_json(line, "id", 1, rec, fd::RecordState::Failed,
                         {.include_delivery_state = false});
  doc = parse_json(parser, line);
  EXPECT_EQ(doc["attempts"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(doc["state"].error(), simdjson::NO_SUCH_FIELD);
  EXPECT_EQ(doc["reason"].error(), simdjson::NO_SUCH_FIELD);
}

namespace {

// The keys and values RepeatedNamesGetNumberedKeys expects, in order, with `many` fields
// named "many" after the first six.
void check_numbered_keys(simdjson::dom::object inputs, simdjson::dom::object output, int many) {
  std::vector<std::pair<std::string, double>> want = {
      {"x", 1.0},   {"x#2", 2.0},          {"x#2#2", 3.0},
      {"x#3", 4.0}, {"\xEF\xBF\xBD", 5.0}, {"\xEF\xBF\xBD#2", 6.0}};
  for (int i = 0; i < many; ++i) {
    want.emplace_back(i == 0 ? "many" : "many#" + std::to_string(i + 1), static_cast<double>(i));
  }
  std::vector<std::pair<std::string, double>> got;
  for (auto [key, value] : inputs) {
    double d = 0;
    if (value.get(d) != simdjson::SUCCESS) d = static_cast<double>(std::int64_t(value));
    got.emplace_back(std::string(key), d);
  }
  EXPECT_EQ(got, want);
  got.clear();
  for (auto [key, value] : output) got.emplace_back(std::string(key), double(value));
  const std::vector<std::pair<std::string, double>> want_out = {
      {"x", 7.0}, {"p", 8.0}, {"p#2", 9.0}};
  EXPECT_EQ(got, want_out);
}

}  // namespace

// Keys are unique within inputs and within output, whatever names were logged: a name
// repeated, names that escape alike (two different invalid bytes both become U+FFFD),
// a name that looks like a renamed one; in a record of a few fields and in one of more
// than the renderer compares one by one (it switches to a hash set). The values stay in
// logged order.
TEST(JsonRecord, RepeatedNamesGetNumberedKeys) {
  for (const int many : {0, 20}) {
    std::vector<fl::test::FieldSpec> in = {{"x", 1.0}, {"x", 2.0},    {"x#2", 3.0},
                                           {"x", 4.0}, {"\xFF", 5.0}, {"\xFE", 6.0}};
    for (int i = 0; i < many; ++i) in.push_back({"many", std::int64_t{i}});
    const std::vector<fl::test::FieldSpec> out = {{"x", 7.0}, {"p", 8.0}, {"p", 9.0}};
    const auto bytes =
        fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, 0, {}, in, out);
    fd::DecodedRecord rec;
    ASSERT_EQ(fd::decode_record(span_of(bytes), rec), "");
    for (const bool clickhouse : {false, true}) {
      SCOPED_TRACE(std::to_string(6 + many) + " inputs" + (clickhouse ? ", ClickHouse" : ""));
      std::string line;
      if (clickhouse) {
        fd::append_clickhouse_row(line, "id", 1, rec);
      } else {
        fd::append_record_json(line, "id", 1, rec, fd::RecordState::Queued);
      }
      simdjson::dom::parser parser;
      simdjson::dom::element doc = parse_json(parser, line);
      ASSERT_FALSE(HasFailure());
      simdjson::dom::object inputs, output;
      // ClickHouse rows carry inputs and output as JSON text.
      std::string in_text, out_text;
      simdjson::dom::parser p2, p3;
      if (clickhouse) {
        std::string_view text;
        ASSERT_EQ(doc["inputs"].get(text), simdjson::SUCCESS) << line;
        in_text = text;
        ASSERT_EQ(doc["output"].get(text), simdjson::SUCCESS) << line;
        out_text = text;
        ASSERT_EQ(p2.parse(in_text).get(inputs), simdjson::SUCCESS) << in_text;
        ASSERT_EQ(p3.parse(out_text).get(output), simdjson::SUCCESS) << out_text;
      } else {
        ASSERT_EQ(doc["inputs"].get(inputs), simdjson::SUCCESS) << line;
        ASSERT_EQ(doc["output"].get(output), simdjson::SUCCESS) << line;
      }
      check_numbered_keys(inputs, output, many);
    }
  }
}

TEST(JsonRecord, RecordId) {
  EXPECT_EQ(fd::record_id("abc", 0), "abc-0");
  EXPECT_EQ(fd::record_id("0123456789abcdef", 18446744073709551615ull),
            "0123456789abcdef-18446744073709551615");
}
