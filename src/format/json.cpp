#include "format/json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>
#include <functional>
#include <span>

namespace flightlog::detail {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0Fu;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;  // continuation byte, overlong lead (C0, C1) or F5..FF
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;  // overlong, surrogate
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

}  // namespace

namespace {
// True for bytes that need escaping or UTF-8 validation.
inline bool needs_care(unsigned char c) noexcept {
  return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}
}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    // Fast path: a run of plain ASCII goes in with one append.
    std::size_t run = i;
    while (run < s.size() && !needs_care(static_cast<unsigned char>(s[run]))) ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      if (i == s.size()) break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const std::size_t len = utf8_sequence_length(s, i);
      if (len == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
        ++i;
      } else {
        out.append(s.data() + i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
    ++i;
  }
  out.push_back('"');
}

void append_json_value(std::string& out, const Value& v) {
  char buf[32];
  switch (v.type()) {
    case Value::Type::Double: {
      const double d = v.as_double();
      if (std::isnan(d)) {
        out += "\"NaN\"";
      } else if (std::isinf(d)) {
        out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
      } else {
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
        out.append(buf, end);
        // Keep it a double for readers: "3" would parse as an integer (and -0 as 0, and
        // whole numbers beyond 64 bits not at all); "3.0" stays a double.
        if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e' || c == 'n'; }) ==
            end) {
          out += ".0";
        }
      }
      return;
    }
    case Value::Type::Int: {
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, end);
      return;
    }
    case Value::Type::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Type::String:
      append_json_string(out, v.as_string());
      return;
  }
  out += "null";
}

namespace {
// Civil date from days since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm).
void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t yy = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int>(yy + (m <= 2));
}
inline void put_digits(char* p, std::uint64_t v, int n) noexcept {
  for (int k = n - 1; k >= 0; --k) {
    p[k] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}
}  // namespace

void append_rfc3339(std::string& out, std::int64_t unix_ns) {
  std::int64_t secs = unix_ns / 1'000'000'000;
  std::int64_t frac = unix_ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    --days;
  }
  int y;
  unsigned mo, d;
  civil_from_days(days, y, mo, d);
  if (y < 0 || y > 9999) {
    // Outside four-digit years (only a damaged or hand-made timestamp gets here): the
    // slow, general formatting, which prints the year as it is.
    const std::time_t t = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char slow[80];
    const int n =
        std::snprintf(slow, sizeof slow, "%04lld-%02d-%02dT%02d:%02d:%02d.%09lldZ",
                      static_cast<long long>(tm.tm_year) + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
    out.append(slow, static_cast<std::size_t>(n > 0 ? n : 0));
    return;
  }
  char buf[30];
  put_digits(buf, static_cast<std::uint64_t>(y), 4);
  buf[4] = '-';
  put_digits(buf + 5, mo, 2);
  buf[7] = '-';
  put_digits(buf + 8, d, 2);
  buf[10] = 'T';
  put_digits(buf + 11, static_cast<std::uint64_t>(sod / 3600), 2);
  buf[13] = ':';
  put_digits(buf + 14, static_cast<std::uint64_t>(sod / 60 % 60), 2);
  buf[16] = ':';
  put_digits(buf + 17, static_cast<std::uint64_t>(sod % 60), 2);
  buf[19] = '.';
  put_digits(buf + 20, static_cast<std::uint64_t>(frac), 9);
  buf[29] = 'Z';
  out.append(buf, 30);
}

std::string record_id(std::string_view journal_id, std::uint64_t seq) {
  std::string id(journal_id);
  id.push_back('-');
  id += std::to_string(seq);
  return id;
}

namespace {

// Where a key was written in the output, quotes included.
struct KeySpan {
  std::size_t at;
  std::size_t len;
};

// Whether the key at out[at, out.size()) equals one of `keys`.
bool key_taken(const std::string& out, std::size_t at, std::span<const KeySpan> keys) {
  const std::string_view key(out.data() + at, out.size() - at);
  for (const KeySpan& k : keys) {
    if (k.len == key.size() && std::string_view(out.data() + k.at, k.len) == key) return true;
  }
  return false;
}

// The keys of one JSON object being written, found by their text in the output (their
// offsets stay valid as it grows): open addressing over a power-of-two table of indexes.
class KeyIndex {
 public:
  static constexpr std::size_t kInserted = static_cast<std::size_t>(-1);

  // Empties the index for an object of at most `n` keys written into `out`.
  void reset(const std::string& out, std::size_t n) {
    out_ = &out;
    keys_.clear();
    std::size_t size = 64;
    while (size < 2 * n) size *= 2;
    slots_.assign(size, 0);
  }

  // Adds the key at out[at, end): returns kInserted, or, if a key with that text is
  // there already, its index (and adds nothing).
  std::size_t insert(std::size_t at) {
    const std::string_view key(out_->data() + at, out_->size() - at);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t h = std::hash<std::string_view>{}(key)&mask;; h = (h + 1) & mask) {
      const std::uint32_t slot = slots_[h];
      if (slot == 0) {
        keys_.push_back({at, key.size(), 2});
        slots_[h] = static_cast<std::uint32_t>(keys_.size());
        return kInserted;
      }
      const Key& k = keys_[slot - 1];
      if (k.len == key.size() && std::string_view(out_->data() + k.at, k.len) == key) {
        return slot - 1;
      }
    }
  }

  // The number to append next to a repeat of key `index` ("#2" first).
  std::size_t& next_number(std::size_t index) { return keys_[index].next_number; }

 private:
  struct Key {
    std::size_t at;
    std::size_t len;
    std::size_t next_number;
  };
  const std::string* out_ = nullptr;
  std::vector<Key> keys_;
  std::vector<std::uint32_t> slots_;  // 0: empty; else 1 + an index into keys_
};

// A JSON object of the fields. Keys are unique: the named form and events may repeat a
// name, and two names may escape alike (invalid UTF-8 becomes U+FFFD), but a reader that
// keeps one value per key would lose the others. A key met again gets "#2", "#3"...
// appended (the first that is free), in the order the fields were logged.
void append_fields(std::string& out, const std::vector<DecodedField>& fields) {
  out.push_back('{');
  constexpr std::size_t kFew = 8;
  if (fields.size() <= kFew) {
    // The usual record, and every record an upload sends is rendered: the keys written
    // so far are compared one by one, with no allocation.
    std::array<KeySpan, kFew> keys;
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out.push_back(',');
      const std::size_t at = out.size();
      append_json_string(out, fields[i].name);
      const std::span<const KeySpan> before(keys.data(), i);
      for (std::size_t n = 2; key_taken(out, at, before); ++n) {
        out.resize(n == 2 ? out.size() - 1 : out.rfind('#'));  // drop '"' or the last "#n\""
        out += '#';
        out += std::to_string(n);
        out += '"';
      }
      keys[i] = {at, out.size() - at};
      out.push_back(':');
      append_json_value(out, fields[i].value);
    }
  } else {
    // Many fields: the keys go in a hash table, and each key remembers the next number
    // to try when a later field repeats it, so even 255 fields of one name take linear
    // time. The table is the thread's: no allocation once it has grown.
    thread_local KeyIndex index;
    index.reset(out, fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out.push_back(',');
      const std::size_t at = out.size();
      append_json_string(out, fields[i].name);
      const std::size_t holder = index.insert(at);
      if (holder != KeyIndex::kInserted) {
        const std::size_t stem_end = out.size() - 1;  // before the closing '"'
        do {
          const std::size_t n = index.next_number(holder)++;
          out.resize(stem_end);
          out += '#';
          out += std::to_string(n);
          out += '"';
        } while (index.insert(at) != KeyIndex::kInserted);
      }
      out.push_back(':');
      append_json_value(out, fields[i].value);
    }
  }
  out.push_back('}');
}

// The fields both renderings open with: {"id", "seq", "priority", "ts", "ts_ns" (no
// closing brace).
// Renders every record an upload sends, so it builds no temporary strings.
void append_identity(std::string& out, std::string_view journal_id, std::uint64_t seq,
                     const DecodedRecord& rec) {
  char seq_text[24];
  const char* seq_end = std::to_chars(seq_text, seq_text + sizeof seq_text, seq).ptr;
  const std::string_view seq_view(seq_text, static_cast<std::size_t>(seq_end - seq_text));
  out += "{\"id\":";
  // The id is "<journal_id>-<seq>" (record_id()); the journal id is escaped like any
  // string, though a journal writes only hex digits there.
  append_json_string(out, journal_id);
  out.back() = '-';  // the closing quote becomes the separator
  out += seq_view;
  out += "\",\"seq\":";
  out += seq_view;
  out += ",\"priority\":\"";
  out += to_string(rec.priority);
  out += "\",\"ts\":\"";
  append_rfc3339(out, rec.ts_ns);
  out += "\",\"ts_ns\":";
  char ts_text[24];
  out.append(ts_text, std::to_chars(ts_text, ts_text + sizeof ts_text, rec.ts_ns).ptr);
}

}  // namespace

void append_record_json(std::string& out, std::string_view journal_id, std::uint64_t seq,
                        const DecodedRecord& rec, RecordState state,
                        const JsonRecordOptions& opts) {
  append_identity(out, journal_id, seq, rec);
  if (rec.kind == kKindEvent) {
    out += ",\"type\":\"event\",\"name\":";
    append_json_string(out, rec.name);
  } else {
    out += ",\"type\":\"prediction\"";
  }
  out += ",\"inputs\":";
  append_fields(out, rec.inputs);
  out += ",\"output\":";
  append_fields(out, rec.outputs);
  if (opts.include_delivery_state) {
    out += ",\"attempts\":";
    out += std::to_string(rec.attempts);
    out += state == RecordState::Failed ? ",\"state\":\"failed\"" : ",\"state\":\"queued\"";
    if (rec.last_status != 0) {
      out += ",\"last_status\":";
      out += std::to_string(rec.last_status);
    }
    if (!rec.reason.empty()) {
      out += ",\"reason\":";
      append_json_string(out, rec.reason);
    }
  }
  out.push_back('}');
}

}  // namespace flightlog::detail

namespace flightlog::detail {

void append_clickhouse_row(std::string& out, std::string_view journal_id, std::uint64_t seq,
                           const DecodedRecord& rec) {
  // Scratch for the fields' JSON, kept per thread: one record at a time, no allocation.
  thread_local std::string fields;
  fields.clear();
  append_identity(out, journal_id, seq, rec);
  out += rec.kind == kKindEvent ? ",\"type\":\"event\"" : ",\"type\":\"prediction\"";
  out += ",\"name\":";
  append_json_string(out, rec.name);
  out += ",\"inputs\":";
  append_fields(fields, rec.inputs);
  append_json_string(out, fields);
  fields.clear();
  out += ",\"output\":";
  append_fields(fields, rec.outputs);
  append_json_string(out, fields);
  out.push_back('}');
}

}  // namespace flightlog::detail
