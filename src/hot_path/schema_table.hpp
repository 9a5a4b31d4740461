// Names registered with Client::schema(), and the implicit schemas of named-form shapes
// (see shape_memo.hpp), looked up by the writer when it expands a schema-form record into
// a self-contained journal record.
//
// Registration (rare, off the hot path) appends under a mutex. The writer keeps its own
// vector of pointers and refreshes it only when it meets an id it has not seen, so the
// steady state takes no lock. Definitions never move or die before the table.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace flightlog::detail {

struct SchemaDef {
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

class SchemaTable {
 public:
  static constexpr std::uint32_t kMaxSchemas = 65535;

  // Returns the new id (1-based), or 0 when the table is full.
  std::uint32_t add(SchemaDef def) {
    std::lock_guard lock(mu_);
    if (defs_.size() >= kMaxSchemas) return 0;
    defs_.push_back(std::move(def));
    return static_cast<std::uint32_t>(defs_.size());
  }

  // Most implicit schemas a client registers; past it, new named-form shapes keep
  // copying their names.
  static constexpr std::size_t kMaxImplicit = 1024;

  // The id of the implicit schema with exactly these names, registered on first use, so
  // threads that log the same shape share one. 0 when kMaxImplicit implicit schemas
  // exist or the table is full. May throw std::bad_alloc.
  std::uint32_t find_or_add_implicit(SchemaDef def) {
    std::string key;  // each name with its length in front: no two shapes share a key
    key.push_back(static_cast<char>(def.inputs.size()));
    for (const auto* side : {&def.inputs, &def.outputs}) {
      for (const auto& name : *side) {
        key.push_back(static_cast<char>(name.size()));
        key += name;
      }
    }
    std::lock_guard lock(mu_);
    if (auto it = implicit_.find(key); it != implicit_.end()) return it->second;
    if (implicit_.size() >= kMaxImplicit || defs_.size() >= kMaxSchemas) return 0;
    defs_.push_back(std::move(def));
    const auto id = static_cast<std::uint32_t>(defs_.size());
    implicit_.emplace(std::move(key), id);
    return id;
  }

  // Writer-side lookup through a private cache; nullptr for an unknown id.
  class Reader {
   public:
    explicit Reader(SchemaTable& t) : table_(t) {}
    const SchemaDef* get(std::uint32_t id) {
      if (id == 0) return nullptr;
      if (id > cache_.size()) {
        std::lock_guard lock(table_.mu_);
        for (std::size_t i = cache_.size(); i < table_.defs_.size(); ++i) {
          cache_.push_back(&table_.defs_[i]);
        }
      }
      return id <= cache_.size() ? cache_[id - 1] : nullptr;
    }

   private:
    SchemaTable& table_;
    std::vector<const SchemaDef*> cache_;
  };

 private:
  std::mutex mu_;
  std::deque<SchemaDef> defs_;  // deque: elements never move on push_back
  std::unordered_map<std::string, std::uint32_t> implicit_;  // names key -> id
};

}  // namespace flightlog::detail
