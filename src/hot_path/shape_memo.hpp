// ShapeMemo: lets the named form of log_prediction() run at the speed of the schema form.
//
// A hot loop that logs named fields passes the same names, in the same order, call after
// call: its records have a fixed *shape*. Copying those names into every record would
// make a W1 prediction (five named doubles) take two 64-byte slots instead of one and
// nearly double the cost of the call. So each producer (one per logging thread) remembers
// up to kShapes shapes it has logged, each registered once in the client's SchemaTable as
// an implicit schema. A call whose names match a remembered shape is logged in the schema
// form: values only. The journal record is the same either way, because the writer
// expands a schema-form record with the schema's names.
//
// Matching must be exact and cheap. The memo keeps no pointer to the caller's names (the
// caller may reuse its buffers); it keeps their bytes, in a form that compares fast: a
// name of at most 16 bytes is captured exactly by its length and two 8-byte words, its
// first 8 and its last 8 bytes (the two overlap when the name is shorter than 16; below 8
// bytes, smaller overlapping loads do the same, so nothing past the name is ever read).
// Checking a call against a shape is a length compare and two word compares per name,
// with no call to memcmp. A shape with a longer name or more than kMaxFields fields is
// not remembered: such calls copy their names into the record, as the named form says.
//
// Bounds: a producer learns at most kShapes shapes and never forgets one, so a thread
// takes the schema table's lock (and allocates) at most kShapes times per client; once
// the memo is full, a call of a new shape takes the named path, with no lock and no
// allocation. Learning also stops when the client holds SchemaTable::kMaxImplicit
// implicit schemas. The memo belongs to its producer's thread alone: no synchronisation.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "flightlog/value.hpp"

namespace flightlog::detail {

class ShapeMemo {
 public:
  static constexpr std::size_t kShapes = 8;
  static constexpr std::size_t kMaxFields = 8;
  static constexpr std::size_t kMaxNameBytes = 16;

  struct Hit {
    std::uint16_t schema_id = 0;  // 0: not remembered
    // Bytes the names take in the named form (2 + length each): log_named judges
    // max_record_bytes by the named form, whichever form the record travels in.
    std::uint16_t names_bytes = 0;
  };

  // The remembered shape these fields have, if any. Tries the shape that matched last
  // first: a loop logs one shape over and over. Always inlined: it is the named form's
  // hot path, and with two callers (the braced-list and span forms of log_prediction)
  // the compiler would otherwise call it out of line.
  [[gnu::always_inline]] Hit find(const Field* in, std::size_t n_in, const Field* out,
                                  std::size_t n_out) noexcept {
    if (count_ == 0) return {};
    if (matches(shapes_[last_hit_], in, n_in, out, n_out)) return hit(shapes_[last_hit_]);
    for (std::uint8_t i = 0; i < count_; ++i) {
      if (i != last_hit_ && matches(shapes_[i], in, n_in, out, n_out)) {
        last_hit_ = i;
        return hit(shapes_[i]);
      }
    }
    return {};
  }

  // True while the memo may still learn a shape.
  bool learning() const noexcept { return count_ < kShapes && !stopped_; }
  void stop_learning() noexcept { stopped_ = true; }

  // Whether a shape of these fields can be remembered (field count and name lengths).
  static bool eligible(const Field* in, std::size_t n_in, const Field* out,
                       std::size_t n_out) noexcept {
    if (n_in + n_out > kMaxFields) return false;
    for (std::size_t i = 0; i < n_in; ++i) {
      if (in[i].name.size() > kMaxNameBytes) return false;
    }
    for (std::size_t i = 0; i < n_out; ++i) {
      if (out[i].name.size() > kMaxNameBytes) return false;
    }
    return true;
  }

  // Remembers the shape of these fields as `schema_id`. Requires learning() and
  // eligible().
  Hit remember(std::uint16_t schema_id, const Field* in, std::size_t n_in, const Field* out,
               std::size_t n_out) noexcept {
    if (count_ >= kShapes) return {};  // defensive: callers check learning()
    Shape& s = shapes_[count_];
    s.schema_id = schema_id;
    s.n_in = static_cast<std::uint8_t>(n_in);
    s.n_out = static_cast<std::uint8_t>(n_out);
    s.names_bytes = 0;
    for (std::size_t i = 0; i < n_in + n_out; ++i) {
      const std::string_view name = i < n_in ? in[i].name : out[i - n_in].name;
      s.len[i] = static_cast<std::uint8_t>(name.size());
      s.key[i] = key_of(name);
      s.names_bytes = static_cast<std::uint16_t>(s.names_bytes + 2 + name.size());
    }
    last_hit_ = count_;
    ++count_;
    return hit(s);
  }

 private:
  struct Key {
    std::uint64_t head = 0;
    std::uint64_t tail = 0;
    bool operator==(const Key&) const = default;
  };
  struct Shape {
    std::uint16_t schema_id = 0;
    std::uint8_t n_in = 0;
    std::uint8_t n_out = 0;
    std::uint16_t names_bytes = 0;
    std::array<std::uint8_t, kMaxFields> len{};
    std::array<Key, kMaxFields> key{};
  };

  static Hit hit(const Shape& s) noexcept { return {s.schema_id, s.names_bytes}; }

  // Exact for names of at most kMaxNameBytes, given that the lengths are equal.
  static Key key_of(std::string_view name) noexcept {
    const char* p = name.data();
    const std::size_t n = name.size();
    Key k;
    if (n >= 8) {
      std::memcpy(&k.head, p, 8);
      std::memcpy(&k.tail, p + n - 8, 8);
    } else if (n >= 4) {
      std::uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      k.head = a;
      k.tail = b;
    } else if (n > 0) {  // 1-3 bytes: first, middle and last cover them all
      k.head = std::uint64_t{static_cast<unsigned char>(p[0])} |
               std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 |
               std::uint64_t{static_cast<unsigned char>(p[n - 1])} << 16;
    }
    return k;
  }

  static bool same(const Shape& s, std::size_t i, std::string_view name) noexcept {
    return name.size() == s.len[i] && key_of(name) == s.key[i];
  }

  static bool matches(const Shape& s, const Field* in, std::size_t n_in, const Field* out,
                      std::size_t n_out) noexcept {
    if (s.n_in != n_in || s.n_out != n_out) return false;
    for (std::size_t i = 0; i < n_in; ++i) {
      if (!same(s, i, in[i].name)) return false;
    }
    for (std::size_t i = 0; i < n_out; ++i) {
      if (!same(s, n_in + i, out[i].name)) return false;
    }
    return true;
  }

  std::array<Shape, kShapes> shapes_{};
  std::uint8_t count_ = 0;
  std::uint8_t last_hit_ = 0;
  bool stopped_ = false;
};

}  // namespace flightlog::detail
