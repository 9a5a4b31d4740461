// Fuzz target: the JSON renderings of a record (src/format/json.hpp) for records with
// any names, strings (any bytes, invalid UTF-8 included), doubles (any bit pattern),
// integers, booleans, timestamps, journal ids and delivery states:
// - append_record_json with delivery state (flightlog-dump's lines), without it (the
//   NDJSON upload body), and append_clickhouse_row (the ClickHouse body), whose
//   "inputs" and "output" are JSON texts inside strings.
// Each must be one line (no raw control byte at all) that simdjson parses as one object
// whose keys come in the documented order and whose values read back as logged:
// - strings equal the input where it is valid UTF-8; each byte that does not start a
//   well-formed sequence (Unicode's table 3-7) reads back as one U+FFFD, the rest as is;
// - finite doubles read back as doubles (never as integers) with the same value and
//   sign; NaN, +Inf and -Inf as the strings "NaN", "Infinity", "-Infinity";
// - integers, booleans, seq, ts_ns, attempts and last_status exactly;
// - "ts" is RFC 3339 UTC with nine fractional digits naming the same nanosecond.
#include <simdjson.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "check.hpp"
#include "format/json.hpp"
#include "generate.hpp"

namespace {

namespace fd = flightlog::detail;
using flightlog::Priority;
using flightlog::Value;
using simdjson::dom::element;
using simdjson::dom::element_type;

// The length of the well-formed UTF-8 sequence at s[i] (Unicode 15, table 3-7), or 0.
std::size_t well_formed_length(std::string_view s, std::size_t i) {
  struct Row {
    unsigned char lo0, hi0, lo1, hi1;
    std::size_t len;
  };
  // First byte range, second byte range, length; later bytes are 80..BF.
  static constexpr Row kTable[] = {
      {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3},
      {0xE1, 0xEC, 0x80, 0xBF, 3}, {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
      {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
  };
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  for (const Row& r : kTable) {
    if (at(0) < r.lo0 || at(0) > r.hi0) continue;
    if (r.len == 1) return 1;
    if (i + r.len > s.size() || at(1) < r.lo1 || at(1) > r.hi1) return 0;
    for (std::size_t k = 2; k < r.len; ++k) {
      if (at(k) < 0x80 || at(k) > 0xBF) return 0;
    }
    return r.len;
  }
  return 0;
}

// What a string must read back as.
std::string expected_text(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = well_formed_length(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

std::string_view text_of(element e, const char* what) {
  std::string_view s;
  FUZZ_CHECK(e.get_string().get(s) == simdjson::SUCCESS, std::string(what) + " is not a string");
  return s;
}

std::uint64_t unsigned_of(element e, const char* what) {
  std::uint64_t v = 0;
  FUZZ_CHECK((e.type() == element_type::INT64 || e.type() == element_type::UINT64) &&
                 e.get_uint64().get(v) == simdjson::SUCCESS,
             std::string(what) + " is not an unsigned integer");
  return v;
}

void check_text(element e, std::string_view logged, const char* what) {
  FUZZ_CHECK(text_of(e, what) == expected_text(logged),
             std::string(what) + " does not read back as logged");
}

void check_value(element e, const Value& v) {
  switch (v.type()) {
    case Value::Type::Double: {
      const double d = v.as_double();
      if (std::isnan(d)) {
        FUZZ_CHECK(text_of(e, "NaN") == "NaN", "NaN is not \"NaN\"");
      } else if (std::isinf(d)) {
        FUZZ_CHECK(text_of(e, "Inf") == (d > 0 ? "Infinity" : "-Infinity"), "an infinity");
      } else {
        double got = 0;
        FUZZ_CHECK(e.type() == element_type::DOUBLE && e.get_double().get(got) == simdjson::SUCCESS,
                   "a finite double does not read back as a JSON double");
        FUZZ_CHECK(got == d && std::signbit(got) == std::signbit(d),
                   "a double reads back as another value");
      }
      return;
    }
    case Value::Type::Int: {
      std::int64_t got = 0;
      FUZZ_CHECK(e.type() == element_type::INT64 && e.get_int64().get(got) == simdjson::SUCCESS &&
                     got == v.as_int(),
                 "an integer does not read back exactly");
      return;
    }
    case Value::Type::Bool: {
      bool got = false;
      FUZZ_CHECK(e.get_bool().get(got) == simdjson::SUCCESS && got == v.as_bool(), "a bool");
      return;
    }
    case Value::Type::String:
      check_text(e, v.as_string(), "a string value");
      return;
  }
}

// An object's members in document order.
std::vector<std::pair<std::string_view, element>> members(element e, const char* what) {
  simdjson::dom::object obj;
  FUZZ_CHECK(e.get_object().get(obj) == simdjson::SUCCESS, std::string(what) + ": not an object");
  std::vector<std::pair<std::string_view, element>> out;
  for (auto field : obj) out.emplace_back(field.key, field.value);
  return out;
}

// The keys the renderer must give `fields`, in order: each name as decoded JSON text,
// and a name met again (or one that decodes like an earlier key) with "#n" appended for
// the smallest n from 2 that no earlier key has.
std::vector<std::string> expected_keys(const std::vector<fd::DecodedField>& fields) {
  std::set<std::string> taken;
  std::vector<std::string> keys;
  for (const auto& f : fields) {
    std::string key = expected_text(f.name);
    for (int n = 2; taken.count(key) != 0; ++n)
      key = expected_text(f.name) + "#" + std::to_string(n);
    taken.insert(key);
    keys.push_back(std::move(key));
  }
  return keys;
}

void check_fields(element e, const std::vector<fd::DecodedField>& fields) {
  const auto got = members(e, "fields");
  FUZZ_CHECK(got.size() == fields.size(), "a field is missing or extra");
  const std::vector<std::string> keys = expected_keys(fields);
  for (std::size_t i = 0; i < got.size(); ++i) {
    FUZZ_CHECK(got[i].first == keys[i], "a field name");
    check_value(got[i].second, fields[i].value);
  }
}

// "2026-11-27T23:28:25.123456789Z" names unix_ns.
void check_timestamp(std::string_view ts, std::int64_t unix_ns) {
  FUZZ_CHECK(ts.size() == 30 && ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' &&
                 ts[16] == ':' && ts[19] == '.' && ts[29] == 'Z',
             "ts is not RFC 3339 with nine fractional digits: " + std::string(ts));
  const auto num = [&](std::size_t at, std::size_t n) {
    std::int64_t v = 0;
    for (std::size_t k = at; k < at + n; ++k) {
      FUZZ_CHECK(ts[k] >= '0' && ts[k] <= '9', "ts has a non-digit: " + std::string(ts));
      v = v * 10 + (ts[k] - '0');
    }
    return v;
  };
  using namespace std::chrono;
  const year_month_day ymd{year{static_cast<int>(num(0, 4))},
                           month{static_cast<unsigned>(num(5, 2))},
                           day{static_cast<unsigned>(num(8, 2))}};
  FUZZ_CHECK(ymd.ok() && num(11, 2) < 24 && num(14, 2) < 60 && num(17, 2) < 60,
             "ts is not a valid date and time: " + std::string(ts));
  const std::int64_t secs = sys_days{ymd}.time_since_epoch().count() * 86400 + num(11, 2) * 3600 +
                            num(14, 2) * 60 + num(17, 2);
  // Compared as seconds and nanoseconds apart: secs * 10^9 may not fit in 64 bits.
  const std::int64_t frac = num(20, 9);
  const bool before_epoch_fraction = unix_ns % 1'000'000'000 < 0;
  const std::int64_t want_secs = unix_ns / 1'000'000'000 - (before_epoch_fraction ? 1 : 0);
  const std::int64_t want_frac =
      unix_ns % 1'000'000'000 + (before_epoch_fraction ? 1'000'000'000 : 0);
  FUZZ_CHECK(secs == want_secs && frac == want_frac, "ts names another time: " + std::string(ts));
}

struct Input {
  std::string_view journal_id;
  std::uint64_t seq = 0;
  fd::DecodedRecord rec;
  fd::RecordState state = fd::RecordState::Queued;
};

enum class Form { Dump, Upload, ClickHouse };

// The identity members all forms open with: id, seq, priority, ts, ts_ns.
void check_identity(const std::vector<std::pair<std::string_view, element>>& m, const Input& in) {
  FUZZ_CHECK(m.size() >= 5 && m[0].first == "id" && m[1].first == "seq" &&
                 m[2].first == "priority" && m[3].first == "ts" && m[4].first == "ts_ns",
             "the identity keys are not id, seq, priority, ts, ts_ns");
  check_text(m[0].second, fd::record_id(in.journal_id, in.seq), "id");
  FUZZ_CHECK(unsigned_of(m[1].second, "seq") == in.seq, "seq");
  FUZZ_CHECK(text_of(m[2].second, "priority") == flightlog::to_string(in.rec.priority), "priority");
  check_timestamp(text_of(m[3].second, "ts"), in.rec.ts_ns);
  std::int64_t ts_ns = 0;
  FUZZ_CHECK(m[4].second.get_int64().get(ts_ns) == simdjson::SUCCESS && ts_ns == in.rec.ts_ns,
             "ts_ns");
}

void check_line(const std::string& line, const Input& in, Form form) {
  for (char c : line) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20, "a raw control byte in: " + line);
  }
  simdjson::dom::parser parser;
  simdjson::padded_string text(line);
  element doc;
  const auto err = parser.parse(text).get(doc);
  FUZZ_CHECK(err == simdjson::SUCCESS,
             std::string("not JSON (") + simdjson::error_message(err) + "): " + line);
  const auto m = members(doc, "a record");
  check_identity(m, in);
  const fd::DecodedRecord& r = in.rec;
  const bool event = r.kind == fd::kKindEvent;
  std::vector<std::string_view> keys{"type"};
  if (event || form == Form::ClickHouse) keys.push_back("name");
  keys.push_back("inputs");
  keys.push_back("output");
  if (form == Form::Dump) {
    keys.push_back("attempts");
    keys.push_back("state");
    if (r.last_status != 0) keys.push_back("last_status");
    if (!r.reason.empty()) keys.push_back("reason");
  }
  FUZZ_CHECK(m.size() == 5 + keys.size(), "keys missing or extra: " + line);
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const auto& [key, value] = m[5 + k];
    FUZZ_CHECK(key == keys[k], "key " + std::string(keys[k]) + " expected: " + line);
    if (key == "type") {
      FUZZ_CHECK(text_of(value, "type") == (event ? "event" : "prediction"), "type");
    } else if (key == "name") {
      check_text(value, r.name, "name");
    } else if (key == "inputs" || key == "output") {
      const auto& fields = key == "inputs" ? r.inputs : r.outputs;
      if (form != Form::ClickHouse) {
        check_fields(value, fields);
      } else {
        // A JSON text in a string: parse it in turn.
        simdjson::dom::parser inner;
        simdjson::padded_string inner_text(text_of(value, "inputs/output text"));
        element fields_doc;
        FUZZ_CHECK(inner.parse(inner_text).get(fields_doc) == simdjson::SUCCESS,
                   "the inputs/output text is not JSON: " + line);
        check_fields(fields_doc, fields);
      }
    } else if (key == "attempts") {
      FUZZ_CHECK(unsigned_of(value, "attempts") == r.attempts, "attempts");
    } else if (key == "state") {
      FUZZ_CHECK(
          text_of(value, "state") == (in.state == fd::RecordState::Failed ? "failed" : "queued"),
          "state");
    } else if (key == "last_status") {
      FUZZ_CHECK(unsigned_of(value, "last_status") == r.last_status, "last_status");
    } else {
      check_text(value, r.reason, "reason");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  flightlog::fuzz::Generator gen(fdp);
  Input in;
  in.journal_id = gen.text(64);
  in.seq = fdp.ConsumeIntegral<std::uint64_t>();
  fd::DecodedRecord& r = in.rec;
  r.kind = fdp.ConsumeBool() ? fd::kKindEvent : fd::kKindPrediction;
  r.priority = static_cast<Priority>(fdp.ConsumeIntegralInRange<int>(0, 3));
  r.ts_ns = fdp.ConsumeIntegral<std::int64_t>();
  r.attempts = fdp.ConsumeIntegral<std::uint16_t>();
  r.last_status = fdp.ConsumeIntegral<std::uint16_t>();
  in.state = fdp.ConsumeBool() ? fd::RecordState::Failed : fd::RecordState::Queued;
  if (r.kind == fd::kKindEvent) r.name = gen.text(255);
  r.reason = gen.text(255);
  const auto n_in = fdp.ConsumeIntegralInRange<std::size_t>(0, 64);
  const auto n_out = fdp.ConsumeIntegralInRange<std::size_t>(0, 64);
  for (std::size_t i = 0; i < n_in + n_out && fdp.remaining_bytes() > 0; ++i) {
    auto& side = i < n_in ? r.inputs : r.outputs;
    const auto name = gen.text(255);
    side.push_back({name, gen.value(1024)});
  }

  std::string line;
  fd::append_record_json(line, in.journal_id, in.seq, r, in.state);
  check_line(line, in, Form::Dump);
  line.clear();
  fd::append_record_json(line, in.journal_id, in.seq, r, fd::RecordState::Queued,
                         fd::JsonRecordOptions{.include_delivery_state = false});
  check_line(line, in, Form::Upload);
  line.clear();
  fd::append_clickhouse_row(line, in.journal_id, in.seq, r);
  check_line(line, in, Form::ClickHouse);
  return 0;
}
