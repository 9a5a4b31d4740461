// The record formats of flightlog-dump:
//   ndjson  one JSON object per line, exactly as format/json.hpp renders a record (the
//           default; the same objects the uploader sends, plus the delivery state)
//   table   aligned columns for reading: id, priority, state, time, attempts, type, then
//           the event name, inputs -> output as JSON, and the failure of failed records
//   csv     RFC 4180: a header row, CRLF line ends, fields quoted when they hold a comma,
//           a quote or a line break (quotes doubled); inputs and output as JSON texts
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "format/json.hpp"
#include "format/record.hpp"

namespace flightlog::tools {

enum class RecordFormat { Ndjson, Table, Csv };

// "ndjson" (or "json"), "table", "csv".
std::optional<RecordFormat> parse_record_format(std::string_view name);

class RecordPrinter {
 public:
  // `max_seq` sizes the id column of the table (the journal's next_seq will do).
  RecordPrinter(RecordFormat format, std::string journal_id, std::uint64_t max_seq);

  // The header line of table and csv (with its line end); nothing for ndjson.
  void header(std::string& out) const;
  // One record, with its line end.
  void record(std::string& out, std::uint64_t seq, const detail::DecodedRecord& rec,
              detail::RecordState state);

 private:
  void table_row(std::string& out, std::uint64_t seq, const detail::DecodedRecord& rec,
                 detail::RecordState state);
  void csv_row(std::string& out, std::uint64_t seq, const detail::DecodedRecord& rec,
               detail::RecordState state);

  RecordFormat format_;
  std::string journal_id_;
  std::size_t id_width_;
  std::string scratch_;
};

// Appends `field` as one RFC 4180 field (quoted when it must be).
void append_csv_field(std::string& out, std::string_view field);

}  // namespace flightlog::tools
