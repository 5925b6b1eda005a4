#include "pipeline/text_source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "base/file_util.h"
#include "pipeline/format.h"
#include "stream/io/block_reader.h"

namespace barge::pipeline {

namespace {

using Framed = RowDecoder::Framed;
using stream::io::BlockReader;

// ---- CSV

// One field of a CSV record, as found by the framer.
struct CsvField {
  size_t begin = 0;  // offsets into the record
  size_t end = 0;
  bool quoted = false;   // begin/end exclude the quotes
  bool escaped = false;  // holds "" pairs to undo
};

// Frames one CSV record at the start of `data` and lists its fields.
Framed FrameCsv(std::string_view data, bool eof, char delimiter, std::vector<CsvField>& fields) {
  Framed f;
  fields.clear();
  const size_t n = data.size();
  size_t i = 0;
  // Blank lines are skipped, as other readers do.
  if (n > 0 && (data[0] == '\n' || (data[0] == '\r' && n > 1 && data[1] == '\n'))) {
    f.kind = Framed::kBlank;
    f.consumed = data[0] == '\n' ? 1 : 2;
    f.lines = 1;
    return f;
  }
  CsvField field;
  bool in_quotes = false;
  bool after_quote = false;
  uint64_t lines = 0;
  auto finish = [&](size_t end) {
    if (!field.quoted) {
      field.end = end;
      if (field.end > field.begin && data[field.end - 1] == '\r') --field.end;
    }
    fields.push_back(field);
  };
  while (i < n) {
    char c = data[i];
    if (in_quotes) {
      // Jump to the next quote.
      const void* q = std::memchr(data.data() + i, '"', n - i);
      size_t at = q == nullptr ? n : static_cast<size_t>(static_cast<const char*>(q) - data.data());
      for (size_t k = i; k < at; ++k) lines += data[k] == '\n';
      i = at;
      if (i >= n) break;
      if (i + 1 < n && data[i + 1] == '"') {
        field.escaped = true;
        i += 2;
        continue;
      }
      if (i + 1 >= n && !eof) break;  // "" may continue in the next block
      in_quotes = false;
      after_quote = true;
      field.end = i;
      ++i;
      continue;
    }
    if (c == delimiter) {
      finish(i);
      field = CsvField{i + 1, i + 1, false, false};
      after_quote = false;
      ++i;
      continue;
    }
    if (c == '\n') {
      finish(i);
      f.kind = Framed::kRecord;
      f.consumed = i + 1;
      f.lines = lines + 1;
      return f;
    }
    if (after_quote && c != '\r') {
      f.kind = Framed::kBad;
      f.error = "text after the closing quote of field " + std::to_string(fields.size() + 1);
      // Drop through the end of this line.
      const void* nl = std::memchr(data.data() + i, '\n', n - i);
      if (nl == nullptr && !eof) {
        f.kind = Framed::kNeedMore;
        return f;
      }
      f.consumed =
          nl == nullptr ? n : static_cast<size_t>(static_cast<const char*>(nl) - data.data()) + 1;
      f.lines = lines + (nl == nullptr ? 0 : 1);
      return f;
    }
    if (c == '"' && i == field.begin) {
      in_quotes = true;
      field.quoted = true;
      field.begin = i + 1;
    }
    ++i;
  }
  if (!eof) return f;  // kNeedMore
  if (in_quotes) {
    f.kind = Framed::kBad;
    f.error = "unterminated quoted field " + std::to_string(fields.size() + 1);
    f.consumed = n;
    f.lines = lines;
    return f;
  }
  if (n == 0) return f;
  finish(n);
  f.kind = Framed::kRecord;
  f.consumed = n;
  f.lines = lines;
  return f;
}

// The text of a field, with "" undone (into `scratch` when needed).
std::string_view FieldText(std::string_view record, const CsvField& f, std::string& scratch) {
  std::string_view raw = record.substr(f.begin, f.end - f.begin);
  if (!f.escaped) return raw;
  scratch.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    scratch += raw[i];
    if (raw[i] == '"' && i + 1 < raw.size() && raw[i + 1] == '"') ++i;
  }
  return scratch;
}

// A header field as a field name: unquoted names lose surrounding spaces ("ts, user" names
// `user`), quoted ones are kept as written.
std::string HeaderName(std::string_view record, const CsvField& f, std::string& scratch) {
  std::string_view name = FieldText(record, f, scratch);
  if (!f.quoted) {
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  }
  return std::string(name);
}

// The error of a value in a field typed NULL (inferred from inputs without records).
std::string UntypedValue(const std::string& field) {
  return "field '" + field +
         "' has a value, but the sampled inputs had none to infer its type from (declare "
         "schema: in the source)";
}

std::string Preview(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out;
}

// Appends `text` to `c` parsed as its type. False when it does not parse.
bool AppendParsed(Column& c, std::string_view text) {
  switch (c.type()) {
    case Type::kInt64:
      if (auto v = ParseInt64(text)) {
        c.AppendInt(*v);
        return true;
      }
      return false;
    case Type::kDouble:
      if (auto v = ParseDouble(text)) {
        c.AppendDouble(*v);
        return true;
      }
      return false;
    case Type::kBool:
      if (auto v = ParseBool(text)) {
        c.AppendBool(*v);
        return true;
      }
      return false;
    case Type::kTimestamp:
      if (auto v = ParseTimestamp(text)) {
        c.AppendInt(*v);
        return true;
      }
      return false;
    case Type::kString:
      c.AppendString(text);
      return true;
    case Type::kNull:  // typed from inputs without records: a value has no type to take
      return false;
  }
  return false;
}

void Truncate(RecordBatch& out, size_t rows) {
  for (Column& c : out.columns) {
    if (c.size() > rows) c.Resize(rows);
  }
}

class CsvDecoder final : public RowDecoder {
 public:
  CsvDecoder(const TextFormat& format, std::shared_ptr<const Schema> schema)
      : format_(format), schema_(std::move(schema)) {}

  void StartInput() override {
    expect_header_ = format_.header;
    at_start_ = true;
    if (!format_.header) {
      // Without a header the fields are the schema's, in order.
      source_of_.resize(schema_->fields.size());
      for (size_t i = 0; i < source_of_.size(); ++i) source_of_[i] = i;
      expected_fields_ = schema_->fields.size();
    }
  }

  Framed Frame(std::string_view data, bool eof) override {
    if (at_start_ && data.size() >= 3 && data.substr(0, 3) == "\xEF\xBB\xBF") {
      bom_ = true;  // a byte order mark: part of the first record's bytes, skipped when parsed
      data.remove_prefix(3);
      Framed f = FrameCsv(data, eof, format_.delimiter, fields_);
      if (f.kind != Framed::kNeedMore) f.consumed += 3;
      return f;
    }
    bom_ = false;
    return FrameCsv(data, eof, format_.delimiter, fields_);
  }

  Result<bool> Parse(std::string_view record, RecordBatch& out, std::string& error) override {
    at_start_ = false;
    if (bom_) record.remove_prefix(3);
    if (expect_header_) {
      expect_header_ = false;
      RETURN_IF_ERROR(MapHeader(record));
      return false;  // the header is no row
    }
    if (fields_.size() != expected_fields_) {
      error = "expected " + std::to_string(expected_fields_) + " fields, found " +
              std::to_string(fields_.size());
      return false;
    }
    const size_t rows = out.rows;
    for (size_t j = 0; j < source_of_.size(); ++j) {
      const CsvField& f = fields_[source_of_[j]];
      Column& c = out.columns[j];
      if (!f.quoted && f.begin == f.end) {
        c.AppendNull();
        continue;
      }
      std::string_view text = FieldText(record, f, scratch_);
      if (f.quoted && text.empty() && c.type() != Type::kString) {
        c.AppendNull();
        continue;
      }
      if (!AppendParsed(c, text)) {
        Truncate(out, rows);
        error = c.type() == Type::kNull
                    ? UntypedValue(schema_->fields[j].name)
                    : "field '" + schema_->fields[j].name + "': cannot read '" + Preview(text) +
                          "' as " + std::string(TypeName(c.type()));
        return false;
      }
    }
    return true;
  }

 private:
  Status MapHeader(std::string_view record) {
    std::vector<std::string> names;
    for (const CsvField& f : fields_) names.push_back(HeaderName(record, f, scratch_));
    expected_fields_ = names.size();
    source_of_.assign(schema_->fields.size(), 0);
    std::unordered_map<std::string_view, size_t> position;  // the first field of each name
    for (size_t i = 0; i < names.size(); ++i) position.try_emplace(names[i], i);
    for (size_t j = 0; j < schema_->fields.size(); ++j) {
      auto it = position.find(schema_->fields[j].name);
      if (it == position.end()) {
        return InvalidArgument("the header has no field '" + schema_->fields[j].name +
                               "' (it has: " + Join(names) + ")");
      }
      source_of_[j] = it->second;
    }
    return Status::Ok();
  }

  static std::string Join(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  TextFormat format_;
  std::shared_ptr<const Schema> schema_;
  std::vector<CsvField> fields_;
  std::vector<size_t> source_of_;  // schema column -> field index in the record
  size_t expected_fields_ = 0;
  bool expect_header_ = false;
  bool at_start_ = true;
  bool bom_ = false;
  std::string scratch_;
};

// ---- Lines

Framed FrameLine(std::string_view data, bool eof) {
  Framed f;
  const void* nl = std::memchr(data.data(), '\n', data.size());
  if (nl == nullptr) {
    if (!eof || data.empty()) return f;
    f.kind = Framed::kRecord;
    f.consumed = data.size();
    return f;
  }
  f.kind = Framed::kRecord;
  f.consumed = static_cast<size_t>(static_cast<const char*>(nl) - data.data()) + 1;
  f.lines = 1;
  return f;
}

std::string_view StripLineBreak(std::string_view record) {
  if (!record.empty() && record.back() == '\n') record.remove_suffix(1);
  if (!record.empty() && record.back() == '\r') record.remove_suffix(1);
  return record;
}

class LinesDecoder final : public RowDecoder {
 public:
  void StartInput() override { at_start_ = true; }
  Framed Frame(std::string_view data, bool eof) override { return FrameLine(data, eof); }
  Result<bool> Parse(std::string_view record, RecordBatch& out, std::string&) override {
    std::string_view line = StripLineBreak(record);
    // A byte order mark is not text of the first line.
    if (at_start_ && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
    at_start_ = false;
    out.columns[0].AppendString(line);
    return true;
  }

 private:
  bool at_start_ = true;
};

// ---- JSON Lines

// Walks a JSON object with nlohmann's SAX interface, calling `Leaf(path, event)` for each value
// at a dotted path; arrays (and everything inside them) are captured whole as JSON text.
template <class Derived>
class JsonWalker : public nlohmann::json_sax<nlohmann::json> {
 public:
  using json = nlohmann::json;

  void Reset() {
    depth_ = 0;
    path_.clear();
    path_len_.clear();
    capture_depth_ = 0;
    stack_.clear();
    error_.clear();
  }

  bool null() override { return Value(json(nullptr)); }
  bool boolean(bool v) override { return Value(json(v)); }
  bool number_integer(number_integer_t v) override { return Value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return Value(json(v)); }
  bool string(string_t& v) override { return Value(json(std::move(v))); }
  bool binary(binary_t&) override { return Value(json(nullptr)); }

  bool start_object(std::size_t) override {
    if (!Deeper()) return false;
    if (capture_depth_ > 0) return Open(json::object());
    if (depth_ == 0 && started_) {
      error_ = "expected one JSON object per line";
      return false;
    }
    started_ = true;
    ++depth_;
    path_len_.push_back(path_.size());
    return true;
  }
  bool key(string_t& k) override {
    if (capture_depth_ > 0) {
      pending_key_ = k;
      return true;
    }
    path_.resize(path_len_.back());
    if (!path_.empty()) path_ += '.';
    path_ += k;
    return true;
  }
  bool end_object() override {
    if (capture_depth_ > 0) return Close();
    --depth_;
    path_len_.pop_back();
    if (!path_len_.empty()) path_.resize(path_len_.back());
    return true;
  }
  bool start_array(std::size_t) override {
    if (!Deeper()) return false;
    if (depth_ == 0 && capture_depth_ == 0) {
      error_ = "expected a JSON object, found an array";
      return false;
    }
    return Open(json::array());
  }
  bool end_array() override { return Close(); }

  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    std::string what = e.what();
    // nlohmann names "line 1, column N" of the one-line input; keep the reason.
    size_t colon = what.rfind(": ");
    error_ = "invalid JSON at byte " + std::to_string(position) + ": " +
             (colon == std::string::npos ? what : what.substr(colon + 2));
    return false;
  }

  // Parses one line; false with error() set when it is not a JSON object.
  bool Walk(std::string_view line) {
    Reset();
    started_ = false;
    bool ok = json::sax_parse(line.begin(), line.end(), this, json::input_format_t::json, true);
    if (ok && !started_) {
      error_ = "expected a JSON object";
      return false;
    }
    return ok && error_.empty();
  }
  const std::string& error() const { return error_; }

 protected:
  std::string path_;

 private:
  // Objects and arrays nest at most kMaxJsonDepth deep: deeper records are bad records, not a
  // stack overflow when captured values are turned back into text.
  static constexpr int kMaxJsonDepth = 256;
  bool Deeper() {
    if (depth_ + capture_depth_ < kMaxJsonDepth) return true;
    error_ = "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }

  bool Value(json v) {
    if (capture_depth_ > 0) return Add(std::move(v));
    if (depth_ == 0) {
      error_ = "expected a JSON object, found " + std::string(v.type_name());
      return false;
    }
    return static_cast<Derived*>(this)->Leaf(path_, v);
  }

  // Captured arrays are built as a small DOM, then handed over as one value.
  bool Open(json container) {
    if (capture_depth_ == 0) {
      stack_.push_back(std::move(container));
    } else {
      stack_.push_back(std::move(container));
      keys_.push_back(pending_key_);
    }
    ++capture_depth_;
    return true;
  }
  bool Add(json v) {
    json& top = stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
    } else {
      top[pending_key_] = std::move(v);
    }
    return true;
  }
  bool Close() {
    json done = std::move(stack_.back());
    stack_.pop_back();
    --capture_depth_;
    if (capture_depth_ == 0) return static_cast<Derived*>(this)->Leaf(path_, done);
    pending_key_ = keys_.back();
    keys_.pop_back();
    return Add(std::move(done));
  }

  int depth_ = 0;
  bool started_ = false;
  std::vector<size_t> path_len_;
  int capture_depth_ = 0;
  std::vector<json> stack_;
  std::vector<std::string> keys_;
  std::string pending_key_;
  std::string error_;
};

// Appends a JSON value to a column of its type; false with `error` when it does not convert.
bool AppendJson(Column& c, const nlohmann::json& v, std::string& error) {
  if (v.is_null()) {
    c.AppendNull();
    return true;
  }
  auto fail = [&](std::string_view what) {
    error = "cannot read " + std::string(what) + " as " + std::string(TypeName(c.type()));
    return false;
  };
  switch (c.type()) {
    case Type::kInt64:
    case Type::kTimestamp:
      if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX}) {
          return fail(v.dump());
        }
        c.AppendInt(v.get<int64_t>());
        return true;
      }
      if (v.is_number_float()) {
        double d = v.get<double>();
        if (d == std::floor(d) && d >= -9.2e18 && d <= 9.2e18) {
          c.AppendInt(static_cast<int64_t>(d));
          return true;
        }
        return fail(v.dump());
      }
      if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        std::optional<int64_t> parsed =
            c.type() == Type::kInt64 ? ParseInt64(s) : ParseTimestamp(s);
        if (parsed) {
          c.AppendInt(*parsed);
          return true;
        }
        return fail("'" + Preview(s) + "'");
      }
      return fail(v.dump());
    case Type::kDouble:
      if (v.is_number()) {
        c.AppendDouble(v.get<double>());
        return true;
      }
      if (v.is_string()) {
        if (auto d = ParseDouble(v.get_ref<const std::string&>())) {
          c.AppendDouble(*d);
          return true;
        }
        return fail("'" + Preview(v.get_ref<const std::string&>()) + "'");
      }
      return fail(v.dump());
    case Type::kBool:
      if (v.is_boolean()) {
        c.AppendBool(v.get<bool>());
        return true;
      }
      if (v.is_string()) {
        if (auto b = ParseBool(v.get_ref<const std::string&>())) {
          c.AppendBool(*b);
          return true;
        }
      }
      if (v.is_number_integer() && (v.get<int64_t>() == 0 || v.get<int64_t>() == 1)) {
        c.AppendBool(v.get<int64_t>() == 1);
        return true;
      }
      return fail(v.is_string() ? "'" + Preview(v.get_ref<const std::string&>()) + "'" : v.dump());
    case Type::kString:
      if (v.is_string()) {
        c.AppendString(v.get_ref<const std::string&>());
      } else {
        c.AppendString(v.dump());
      }
      return true;
    case Type::kNull:
      if (v.is_null()) {
        c.AppendNull();
        return true;
      }
      break;
  }
  return fail(v.dump());
}

class JsonDecoder final : public RowDecoder, private JsonWalker<JsonDecoder> {
 public:
  JsonDecoder(std::shared_ptr<const Schema> schema, std::vector<bool> optional,
              bool only_schema_fields)
      : schema_(std::move(schema)),
        optional_(std::move(optional)),
        only_schema_fields_(only_schema_fields) {
    for (size_t i = 0; i < schema_->fields.size(); ++i) column_of_[schema_->fields[i].name] = i;
    seen_.resize(schema_->fields.size());
    optional_.resize(schema_->fields.size(), false);
  }

  void StartInput() override {}

  Framed Frame(std::string_view data, bool eof) override {
    Framed f = FrameLine(data, eof);
    if (f.kind == Framed::kRecord) {
      std::string_view line = StripLineBreak(data.substr(0, f.consumed));
      if (line.find_first_not_of(" \t") == std::string_view::npos) f.kind = Framed::kBlank;
    }
    return f;
  }

  Result<bool> Parse(std::string_view record, RecordBatch& out, std::string& error) override {
    out_ = &out;
    rows_ = out.rows;
    std::fill(seen_.begin(), seen_.end(), 0);
    leaf_error_.clear();
    if (!Walk(StripLineBreak(record))) {
      Truncate(out, rows_);
      error = leaf_error_.empty() ? this->error() : leaf_error_;
      return false;
    }
    for (size_t j = 0; j < seen_.size(); ++j) {
      if (seen_[j]) continue;
      if (!optional_[j]) {
        Truncate(out, rows_);
        error = "missing field '" + schema_->fields[j].name + "'";
        return false;
      }
      out.columns[j].AppendNull();
    }
    return true;
  }

  // A value at `path`: appended to its column when the schema has it.
  bool Leaf(const std::string& path, const nlohmann::json& v) {
    auto it = column_of_.find(path);
    if (it == column_of_.end()) {  // a field the schema does not have
      if (!only_schema_fields_) return true;
      leaf_error_ = "field '" + path + "' is not declared";
      return false;
    }
    size_t j = it->second;
    if (seen_[j]) {
      leaf_error_ = "field '" + path + "' appears twice";
      return false;
    }
    seen_[j] = 1;
    std::string why;
    if (!AppendJson(out_->columns[j], v, why)) {
      leaf_error_ = "field '" + path + "': " + why;
      return false;
    }
    return true;
  }

 private:
  friend class JsonWalker<JsonDecoder>;
  std::shared_ptr<const Schema> schema_;
  std::vector<bool> optional_;
  bool only_schema_fields_;
  std::unordered_map<std::string, size_t> column_of_;
  std::vector<uint8_t> seen_;
  RecordBatch* out_ = nullptr;
  size_t rows_ = 0;
  std::string leaf_error_;
};

// ---- Inference

// What the sampled values of one field looked like.
struct FieldStats {
  std::string name;
  uint64_t present = 0;  // records that had the field
  uint64_t values = 0;   // non-empty, non-null values
  uint64_t ints = 0;
  uint64_t doubles = 0;  // ints count here too
  uint64_t bools = 0;
  uint64_t timestamps = 0;  // ISO text only (integers are BIGINT)
  uint64_t strings = 0;     // JSON strings

  Type Choose() const {
    if (values == 0) return Type::kString;
    auto enough = [&](uint64_t n) { return n * 5 >= values * 4; };  // at least 80%
    if (enough(ints)) return Type::kInt64;
    if (enough(doubles)) return Type::kDouble;
    if (enough(timestamps)) return Type::kTimestamp;
    if (enough(bools)) return Type::kBool;
    return Type::kString;
  }

  void AddText(std::string_view text) {
    ++values;
    if (ParseInt64(text)) {
      ++ints;
      ++doubles;
      return;
    }
    if (ParseDouble(text)) {
      ++doubles;
      return;
    }
    std::string_view t = text;
    if (t.size() >= 10 && ParseTimestamp(t)) {
      ++timestamps;
      return;
    }
    // Booleans as words only: 0 and 1 are integers.
    if (auto b = ParseBool(t); b && !(t == "0" || t == "1")) ++bools;
  }
};

class JsonInference final : public JsonWalker<JsonInference> {
 public:
  bool Leaf(const std::string& path, const nlohmann::json& v) {
    auto [it, inserted] = index_.try_emplace(path, stats_.size());
    if (inserted) stats_.push_back(FieldStats{path});
    FieldStats& s = stats_[it->second];
    if (seen_this_.size() < stats_.size()) seen_this_.resize(stats_.size());
    if (seen_this_[it->second]) return true;
    seen_this_[it->second] = 1;
    ++s.present;
    if (v.is_null()) return true;
    ++s.values;
    if (v.is_number_integer()) {
      ++s.ints;
      ++s.doubles;
    } else if (v.is_number_float()) {
      ++s.doubles;
    } else if (v.is_boolean()) {
      ++s.bools;
    } else if (v.is_string()) {
      ++s.strings;
      const std::string& text = v.get_ref<const std::string&>();
      if (text.size() >= 10 && ParseTimestamp(text)) ++s.timestamps;
    }
    return true;
  }
  void StartRecord() { std::fill(seen_this_.begin(), seen_this_.end(), 0); }
  std::vector<FieldStats>& stats() { return stats_; }

 private:
  std::vector<FieldStats> stats_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<uint8_t> seen_this_;
};

}  // namespace

Result<std::vector<FieldSpec>> InferSchema(std::string_view sample, bool complete,
                                           const TextFormat& format, const std::string& name) {
  std::vector<FieldSpec> fields;
  if (format.format == Format::kLines) {
    fields.push_back({{"line", Type::kString}, false, {}});
    return fields;
  }
  uint64_t records = 0;
  if (format.format == Format::kCsv) {
    std::vector<CsvField> row;
    std::vector<FieldStats> stats;
    std::string scratch;
    bool first = true;
    if (sample.substr(0, 3) == "\xEF\xBB\xBF") sample.remove_prefix(3);
    while (!sample.empty()) {
      Framed f = FrameCsv(sample, complete, format.delimiter, row);
      if (f.kind == Framed::kNeedMore) break;
      std::string_view record = sample.substr(0, f.consumed);
      sample.remove_prefix(f.consumed);
      if (f.kind != Framed::kRecord) continue;
      if (first) {
        first = false;
        if (format.header) {
          for (const CsvField& field : row) {
            stats.push_back(FieldStats{HeaderName(record, field, scratch)});
          }
          continue;
        }
        for (size_t i = 0; i < row.size(); ++i) {
          stats.push_back(FieldStats{"column" + std::to_string(i)});
        }
      }
      if (row.size() != stats.size()) continue;  // a bad record: not evidence
      ++records;
      for (size_t i = 0; i < row.size(); ++i) {
        ++stats[i].present;
        if (!row[i].quoted && row[i].begin == row[i].end) continue;
        stats[i].AddText(FieldText(record, row[i], scratch));
      }
    }
    if (stats.empty()) {
      return InvalidArgument(name +
                             ": cannot infer a schema from an empty CSV input (declare "
                             "schema: in the source)");
    }
    std::unordered_set<std::string_view> seen;
    for (const FieldStats& s : stats) {
      if (s.name.empty()) {
        return InvalidArgument(name + ": the CSV header has an empty field name");
      }
      if (!seen.insert(s.name).second) {
        return InvalidArgument(name + ": the CSV header names '" + s.name + "' twice");
      }
      // A complete input without records (a header-only CSV) types nothing: NULL fits any use.
      fields.push_back({{s.name, records == 0 && complete ? Type::kNull : s.Choose()}, false, {}});
    }
    return fields;
  }
  JsonInference inference;
  while (!sample.empty()) {
    Framed f = FrameLine(sample, complete);
    if (f.kind == Framed::kNeedMore) break;
    std::string_view line = StripLineBreak(sample.substr(0, f.consumed));
    sample.remove_prefix(f.consumed);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    inference.StartRecord();
    if (inference.Walk(line)) ++records;  // bad lines are not evidence
  }
  for (FieldStats& s : inference.stats()) {
    Type t = s.Choose();
    // JSON strings stay text unless they hold timestamps: "12" in JSON is text, 12 a number.
    if ((t == Type::kInt64 || t == Type::kDouble || t == Type::kBool) && s.strings * 5 > s.values) {
      t = Type::kString;
    }
    fields.push_back({{s.name, t}, s.present < records, {}});
  }
  if (fields.empty()) {
    return InvalidArgument(name + ": cannot infer a schema: no JSON object in the first " +
                           "records (declare schema: in the source)");
  }
  return fields;
}

Result<std::string> ReadSample(const std::string& path, size_t max_bytes, size_t max_records,
                               bool* complete) {
  *complete = false;
  if (path != "-") {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
    std::string out(max_bytes, '\0');
    size_t got = 0;
    while (got < max_bytes) {
      ssize_t n = ::read(fd.get(), out.data() + got, max_bytes - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("read " + path);
      }
      if (n == 0) {
        *complete = true;
        break;
      }
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  }
  std::string out;
  size_t lines = 0;
  char buf[65536];
  while (out.size() < max_bytes && lines < max_records) {
    ssize_t n = ::read(STDIN_FILENO, buf, std::min(sizeof buf, max_bytes - out.size()));
    if (n < 0) {
      // A signal (Ctrl-C) while waiting for the first records: give up rather than wait on.
      if (errno == EINTR) return Cancelled("interrupted while reading the first records of stdin");
      return ErrnoError("read <stdin>");
    }
    if (n == 0) {
      *complete = true;
      break;
    }
    lines += static_cast<size_t>(std::count(buf, buf + n, '\n'));
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::unique_ptr<RowDecoder>> RowDecoder::Make(const TextFormat& format,
                                                     std::shared_ptr<const Schema> schema,
                                                     std::vector<bool> optional) {
  switch (format.format) {
    case Format::kCsv:
      return std::unique_ptr<RowDecoder>(std::make_unique<CsvDecoder>(format, std::move(schema)));
    case Format::kJsonl:
      return std::unique_ptr<RowDecoder>(std::make_unique<JsonDecoder>(
          std::move(schema), std::move(optional), format.only_schema_fields));
    case Format::kLines:
      if (schema->fields.size() != 1 || schema->fields[0].type != Type::kString) {
        return InvalidArgument("format lines reads one VARCHAR field per record");
      }
      return std::unique_ptr<RowDecoder>(std::make_unique<LinesDecoder>());
  }
  return InvalidArgument("unknown format");
}

// ---- The source

// One open input: its reader and the line number of its next record.
struct TextSource::Input {
  BlockReader reader;
  const TextInput* spec;
  uint64_t line = 1;
  bool discarding = false;  // dropping an over-long record through its line break
};

namespace {
struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
};
Result<FileIdentity> IdentityOf(int fd, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return ErrnoError("stat " + name);
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<uint64_t>(st.st_size)};
}
}  // namespace

bool TextSource::replayable() const {
  for (const TextInput& in : options_.inputs) {
    if (in.path == "-") return false;
  }
  return true;
}

void TextSource::Snapshot(stream::StateWriter& out) {
  out.Put<uint64_t>(next_);
  out.Put<uint8_t>(input_ ? 1 : 0);
  if (!input_) return;
  Input& in = *input_;
  Result<FileIdentity> id = IdentityOf(in.reader.fd(), in.spec->name);
  FileIdentity identity = id.ok() ? *id : FileIdentity{};
  out.Put(identity.dev);
  out.Put(identity.ino);
  out.Put<uint64_t>(in.reader.offset());
  out.Put(in.line);
  out.Put<uint8_t>(in.discarding ? 1 : 0);
}

Status TextSource::Restore(stream::StateReader& in) {
  const uint64_t next = in.Get<uint64_t>();
  const bool open = in.Get<uint8_t>() != 0;
  if (next > mine_.size() || (open && next == 0)) {
    return Corruption("the checkpoint's input position does not fit the inputs");
  }
  if (!open) {
    next_ = next;
    return Status::Ok();
  }
  const auto dev = in.Get<uint64_t>();
  const auto ino = in.Get<uint64_t>();
  const auto offset = in.Get<uint64_t>();
  const auto line = in.Get<uint64_t>();
  const bool discarding = in.Get<uint8_t>() != 0;
  next_ = next - 1;
  RETURN_IF_ERROR(OpenNext());
  Input& cur = *input_;
  ASSIGN_OR_RETURN(FileIdentity id, IdentityOf(cur.reader.fd(), cur.spec->name));
  if (id.dev != dev || id.ino != ino) {
    return InvalidArgument(cur.spec->name +
                           " is not the file the checkpoint was reading (it was replaced): start "
                           "over with --fresh");
  }
  if (id.size < offset) {
    return InvalidArgument(cur.spec->name + " is shorter (" + std::to_string(id.size) +
                           " bytes) than where the checkpoint was (" + std::to_string(offset) +
                           "): it was truncated or rewritten; start over with --fresh");
  }
  if (options_.format.format == Format::kCsv && options_.format.header && offset > 0) {
    RETURN_IF_ERROR(ReadHeader());
  }
  RETURN_IF_ERROR(cur.reader.Seek(offset));
  cur.line = line;
  cur.discarding = discarding;
  return Status::Ok();
}

Status TextSource::ReadHeader() {
  Input& in = *input_;
  BatchPtr scratch = options_.pool->Get(options_.schema);
  for (;;) {
    std::string_view data = in.reader.data();
    Framed f = decoder_->Frame(data, in.reader.eof());
    if (f.kind == Framed::kNeedMore) {
      if (in.reader.eof()) return Status::Ok();
      ASSIGN_OR_RETURN(BlockReader::Fill fill, in.reader.Read(0));
      (void)fill;
      continue;
    }
    if (f.kind == Framed::kRecord) {
      Result<bool> row = decoder_->Parse(data.substr(0, f.consumed), *scratch, error_);
      error_.clear();
      if (!row.ok()) return InvalidArgument(in.spec->name + ": " + row.status().message());
      return Status::Ok();
    }
    in.reader.Consume(f.consumed);  // blank lines before the header
  }
}

TextSource::TextSource(Options options) : options_(std::move(options)) {}
TextSource::~TextSource() = default;

Status TextSource::Open(int instance, int parallelism) {
  for (size_t i = static_cast<size_t>(instance); i < options_.inputs.size();
       i += static_cast<size_t>(parallelism)) {
    mine_.push_back(i);
  }
  ASSIGN_OR_RETURN(decoder_, RowDecoder::Make(options_.format, options_.schema, options_.optional));
  return Status::Ok();
}

Status TextSource::OpenNext() {
  const TextInput& in = options_.inputs[mine_[next_++]];
  Result<BlockReader> reader = BlockReader::OpenPath(in.path);
  if (!reader.ok()) return reader.status();
  input_ = std::make_unique<Input>(Input{std::move(*reader), &in, 1, false});
  if (in.path == "-" && options_.stdin_prefix) input_->reader.Preload(*options_.stdin_prefix);
  decoder_->StartInput();
  return Status::Ok();
}

Status TextSource::Drain(RecordBatch& b, size_t limit) {
  Input& in = *input_;
  while (b.rows < limit && batch_bytes_ < kMaxBatchBytes) {
    std::string_view data = in.reader.data();
    const bool eof = in.reader.eof();
    if (data.empty()) return Status::Ok();
    if (in.discarding) {
      const void* nl = std::memchr(data.data(), '\n', data.size());
      if (nl == nullptr) {
        in.reader.Consume(data.size());
        return Status::Ok();
      }
      in.reader.Consume(static_cast<size_t>(static_cast<const char*>(nl) - data.data()) + 1);
      ++in.line;
      in.discarding = false;
      continue;
    }
    Framed f = decoder_->Frame(data, eof);
    const int64_t origin = RecordBatch::MakeOrigin(in.spec->index, in.line);
    if (f.kind == Framed::kNeedMore) {
      // At the limit, the record may still end here (at end of input): only more is over.
      if (data.size() <= kMaxRecordBytes) return Status::Ok();  // read more
      in.discarding = true;
      if (!Reported(options_.bad->Report(
              {origin, "source", "record longer than " + std::to_string(kMaxRecordBytes) + " bytes",
               data.substr(0, 200)}))) {
        return Status::Ok();
      }
      continue;
    }
    std::string_view record = data.substr(0, f.consumed);
    in.line += f.lines;
    if (f.kind == Framed::kRecord) {
      Result<bool> row = decoder_->Parse(record, b, error_);
      if (!row.ok()) return InvalidArgument(in.spec->name + ": " + row.status().message());
      if (*row && options_.event_time_field >= 0 &&
          b.columns[static_cast<size_t>(options_.event_time_field)].IsNull(b.rows)) {
        // Rows without a time cannot take part in event time: reported where they are read.
        Truncate(b, b.rows);
        *row = false;
        error_ = "event time field '" +
                 options_.schema->fields[static_cast<size_t>(options_.event_time_field)].name +
                 "' is NULL";
      }
      if (*row) {
        ++b.rows;
        b.origin.push_back(origin);
      } else if (!error_.empty()) {
        Status st = options_.bad->Report({origin, "source", error_, StripLineBreak(record)});
        error_.clear();
        if (!Reported(std::move(st))) break;
      }
    } else if (f.kind == Framed::kBad) {
      if (!Reported(options_.bad->Report({origin, "source", f.error, StripLineBreak(record)}))) {
        break;
      }
    }
    in.reader.Consume(f.consumed);
    batch_bytes_ += f.consumed;
  }
  return Status::Ok();
}

bool TextSource::Reported(Status st) {
  if (st.ok()) return true;
  deferred_ = std::move(st);
  return false;
}

Result<stream::SourceState> TextSource::Next(stream::Batch<BatchPtr>& out, size_t max_records) {
  if (!deferred_.ok()) return deferred_;
  BatchPtr batch = options_.pool->Get(options_.schema);
  batch_bytes_ = 0;
  auto emit = [&](stream::SourceState state) {
    if (batch->rows > 0) out.records.push_back(std::move(batch));
    return state;
  };
  const size_t limit = std::max<size_t>(1, std::min(max_records, options_.batch_rows));
  for (;;) {
    if (!input_) {
      if (next_ >= mine_.size()) return emit(stream::SourceState::kEnd);
      RETURN_IF_ERROR(OpenNext());
    }
    RETURN_IF_ERROR(Drain(*batch, limit));
    if (!deferred_.ok()) {
      if (batch->rows == 0) return deferred_;
      return emit(stream::SourceState::kMore);
    }
    if (batch->rows >= limit || batch_bytes_ >= kMaxBatchBytes) {
      return emit(stream::SourceState::kMore);
    }
    Input& in = *input_;
    if (in.reader.eof() && (in.reader.data().empty() || in.discarding)) {
      input_.reset();
      continue;
    }
    // Regular files never wait; pipes wait briefly only when there is nothing to hand out.
    ASSIGN_OR_RETURN(BlockReader::Fill fill, in.reader.Read(batch->rows == 0 ? 100 : 0));
    if (fill == BlockReader::Fill::kNoData) {
      return emit(batch->rows == 0 ? stream::SourceState::kIdle : stream::SourceState::kMore);
    }
  }
}

void TextSource::Close() { input_.reset(); }

}  // namespace barge::pipeline
