// Names registered with Client::schema(), looked up by the writer when it expands a
// schema-form record into a self-contained journal record.
//
// Registration (rare, off the hot path) appends under a mutex. The writer keeps its own
// vector of pointers and refreshes it only when it meets an id it has not seen, so the
// steady state takes no lock. Definitions never move or die before the table.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
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
};

}  // namespace flightlog::detail
