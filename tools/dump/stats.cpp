#include "stats.hpp"

#include <cstdio>

#include "format/json.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

namespace {

constexpr Priority kPriorities[] = {Priority::Critical, Priority::High, Priority::Normal,
                                    Priority::Low};

std::string padded(std::string_view s, std::size_t width, bool right) {
  std::string out;
  const std::size_t pad = s.size() < width ? width - s.size() : 0;
  if (right) out.append(pad, ' ');
  out += s;
  if (!right) out.append(pad, ' ');
  return out;
}

void line(std::string& out, std::string_view label, std::string_view value) {
  out += padded(label, 14, false);
  out += value;
  out.push_back('\n');
}

std::string time_text(const std::optional<std::int64_t>& ns) {
  if (!ns) return "-";
  std::string s;
  fd::append_rfc3339(s, *ns);
  return s;
}

void json_u64(std::string& out, std::string_view key, std::uint64_t v, bool comma = true) {
  if (comma) out.push_back(',');
  fd::append_json_string(out, key);
  out.push_back(':');
  out += std::to_string(v);
}

}  // namespace

std::string human_bytes(std::uint64_t n) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

void RecordStats::add(const Visited& v) {
  const auto p = static_cast<std::size_t>(v.rec.priority);
  const std::size_t s = v.set == fd::RecordSet::Failed ? 1 : 0;
  ++records[p][s];
  bytes[p][s] += v.bytes.size();
  if (!oldest_ns || v.rec.ts_ns < *oldest_ns) oldest_ns = v.rec.ts_ns;
  if (!newest_ns || v.rec.ts_ns > *newest_ns) newest_ns = v.rec.ts_ns;
}

void append_stats_text(std::string& out, const StatsReport& r) {
  line(out, "journal", "'" + r.dir.string() + "'");
  line(out, "journal id", r.journal_id);
  line(out, "format", "version " + std::to_string(fd::kJournalFormatVersion));
  line(out, "next seq", std::to_string(r.next_seq));
  out += r.filtered ? "records (of the selection):\n" : "records:\n";
  out += "              " + padded("queued", 10, true) + padded("failed", 10, true) +
         padded("bytes", 12, true) + "\n";
  std::array<std::uint64_t, 3> total{};
  for (auto p : kPriorities) {
    const auto i = static_cast<std::size_t>(p);
    const auto& n = r.records.records[i];
    const std::uint64_t b = r.records.bytes[i][0] + r.records.bytes[i][1];
    out += "  " + padded(to_string(p), 12, false) + padded(std::to_string(n[0]), 10, true) +
           padded(std::to_string(n[1]), 10, true) + padded(human_bytes(b), 12, true) + "\n";
    total[0] += n[0];
    total[1] += n[1];
    total[2] += b;
  }
  out += "  " + padded("total", 12, false) + padded(std::to_string(total[0]), 10, true) +
         padded(std::to_string(total[1]), 10, true) + padded(human_bytes(total[2]), 12, true) +
         "\n";
  line(out, "damaged", std::to_string(r.records.damaged));
  line(out, "oldest", time_text(r.records.oldest_ns));
  line(out, "newest", time_text(r.records.newest_ns));
  std::string evicted;
  for (auto p : kPriorities) {
    if (!evicted.empty()) evicted += ", ";
    evicted += std::string(to_string(p)) + " " +
               std::to_string(r.counts.evicted[static_cast<std::size_t>(p)]);
  }
  line(out, "evicted", evicted + " (since the journal was made)");
  line(out, "cleaned up", std::to_string(r.counts.cleaned_up) + " (since the journal was made)");
  if (!r.space_error.empty()) {
    line(out, "space", "unknown: " + r.space_error);
    return;
  }
  const auto& s = r.space;
  line(out, "map",
       human_bytes(s.map_bytes) + " (file " + human_bytes(s.file_bytes) + ", page " +
           std::to_string(s.page_bytes) + " B)");
  line(out, "pages",
       "used " + std::to_string(s.pages_used) + " (" + human_bytes(s.pages_used * s.page_bytes) +
           "), free " + std::to_string(s.pages_free) + " (reusable, " +
           human_bytes(s.pages_free * s.page_bytes) + "), never used " +
           std::to_string(s.pages_never_used));
  line(out, "reader slots",
       std::to_string(s.readers) + " of " + std::to_string(s.max_readers) +
           " used (high-water mark, this tool's included)");
}

void append_stats_json(std::string& out, const StatsReport& r) {
  out += "{\"dir\":";
  fd::append_json_string(out, r.dir.string());
  out += ",\"journal_id\":";
  fd::append_json_string(out, r.journal_id);
  json_u64(out, "format_version", fd::kJournalFormatVersion);
  json_u64(out, "next_seq", r.next_seq);
  out += ",\"filtered\":";
  out += r.filtered ? "true" : "false";
  out += ",\"records\":{";
  std::array<std::uint64_t, 3> total{};
  for (auto p : kPriorities) {
    const auto i = static_cast<std::size_t>(p);
    if (i != 0) out.push_back(',');
    fd::append_json_string(out, to_string(p));
    const auto& n = r.records.records[i];
    const std::uint64_t b = r.records.bytes[i][0] + r.records.bytes[i][1];
    out += ":{";
    json_u64(out, "queued", n[0], false);
    json_u64(out, "failed", n[1]);
    json_u64(out, "bytes", b);
    out.push_back('}');
    total[0] += n[0];
    total[1] += n[1];
    total[2] += b;
  }
  out += ",\"total\":{";
  json_u64(out, "queued", total[0], false);
  json_u64(out, "failed", total[1]);
  json_u64(out, "bytes", total[2]);
  out += "}}";
  json_u64(out, "damaged", r.records.damaged);
  for (const auto& [key, ns] :
       {std::pair{"oldest", r.records.oldest_ns}, std::pair{"newest", r.records.newest_ns}}) {
    out += ",\"";
    out += key;
    out += "_ts\":";
    if (ns) {
      out.push_back('"');
      fd::append_rfc3339(out, *ns);
      out += "\",\"";
      out += key;
      out += "_ts_ns\":" + std::to_string(*ns);
    } else {
      out += "null,\"";
      out += key;
      out += "_ts_ns\":null";
    }
  }
  out += ",\"evicted\":{";
  for (auto p : kPriorities) {
    json_u64(out, to_string(p), r.counts.evicted[static_cast<std::size_t>(p)],
             p != Priority::Critical);
  }
  out.push_back('}');
  json_u64(out, "cleaned_up", r.counts.cleaned_up);
  if (r.space_error.empty()) {
    const auto& s = r.space;
    json_u64(out, "map_bytes", s.map_bytes);
    json_u64(out, "file_bytes", s.file_bytes);
    json_u64(out, "page_bytes", s.page_bytes);
    json_u64(out, "pages_used", s.pages_used);
    json_u64(out, "pages_free", s.pages_free);
    json_u64(out, "pages_never_used", s.pages_never_used);
    json_u64(out, "reader_slots_used", s.readers);
    json_u64(out, "reader_slots", s.max_readers);
  } else {
    out += ",\"space_error\":";
    fd::append_json_string(out, r.space_error);
  }
  out += "}\n";
}

}  // namespace flightlog::tools
