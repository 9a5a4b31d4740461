// The in-memory form of a record, as the hot path writes it and the writer reads it.
//
// A record is a byte string cut into 64-byte slots (one cache line each). The first
// slot starts with a SlotHeader that says how many slots follow; a record of n slots
// is pushed with one try_enqueue_bulk() from one producer token, which moodycamel
// publishes atomically (one tail-index store after all n are written), so the writer
// always finds a record's slots together and in order in that producer's sub-queue.
//
// Layout after the header:
//   [event name bytes]                     events only (header.name_len bytes)
//   schema form:  tag[n] then value[n]    names live in the schema table
//   named form:   n x (tag, name_len, name bytes, value)
// A value is 8 bytes (double, int64), 1 byte (bool) or a u32 length plus bytes
// (string). Everything is native-endian and unaligned: it never leaves the process.
//
// The W1 workload (5 doubles, schema form) is 18 + 5 + 40 = 63 bytes: one slot, the
// same memory traffic as the raw 64-byte enqueue it is benchmarked against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace flightlog::detail {

inline constexpr std::size_t kSlotBytes = 64;

struct alignas(kSlotBytes) Slot {
  std::byte bytes[kSlotBytes];
};
static_assert(sizeof(Slot) == kSlotBytes);

enum class RecordKind : std::uint8_t { Prediction = 1, Event = 2 };

// The first bytes of a record's first slot. Packed by hand (memcpy) to stay 18 bytes.
struct SlotHeader {
  std::uint64_t raw_time;   // hot-path timestamp (TSC ticks or ns; see clock.hpp)
  std::uint32_t schema_id;  // 0 = named form (names inline), else Schema id
  std::uint16_t n_slots;    // slots in this record, including this one
  RecordKind kind;
  std::uint8_t n_inputs;  // fields of an event count as inputs
  std::uint8_t n_outputs;
  std::uint8_t name_len;  // event name length; 0 for predictions
};
inline constexpr std::size_t kSlotHeaderBytes = 18;

inline void write_slot_header(std::byte* dst, const SlotHeader& h) noexcept {
  std::memcpy(dst + 0, &h.raw_time, 8);
  std::memcpy(dst + 8, &h.schema_id, 4);
  std::memcpy(dst + 12, &h.n_slots, 2);
  dst[14] = static_cast<std::byte>(h.kind);
  dst[15] = static_cast<std::byte>(h.n_inputs);
  dst[16] = static_cast<std::byte>(h.n_outputs);
  dst[17] = static_cast<std::byte>(h.name_len);
}

inline SlotHeader read_slot_header(const std::byte* src) noexcept {
  SlotHeader h;
  std::memcpy(&h.raw_time, src + 0, 8);
  std::memcpy(&h.schema_id, src + 8, 4);
  std::memcpy(&h.n_slots, src + 12, 2);
  h.kind = static_cast<RecordKind>(src[14]);
  h.n_inputs = static_cast<std::uint8_t>(src[15]);
  h.n_outputs = static_cast<std::uint8_t>(src[16]);
  h.name_len = static_cast<std::uint8_t>(src[17]);
  return h;
}

constexpr std::size_t slots_for(std::size_t bytes) noexcept {
  return (bytes + kSlotBytes - 1) / kSlotBytes;
}

}  // namespace flightlog::detail
