// CSV (RFC 4180) decoding and encoding.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "barge/stream/io.h"
#include "stream/io/block_reader.h"

namespace barge::stream {

namespace io {

namespace {

std::string Describe(char c) {
  if (c == '\r') return "'\\r'";
  if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
    return fmt::format("byte 0x{:02x}", static_cast<unsigned char>(c));
  }
  return fmt::format("'{}'", c);
}

// Resynchronizes after a malformed record: drop bytes through the line break at or after `from`.
void SkipThroughLineBreak(std::string_view data, size_t from, uint64_t lines_before, Decoded& d) {
  size_t nl = data.find('\n', from);
  d.consumed = nl == std::string_view::npos ? data.size() : nl + 1;
  d.lines = lines_before + (nl == std::string_view::npos ? 0 : 1);
}

}  // namespace

void CsvDecoder::Parse(std::string_view data, bool eof, std::vector<std::string>& fields,
                       Decoded& d) {
  const char delim = options_.delimiter;
  const char* p = data.data();
  const size_t n = data.size();
  fields.clear();
  size_t i = 0;
  uint64_t lines = 0;  // line breaks inside quoted fields so far
  auto record_ends = [&](size_t consumed, uint64_t breaks) {
    d.kind = Decoded::kRecord;
    d.consumed = consumed;
    d.lines = lines + breaks;
  };
  for (;;) {
    if (i < n && p[i] == '"') {
      const uint64_t quote_line = lines;
      std::string& field = fields.emplace_back();
      size_t j = i + 1;
      for (;;) {
        const void* q = std::memchr(p + j, '"', n - j);
        if (q == nullptr) {
          if (!eof) {
            d.kind = Decoded::kNeedMore;
            return;
          }
          d.kind = Decoded::kError;
          d.error = "unterminated quoted field";
          d.error_line = quote_line;
          // The quote was probably stray: resume on the line after the record's first.
          SkipThroughLineBreak(data, 0, 0, d);
          return;
        }
        size_t qi = static_cast<size_t>(static_cast<const char*>(q) - p);
        field.append(p + j, qi - j);
        lines += static_cast<uint64_t>(std::count(p + j, p + qi, '\n'));
        if (qi + 1 < n && p[qi + 1] == '"') {
          field += '"';
          j = qi + 2;
          continue;
        }
        if (qi + 1 == n && !eof) {
          d.kind = Decoded::kNeedMore;  // a doubled quote may follow
          return;
        }
        i = qi + 1;
        break;
      }
      if (i == n) return record_ends(n, 0);  // at end of input
      char c = p[i];
      if (c == delim) {
        ++i;
        continue;
      }
      if (c == '\n') return record_ends(i + 1, 1);
      if (c == '\r' && i + 1 < n && p[i + 1] == '\n') return record_ends(i + 2, 1);
      if (c == '\r' && i + 1 == n) {
        if (eof) return record_ends(n, 0);
        d.kind = Decoded::kNeedMore;
        return;
      }
      d.kind = Decoded::kError;
      d.error = "unexpected " + Describe(c) + " after closing quote";
      d.error_line = lines;
      SkipThroughLineBreak(data, i, lines, d);
      return;
    }
    size_t j = i;
    while (j < n && p[j] != delim && p[j] != '\n') ++j;
    if (j == n) {
      if (!eof) {
        d.kind = Decoded::kNeedMore;
        return;
      }
      size_t end = j > i && p[j - 1] == '\r' ? j - 1 : j;
      fields.emplace_back(p + i, end - i);
      return record_ends(n, 0);
    }
    if (p[j] == delim) {
      fields.emplace_back(p + i, j - i);
      i = j + 1;
      continue;
    }
    size_t end = j > i && p[j - 1] == '\r' ? j - 1 : j;
    fields.emplace_back(p + i, end - i);
    return record_ends(j + 1, 1);
  }
}

Decoded CsvDecoder::Decode(std::string_view data, bool eof, CsvRow& out) {
  Decoded d;
  if (data.empty()) return d;
  if (at_start_) {
    // Spreadsheets often start CSV files with a UTF-8 byte order mark; it is not data (and
    // would otherwise become part of the first column's name).
    if (data.size() < 3 && !eof && std::string_view("\xEF\xBB\xBF").starts_with(data)) return d;
    at_start_ = false;
    if (data.starts_with("\xEF\xBB\xBF")) {
      d.kind = Decoded::kNothing;
      d.consumed = 3;
      return d;
    }
  }
  // Empty lines hold no record.
  if (data[0] == '\n' || (data[0] == '\r' && data.size() > 1 && data[1] == '\n')) {
    d.kind = Decoded::kNothing;
    d.consumed = data[0] == '\n' ? 1 : 2;
    d.lines = 1;
    return d;
  }
  if (data == "\r" && eof) {
    d.kind = Decoded::kNothing;
    d.consumed = 1;
    return d;
  }
  Parse(data, eof, out.fields, d);
  if (d.kind != Decoded::kRecord) return d;
  if (first_) {
    first_ = false;
    expected_fields_ = out.fields.size();
    if (options_.header) {
      auto header = std::make_shared<CsvHeader>();
      header->names = std::move(out.fields);
      header_ = std::move(header);
      d.kind = Decoded::kNothing;
      return d;
    }
  } else if (options_.check_field_count && out.fields.size() != expected_fields_) {
    d.kind = Decoded::kError;
    d.error = fmt::format("expected {} fields, got {}", expected_fields_, out.fields.size());
    d.error_line = 0;
    return d;
  }
  out.header = header_;
  return d;
}

}  // namespace io

namespace detail {

void AppendCsvRecord(const std::vector<std::string>& fields, char delimiter, std::string& out) {
  const char specials[] = {delimiter, '"', '\r', '\n', '\0'};
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += delimiter;
    const std::string& f = fields[i];
    // A lone empty field is quoted so the record is not an empty line, which readers skip.
    bool quote =
        f.find_first_of(specials, 0, 4) != std::string::npos || (f.empty() && fields.size() == 1);
    if (!quote) {
      out += f;
      continue;
    }
    out += '"';
    for (char c : f) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  out += '\n';
}

}  // namespace detail

}  // namespace barge::stream
