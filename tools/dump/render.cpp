#include "render.hpp"

namespace flightlog::tools {

namespace fd = flightlog::detail;

namespace {

constexpr std::size_t kPriorityWidth = 8;  // "CRITICAL"
constexpr std::size_t kStateWidth = 6;     // "queued"
constexpr std::size_t kTsWidth = 30;       // RFC 3339 with nanoseconds
constexpr std::size_t kAttemptsWidth = 3;
constexpr std::size_t kTypeWidth = 10;  // "prediction"

// One table cell: `text`, padded to `width`, and the gap to the next column.
void cell(std::string& out, std::string_view text, std::size_t width) {
  out += text;
  out.append(text.size() < width ? width - text.size() : 0, ' ');
  out += "  ";
}

// Text a terminal shows as is: control characters become '?'.
void append_printable(std::string& out, std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? '?' : c);
  }
}

void append_fields_json(std::string& out, const std::vector<fd::DecodedField>& fields) {
  out.push_back('{');
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i != 0) out.push_back(',');
    fd::append_json_string(out, fields[i].name);
    out.push_back(':');
    fd::append_json_value(out, fields[i].value);
  }
  out.push_back('}');
}

std::string_view type_name(const fd::DecodedRecord& rec) {
  return rec.kind == fd::kKindEvent ? "event" : "prediction";
}

std::string_view state_name(fd::RecordState s) {
  return s == fd::RecordState::Failed ? "failed" : "queued";
}

}  // namespace

std::optional<RecordFormat> parse_record_format(std::string_view name) {
  if (name == "ndjson" || name == "json") return RecordFormat::Ndjson;
  if (name == "table") return RecordFormat::Table;
  if (name == "csv") return RecordFormat::Csv;
  return std::nullopt;
}

RecordPrinter::RecordPrinter(RecordFormat format, std::string journal_id, std::uint64_t max_seq)
    : format_(format), journal_id_(std::move(journal_id)) {
  id_width_ = journal_id_.size() + 1 + std::to_string(max_seq).size();
}

void RecordPrinter::header(std::string& out) const {
  if (format_ == RecordFormat::Csv) {
    out += "id,seq,priority,ts,ts_ns,type,name,state,attempts,last_status,reason,inputs,output\r\n";
    return;
  }
  if (format_ != RecordFormat::Table) return;
  cell(out, "ID", id_width_);
  cell(out, "PRIORITY", kPriorityWidth);
  cell(out, "STATE", kStateWidth);
  cell(out, "TIME (UTC)", kTsWidth);
  cell(out, "ATT", kAttemptsWidth);
  cell(out, "TYPE", kTypeWidth);
  out += "NAME / INPUTS -> OUTPUT [LAST STATUS: REASON]\n";
}

void RecordPrinter::record(std::string& out, std::uint64_t seq, const fd::DecodedRecord& rec,
                           fd::RecordState state) {
  switch (format_) {
    case RecordFormat::Ndjson:
      fd::append_record_json(out, journal_id_, seq, rec, state);
      out.push_back('\n');
      return;
    case RecordFormat::Table:
      table_row(out, seq, rec, state);
      return;
    case RecordFormat::Csv:
      csv_row(out, seq, rec, state);
      return;
  }
}

void RecordPrinter::table_row(std::string& out, std::uint64_t seq, const fd::DecodedRecord& rec,
                              fd::RecordState state) {
  cell(out, fd::record_id(journal_id_, seq), id_width_);
  cell(out, to_string(rec.priority), kPriorityWidth);
  cell(out, state_name(state), kStateWidth);
  scratch_.clear();
  fd::append_rfc3339(scratch_, rec.ts_ns);
  cell(out, scratch_, kTsWidth);
  cell(out, std::to_string(rec.attempts), kAttemptsWidth);
  cell(out, type_name(rec), kTypeWidth);
  if (rec.kind == fd::kKindEvent) {
    append_printable(out, rec.name);
    out.push_back(' ');
  }
  append_fields_json(out, rec.inputs);
  out += " -> ";
  append_fields_json(out, rec.outputs);
  if (rec.last_status != 0 || !rec.reason.empty()) {
    out += " [";
    out += std::to_string(rec.last_status);
    if (!rec.reason.empty()) {
      out += ": ";
      append_printable(out, rec.reason);
    }
    out.push_back(']');
  }
  out.push_back('\n');
}

void append_csv_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out.push_back('"');
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

void RecordPrinter::csv_row(std::string& out, std::uint64_t seq, const fd::DecodedRecord& rec,
                            fd::RecordState state) {
  out += fd::record_id(journal_id_, seq);
  out.push_back(',');
  out += std::to_string(seq);
  out.push_back(',');
  out += to_string(rec.priority);
  out.push_back(',');
  fd::append_rfc3339(out, rec.ts_ns);
  out.push_back(',');
  out += std::to_string(rec.ts_ns);
  out.push_back(',');
  out += type_name(rec);
  out.push_back(',');
  append_csv_field(out, rec.name);
  out.push_back(',');
  out += state_name(state);
  out.push_back(',');
  out += std::to_string(rec.attempts);
  out.push_back(',');
  if (rec.last_status != 0) out += std::to_string(rec.last_status);
  out.push_back(',');
  append_csv_field(out, rec.reason);
  out.push_back(',');
  scratch_.clear();
  append_fields_json(scratch_, rec.inputs);
  append_csv_field(out, scratch_);
  out.push_back(',');
  scratch_.clear();
  append_fields_json(scratch_, rec.outputs);
  append_csv_field(out, scratch_);
  out += "\r\n";
}

}  // namespace flightlog::tools
