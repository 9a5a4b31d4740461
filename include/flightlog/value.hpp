// flightlog/value.hpp: what a caller logs: priorities, values and named fields.
//
// These types are built on the caller's stack for every call, so they are small,
// trivially copyable and never allocate. A Value of a string only *refers* to the
// caller's characters; log_prediction() copies them before it returns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace flightlog {

// Sync order: CRITICAL records are committed and uploaded before HIGH, and so on.
enum class Priority : std::uint8_t { Critical = 0, High = 1, Normal = 2, Low = 3 };

inline constexpr std::size_t kPriorityCount = 4;

// "CRITICAL", "HIGH", "NORMAL" or "LOW".
std::string_view to_string(Priority p) noexcept;

// Parses "CRITICAL", "HIGH", "NORMAL", "LOW" (any letter case). Returns nullopt for
// anything else, so a configuration typo is an error, not a silent NORMAL.
std::optional<Priority> parse_priority(std::string_view text) noexcept;

// One logged value: a double, a 64-bit integer, a bool or a string.
//
// Integers of any width convert to Int (unsigned values above INT64_MAX wrap; log them
// as double if that matters). A `const char*` converts to String, never to bool.
class Value {
 public:
  enum class Type : std::uint8_t { Double = 1, Int = 2, Bool = 3, String = 4 };

  constexpr Value(double v) noexcept : type_(Type::Double), d_(v) {}
  constexpr Value(float v) noexcept : type_(Type::Double), d_(v) {}
  constexpr Value(bool v) noexcept : type_(Type::Bool), b_(v) {}
  template <typename I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool> &&
                                             !std::is_same_v<I, char>,
                                         int> = 0>
  constexpr Value(I v) noexcept : type_(Type::Int), i_(static_cast<std::int64_t>(v)) {}
  constexpr Value(std::string_view v) noexcept : type_(Type::String), s_{v.data(), v.size()} {}
  constexpr Value(const char* v) noexcept : Value(std::string_view(v)) {}
  Value(const std::string& v) noexcept : Value(std::string_view(v)) {}

  constexpr Type type() const noexcept { return type_; }
  constexpr double as_double() const noexcept { return d_; }
  constexpr std::int64_t as_int() const noexcept { return i_; }
  constexpr bool as_bool() const noexcept { return b_; }
  constexpr std::string_view as_string() const noexcept { return {s_.data, s_.size}; }

  // For the hot path: the 8-byte payload of a Double or Int value (both live at the same
  // address of the union), as raw bits.
  std::uint64_t payload8() const noexcept {
    std::uint64_t bits;
    __builtin_memcpy(&bits, &d_, 8);
    return bits;
  }

 private:
  struct Chars {
    const char* data;
    std::size_t size;
  };
  Type type_;
  union {
    double d_;
    std::int64_t i_;
    bool b_;
    Chars s_;
  };
};

// A named value, for the named form of log_prediction() and for log_event().
// Names are at most 255 bytes each. The named form of log_prediction() remembers the
// first 8 shapes (field names in order, at most 8 fields of at most 16-byte names) each
// thread logs and sends only their values, like a Schema; other shapes and events copy
// their names into every record. A Schema makes the cost explicit and needs no memo.
struct Field {
  std::string_view name;
  Value value;

  constexpr Field(std::string_view n, Value v) noexcept : name(n), value(v) {}
};

}  // namespace flightlog
