// Writing and reading single values as text: how rows become JSON Lines and CSV, and how text
// fields parse into typed values. Shared by the readers, writers, dead letters and the planner.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/column.h"

namespace barge::pipeline {

// Appends `s` as a JSON string (quoted, escaped). Bytes that are not valid UTF-8 become U+FFFD.
void AppendJsonString(std::string_view s, std::string& out);
// Shortest text that reads back as the same double; integral values keep ".0" so that they stay
// DOUBLE when read again. NaN and infinities have no JSON form: `null` in JSON, "NaN", "inf",
// "-inf" in CSV.
void AppendDouble(double v, std::string& out, bool json);
// TIMESTAMP as ISO 8601 in UTC with milliseconds: 2024-01-02T03:04:05.678Z.
void AppendTimestamp(int64_t ms, std::string& out);

// Row `row` of `batch` as one JSON object, fields in schema order; dotted field names ("a.b") are
// written flat, as they are named.
void AppendJsonRow(const RecordBatch& batch, size_t row, std::string& out);

// The same for many rows: the field names are escaped once per schema, and a row is built in a
// local buffer and appended at once. Keep one per writer (sink, stage replica).
class JsonRowWriter {
 public:
  void Append(const RecordBatch& batch, size_t row, std::string& out);

 private:
  std::shared_ptr<const Schema> schema_;  // held, so a new schema never reuses its address
  std::vector<std::string> keys_;         // "{\"a\":", ",\"b\":", ...
};
// Row `row` of `batch` as one CSV record (RFC 4180 quoting; NULL is an empty field), no newline.
void AppendCsvRow(const RecordBatch& batch, size_t row, char delimiter, std::string& out);
// The field names as a CSV header record, no newline.
void AppendCsvHeader(const Schema& schema, char delimiter, std::string& out);
// One value as JSON.
void AppendJsonValue(const Column& column, size_t row, std::string& out);

// Parsing text as a type, as CSV fields and JSON strings are: BIGINT (optional sign, digits),
// DOUBLE (decimal or exponent, also inf/nan), BOOLEAN (true/false, t/f, yes/no, 1/0, any
// case), TIMESTAMP (ISO 8601 date or date-time, 'T' or space, optional fraction and zone, or an
// integer of milliseconds). Surrounding spaces are ignored. Empty when the text does not parse.
std::optional<int64_t> ParseInt64(std::string_view s);
std::optional<double> ParseDouble(std::string_view s);
std::optional<bool> ParseBool(std::string_view s);
std::optional<int64_t> ParseTimestamp(std::string_view s);

}  // namespace barge::pipeline
