// Reading a journal back in tests, and writing into one behind flightlog's back with
// raw LMDB (to plant failed, old or damaged records, or a foreign format version).
#pragma once

#include <gtest/gtest.h>
#include <lmdb.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "flightlog/value.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"

namespace flightlog::test {

// One field of a record, owning its name and string value.
struct OwnedField {
  std::string name;
  Value::Type type = Value::Type::Double;
  double d = 0;
  std::int64_t i = 0;
  bool b = false;
  std::string s;

  OwnedField() = default;
  OwnedField(std::string_view n, const Value& v) : name(n), type(v.type()) {
    switch (v.type()) {
      case Value::Type::Double:
        d = v.as_double();
        break;
      case Value::Type::Int:
        i = v.as_int();
        break;
      case Value::Type::Bool:
        b = v.as_bool();
        break;
      case Value::Type::String:
        s = std::string(v.as_string());
        break;
    }
  }

  // Doubles compare by bits, so NaN equals the same NaN and -0.0 differs from 0.0.
  friend bool operator==(const OwnedField& a, const OwnedField& b) {
    if (a.name != b.name || a.type != b.type) return false;
    switch (a.type) {
      case Value::Type::Double:
        return std::bit_cast<std::uint64_t>(a.d) == std::bit_cast<std::uint64_t>(b.d);
      case Value::Type::Int:
        return a.i == b.i;
      case Value::Type::Bool:
        return a.b == b.b;
      case Value::Type::String:
        return a.s == b.s;
    }
    return false;
  }
};

inline void PrintTo(const OwnedField& f, std::ostream* os) {
  *os << f.name << "=";
  switch (f.type) {
    case Value::Type::Double:
      *os << "double(" << f.d << ")";
      break;
    case Value::Type::Int:
      *os << "int(" << f.i << ")";
      break;
    case Value::Type::Bool:
      *os << "bool(" << f.b << ")";
      break;
    case Value::Type::String:
      *os << "string(" << f.s.size() << " bytes)";
      break;
  }
}

// A decoded record that owns its data, with where it was found.
struct OwnedRecord {
  detail::RecordSet set = detail::RecordSet::Normal;
  std::uint64_t seq = 0;
  std::string error;  // non-empty: decode_record refused the bytes
  std::uint8_t kind = 0;
  Priority priority = Priority::Normal;
  std::int64_t ts_ns = 0;
  std::uint16_t attempts = 0;
  std::string name;
  std::vector<OwnedField> inputs;
  std::vector<OwnedField> outputs;
};

inline OwnedRecord own(const detail::DecodedRecord& r) {
  OwnedRecord o;
  o.kind = r.kind;
  o.priority = r.priority;
  o.ts_ns = r.ts_ns;
  o.attempts = r.attempts;
  o.name = std::string(r.name);
  for (const auto& f : r.inputs) o.inputs.emplace_back(f.name, f.value);
  for (const auto& f : r.outputs) o.outputs.emplace_back(f.name, f.value);
  return o;
}

// Every record of the journal in `dir`, in sync order (the four priorities, then
// failed; key order within each), read through Journal::open_read_only.
inline std::vector<OwnedRecord> read_journal(const std::filesystem::path& dir) {
  std::vector<OwnedRecord> all;
  auto j = detail::Journal::open_read_only(dir);
  for (std::size_t s = 0; s < detail::kRecordSets; ++s) {
    const auto set = static_cast<detail::RecordSet>(s);
    std::uint64_t from = 0;
    do {
      from = j->scan(set, from, 512, [&](std::uint64_t seq, std::span<const std::byte> bytes) {
        detail::DecodedRecord d;
        OwnedRecord o;
        const std::string err = detail::decode_record(bytes, d);
        if (err.empty()) o = own(d);
        o.error = err;
        o.set = set;
        o.seq = seq;
        all.push_back(std::move(o));
      });
    } while (from != 0);
  }
  return all;
}

// Encodes one record with the journal's encoder, as the writer would.
struct FieldSpec {
  std::string name;
  Value value;
};

inline void append_value_bytes(std::vector<std::byte>& out, const Value& v) {
  auto put = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  };
  switch (v.type()) {
    case Value::Type::Double: {
      const double d = v.as_double();
      put(&d, 8);
      break;
    }
    case Value::Type::Int: {
      const std::int64_t i = v.as_int();
      put(&i, 8);
      break;
    }
    case Value::Type::Bool: {
      const std::uint8_t b = v.as_bool() ? 1 : 0;
      put(&b, 1);
      break;
    }
    case Value::Type::String: {
      const auto s = v.as_string();
      const auto len = static_cast<std::uint32_t>(s.size());
      put(&len, 4);
      put(s.data(), s.size());
      break;
    }
  }
}

inline std::vector<std::byte> encode_record(std::uint8_t kind, Priority p, std::int64_t ts_ns,
                                            std::string_view name,
                                            const std::vector<FieldSpec>& inputs,
                                            const std::vector<FieldSpec>& outputs) {
  std::vector<std::byte> arena;
  detail::RecordEncoder enc(arena);
  enc.begin(kind, p, ts_ns, name, static_cast<std::uint8_t>(inputs.size()),
            static_cast<std::uint8_t>(outputs.size()));
  for (const auto* side : {&inputs, &outputs}) {
    for (const auto& f : *side) {
      std::vector<std::byte> value;
      append_value_bytes(value, f.value);
      enc.field(f.name, f.value.type(), value.data(), value.size());
    }
  }
  const std::size_t off = enc.finish();
  return std::vector<std::byte>(arena.begin() + static_cast<std::ptrdiff_t>(off), arena.end());
}

// A raw LMDB environment on a journal directory (no flightlog code involved). The
// journal must not be open for writing by a Client meanwhile.
class RawLmdb {
 public:
  explicit RawLmdb(const std::filesystem::path& dir, std::size_t map_bytes = 0) {
    check(mdb_env_create(&env_), "mdb_env_create");
    check(mdb_env_set_maxdbs(env_, 16), "mdb_env_set_maxdbs");
    if (map_bytes != 0) check(mdb_env_set_mapsize(env_, map_bytes), "mdb_env_set_mapsize");
    check(mdb_env_open(env_, dir.c_str(), 0, 0600), "mdb_env_open");
  }
  ~RawLmdb() { mdb_env_close(env_); }
  RawLmdb(const RawLmdb&) = delete;
  RawLmdb& operator=(const RawLmdb&) = delete;

  // Puts key -> value into the named database (created if missing), in its own
  // transaction.
  void put(const char* db, std::string_view key, std::span<const std::byte> value) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_dbi dbi = 0;
    check(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), "mdb_dbi_open");
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<std::byte*>(value.data())};
    check(mdb_put(txn, dbi, &k, &v, 0), "mdb_put");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }

  void put_seq(const char* db, std::uint64_t seq, std::span<const std::byte> value) {
    put(db, be64(seq), value);
  }

  static std::string be64(std::uint64_t v) {
    std::string k(8, '\0');
    for (int i = 7; i >= 0; --i) {
      k[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xFF);
      v >>= 8;
    }
    return k;
  }

 private:
  static void check(int rc, const char* what) {
    if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
  }
  MDB_env* env_ = nullptr;
};

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace flightlog::test
