// The in-memory form of a record, as the hot path writes it and the writer reads it.
//
// A record is a byte string cut into 64-byte slots (one cache line each). The first
// slot starts with a SlotHeader that says how many slots follow; a record of n slots
// is pushed with one try_enqueue_bulk() from one producer token, which moodycamel
// publishes atomically (one tail-index store after all n are written), so the writer
// always finds a record's slots together and in order in that producer's sub-queue.
//
// Layout after the 16-byte header:
//   [event name bytes]                     events only (header.name_len bytes)
//   schema form:  tag[n], zero padding to a multiple of 8, then value[n]
//                 (names live in the schema table)
//   named form:   n x (tag, name_len, name bytes, value)
// A value is 8 bytes (double, int64), 1 byte (bool) or a u32 length plus bytes
// (string). Everything is native-endian: it never leaves the process.
//
// The W1 workload (5 doubles, schema form) is 16 + 8 + 40 = 64 bytes: one slot, the
// same memory traffic as the raw 64-byte enqueue it is benchmarked against, with every
// word 8-byte aligned so the hot path builds it from whole registers (see Slot).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace flightlog::detail {

inline constexpr std::size_t kSlotBytes = 64;

// Asks for the cache line at `address` in a writable state, ahead of a store to it. A
// hint: it never faults, whatever the address. x86-64: PREFETCHW, which CPUs that predate
// it execute as a NOP (the compiler emits it for __builtin_prefetch only with -mprfchw).
inline void prefetch_for_write(std::uintptr_t address) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*reinterpret_cast<const char*>(address)));
#else
  __builtin_prefetch(reinterpret_cast<const void*>(address), 1, 3);
#endif
}

// How far ahead, in slots, a slot copy prefetches its destination (see Slot).
inline constexpr std::size_t kPrefetchAhead = 2;

// Copied in 16-byte pieces on purpose. The hot path builds a slot on its stack and
// moodycamel copies it into the queue. A CPU forwards a load from a pending store only
// when the load lies within that one store; the compiler's default copy of 64 bytes uses
// 16-byte loads, which would each straddle several smaller stores of the build and wait
// until those reach the cache (a store-forwarding stall, several ns per call). The fast
// path therefore writes its slot with 16-byte stores (store16) and the copy reads it
// back with loads of the same size and place.
//
// A copy also prefetches, for writing, the slot kPrefetchAhead places further on. In the
// queue that is where this producer's next records go: their lines were last read by the
// writer on the other core, and a store to such a line first waits for the other core to
// give it up (a cross-core round trip, longer than one call here). Asked for ahead, that
// wait overlaps the calls in between, so a burst of calls no longer pays it one after
// another. Past the end of a block the hint lands on the block's bookkeeping or on
// nothing; it is only a hint. Measured (3 alternating runs against the build before,
// burst method, 1 thread): schema form p50 1.26-1.48x the raw enqueue before, 1.11-1.18x
// after.
struct alignas(kSlotBytes) Slot {
  std::byte bytes[kSlotBytes];

  Slot() noexcept = default;
  Slot(const Slot& other) noexcept { copy_from(other); }
  Slot& operator=(const Slot& other) noexcept {
    copy_from(other);
    return *this;
  }

  // Stores two 8-byte words (lo first in memory) at byte offset 16 * i.
  void store16(std::size_t i, std::uint64_t lo, std::uint64_t hi) noexcept {
#if defined(__SSE2__)
    _mm_store_si128(reinterpret_cast<__m128i*>(bytes + 16 * i),
                    _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
#else
    std::memcpy(bytes + 16 * i, &lo, 8);
    std::memcpy(bytes + 16 * i + 8, &hi, 8);
#endif
  }

 private:
  void copy_from(const Slot& other) noexcept {
    prefetch_for_write(reinterpret_cast<std::uintptr_t>(this) + kPrefetchAhead * kSlotBytes);
#if defined(__SSE2__)
    for (std::size_t i = 0; i < kSlotBytes / 16; ++i) {
      _mm_store_si128(reinterpret_cast<__m128i*>(bytes) + i,
                      _mm_load_si128(reinterpret_cast<const __m128i*>(other.bytes) + i));
    }
#else
    std::memcpy(bytes, other.bytes, kSlotBytes);
#endif
  }
};
static_assert(sizeof(Slot) == kSlotBytes);

enum class RecordKind : std::uint8_t { Prediction = 1, Event = 2 };

// The first bytes of a record's first slot: two 8-byte words (see header_word1).
struct SlotHeader {
  std::uint64_t raw_time;   // hot-path timestamp (TSC ticks or ns; see clock.hpp)
  std::uint16_t schema_id;  // 0 = named form (names inline), else Schema id
  std::uint16_t n_slots;    // slots in this record, including this one
  RecordKind kind;
  std::uint8_t n_inputs;  // fields of an event count as inputs
  std::uint8_t n_outputs;
  std::uint8_t name_len;  // event name length; 0 for predictions
};
inline constexpr std::size_t kSlotHeaderBytes = 16;

// The header's second word: schema_id, n_slots, kind, n_inputs, n_outputs, name_len
// from the lowest byte up (on a little-endian machine, the byte order in memory).
constexpr std::uint64_t header_word1(const SlotHeader& h) noexcept {
  return std::uint64_t{h.schema_id} | std::uint64_t{h.n_slots} << 16 |
         std::uint64_t{static_cast<std::uint8_t>(h.kind)} << 32 | std::uint64_t{h.n_inputs} << 40 |
         std::uint64_t{h.n_outputs} << 48 | std::uint64_t{h.name_len} << 56;
}

inline void write_slot_header(std::byte* dst, const SlotHeader& h) noexcept {
  const std::uint64_t w1 = header_word1(h);
  std::memcpy(dst + 0, &h.raw_time, 8);
  std::memcpy(dst + 8, &w1, 8);
}

inline SlotHeader read_slot_header(const std::byte* src) noexcept {
  SlotHeader h;
  std::uint64_t w1;
  std::memcpy(&h.raw_time, src + 0, 8);
  std::memcpy(&w1, src + 8, 8);
  h.schema_id = static_cast<std::uint16_t>(w1);
  h.n_slots = static_cast<std::uint16_t>(w1 >> 16);
  h.kind = static_cast<RecordKind>(static_cast<std::uint8_t>(w1 >> 32));
  h.n_inputs = static_cast<std::uint8_t>(w1 >> 40);
  h.n_outputs = static_cast<std::uint8_t>(w1 >> 48);
  h.name_len = static_cast<std::uint8_t>(w1 >> 56);
  return h;
}

// Bytes the schema form's tags take, padding included: values start 8-byte aligned.
constexpr std::size_t schema_tag_bytes(std::size_t n_values) noexcept {
  return (n_values + 7) & ~std::size_t{7};
}

constexpr std::size_t slots_for(std::size_t bytes) noexcept {
  return (bytes + kSlotBytes - 1) / kSlotBytes;
}

}  // namespace flightlog::detail
