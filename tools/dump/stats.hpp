// flightlog-dump --stats: what a journal holds and how much room it takes.
//
// Record figures (counts per priority and state, bytes, oldest and newest) come from
// reading every selected record, so the filters apply to them; the journal figures
// (next seq, persistent counters, map, pages, readers) describe the whole journal.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "journal/journal.hpp"
#include "journal/journal_stats.hpp"
#include "selection.hpp"

namespace flightlog::tools {

struct RecordStats {
  // [priority][0 queued, 1 failed]
  std::array<std::array<std::uint64_t, 2>, 4> records{};
  std::array<std::array<std::uint64_t, 2>, 4> bytes{};  // encoded record bytes
  std::optional<std::int64_t> oldest_ns;
  std::optional<std::int64_t> newest_ns;
  std::uint64_t damaged = 0;

  void add(const Visited& v);
};

struct StatsReport {
  std::filesystem::path dir;
  std::string journal_id;
  std::uint64_t next_seq = 0;
  detail::JournalCounts counts;  // evicted, cleaned_up
  RecordStats records;
  bool filtered = false;  // the record figures are of a selection
  detail::JournalSpace space;
  std::string space_error;  // set when the page accounting could not be read
};

// Plain text, one figure per line, for people.
void append_stats_text(std::string& out, const StatsReport& r);
// One JSON object (and a newline), for programs.
void append_stats_json(std::string& out, const StatsReport& r);

// "1.5 MiB"
std::string human_bytes(std::uint64_t n);

}  // namespace flightlog::tools
