// JSON rendering of journal records: one object per record, the form the dump tool
// prints and the uploader sends.
//
// The output is valid JSON for any record:
// - strings are escaped per RFC 8259; bytes that are not valid UTF-8 (overlong forms,
//   surrogates, code points above U+10FFFF, stray continuation bytes) become U+FFFD;
// - finite doubles use the shortest text that reads back to the same double;
//   NaN, +Inf and -Inf, which JSON numbers cannot express, become the strings "NaN",
//   "Infinity" and "-Infinity";
// - timestamps are RFC 3339 UTC with nine fractional digits, plus "ts_ns" as an integer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "flightlog/value.hpp"
#include "format/record.hpp"

namespace flightlog::detail {

void append_json_string(std::string& out, std::string_view s);
void append_json_value(std::string& out, const Value& v);
// "2026-11-27T23:28:25.123456789Z"
void append_rfc3339(std::string& out, std::int64_t unix_ns);

enum class RecordState : std::uint8_t { Queued, Failed };

struct JsonRecordOptions {
  bool include_delivery_state = true;  // attempts, state, last_status, reason
};

// Appends one JSON object (no newline). `journal_id` and `seq` form the record id.
void append_record_json(std::string& out, std::string_view journal_id, std::uint64_t seq,
                        const DecodedRecord& rec, RecordState state,
                        const JsonRecordOptions& opts = {});

// One row for ClickHouse's JSONEachRow into the table of the README's DDL: the same
// fields as append_record_json without delivery state, but "inputs" and "output" are
// JSON texts in strings (old ClickHouse cannot parse an object into a String column),
// and "name" is always present ("" for predictions).
void append_clickhouse_row(std::string& out, std::string_view journal_id, std::uint64_t seq,
                           const DecodedRecord& rec);

// "<journal_id>-<seq>"
std::string record_id(std::string_view journal_id, std::uint64_t seq);

}  // namespace flightlog::detail
