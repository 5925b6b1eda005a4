#include "pipeline/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "barge/stream/io.h"
#include "base/file_util.h"
#include "launch/container_options.h"

namespace barge::pipeline {

std::string_view FormatName(Format f) {
  switch (f) {
    case Format::kCsv:
      return "csv";
    case Format::kJsonl:
      return "jsonl";
    case Format::kLines:
      return "lines";
  }
  return "?";
}

Status Spec::ErrorAt(Pos pos, std::string_view message) const {
  if (pos.set >= 0 && static_cast<size_t>(pos.set) < sets.size()) {
    return InvalidArgument("--set " + sets[static_cast<size_t>(pos.set)] + ": " +
                           std::string(message));
  }
  if (pos.line <= 0) return InvalidArgument(file + ": " + std::string(message));
  return InvalidArgument(file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.col) +
                         ": " + std::string(message));
}

Pos Spec::Locate(const Text& t, size_t offset) const {
  if (t.raw_offset < 0 || !text || static_cast<size_t>(t.raw_offset) >= text->size()) return t.pos;
  // Walk the raw text beside the value: characters that match advance both; anything else in
  // the raw text (quotes, escapes, indentation of folded or block lines) is skipped. Exact for
  // plain and simply quoted scalars, close for folded ones.
  const std::string& raw = *text;
  size_t j = static_cast<size_t>(t.raw_offset);
  int line = t.pos.line, col = t.pos.col;
  auto advance = [&] {
    if (raw[j] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    ++j;
  };
  size_t limit = std::min(raw.size(), j + t.value.size() * 4 + 256);
  for (size_t i = 0; i < offset && i < t.value.size() && j < limit;) {
    if (raw[j] == t.value[i]) ++i;
    advance();
  }
  // Skip what precedes the character itself (an opening quote, indentation).
  while (j < limit && offset < t.value.size() && raw[j] != t.value[offset]) advance();
  return {line, col};
}

std::string Spec::Resolve(const std::string& path) const {
  if (path.empty() || path == "-" || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

std::optional<int64_t> ParseDurationMs(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  size_t unit = 0;
  while (unit < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unit])) || text[unit] == '.')) {
    ++unit;
  }
  if (unit == 0) return std::nullopt;
  std::string_view number = text.substr(0, unit);
  std::string_view suffix = text.substr(unit);
  while (!suffix.empty() && suffix.front() == ' ') suffix.remove_prefix(1);
  double factor;
  if (suffix.empty() || suffix == "ms") {
    factor = 1;
  } else if (suffix == "s" || suffix == "sec" || suffix == "second" || suffix == "seconds") {
    factor = 1000;
  } else if (suffix == "m" || suffix == "min" || suffix == "minute" || suffix == "minutes") {
    factor = 60'000;
  } else if (suffix == "h" || suffix == "hour" || suffix == "hours") {
    factor = 3'600'000;
  } else if (suffix == "d" || suffix == "day" || suffix == "days") {
    factor = 86'400'000;
  } else {
    return std::nullopt;
  }
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  double ms = value * factor;
  if (!std::isfinite(ms) || ms > 9.2e18 || ms != std::floor(ms)) return std::nullopt;
  return static_cast<int64_t>(ms);
}

namespace {

// Errors while reading the YAML; caught at the module boundary (LoadSpec) and turned into a
// Status. Never crosses it.
struct SpecError {
  Status status;
};

constexpr std::string_view kSetTagPrefix = "!barge-set-";

// Tags every node of a --set value so that errors in it name the --set argument, not a line of
// the file.
void TagSetValue(YAML::Node node, size_t index) {
  if (node.IsScalar() || node.IsNull()) {
    node.SetTag(std::string(kSetTagPrefix) + std::to_string(index));
  } else if (node.IsSequence()) {
    for (YAML::Node child : node) TagSetValue(child, index);
  } else if (node.IsMap()) {
    for (auto it : node) TagSetValue(it.second, index);
  }
  if (!node.IsScalar()) node.SetTag(std::string(kSetTagPrefix) + std::to_string(index));
}

class Reader {
 public:
  Reader(Spec& spec, const LoadOptions& options) : spec_(spec), options_(options) {}

  [[noreturn]] void Fail(const YAML::Node& at, std::string_view message) const {
    throw SpecError{ErrorAt(at, message)};
  }
  [[noreturn]] void FailAt(Pos pos, std::string_view message) const {
    throw SpecError{spec_.ErrorAt(pos, message)};
  }

  Status ErrorAt(const YAML::Node& at, std::string_view message) const {
    return spec_.ErrorAt(PosOf(at), message);
  }

  static Pos PosOf(const YAML::Node& node) {
    const std::string& tag = node.Tag();
    if (tag.rfind(kSetTagPrefix, 0) == 0) {
      return {0, 0, std::stoi(tag.substr(kSetTagPrefix.size()))};
    }
    YAML::Mark m = node.Mark();
    if (m.is_null()) return {};
    return {m.line + 1, m.column + 1};
  }
  // Where a map's key is: keys added by --set have no place in the file, their values do.
  template <class Entry>
  static YAML::Node KeyNode(const Entry& it) {
    return it.first.Mark().is_null() ? it.second : it.first;
  }

  Text TextOf(const YAML::Node& node, std::string_view what) const {
    if (node.IsNull()) {
      // `{p: substr(line, 1, 3)}` splits at the commas; an unquoted NULL is YAML's null.
      Fail(node, std::string(what) +
                     " has no value (in a { } map commas separate entries: quote a value "
                     "that holds commas, \"substr(line, 1, 3)\"; write NULL as \"NULL\")");
    }
    if (!node.IsScalar()) Fail(node, std::string(what) + " must be a single value");
    Text t;
    t.value = node.Scalar();
    t.pos = PosOf(node);
    if (node.Tag().rfind(kSetTagPrefix, 0) != 0) t.raw_offset = node.Mark().pos;
    return t;
  }
  std::string Str(const YAML::Node& node, std::string_view what) const {
    return TextOf(node, what).value;
  }

  int64_t Int(const YAML::Node& node, std::string_view what, int64_t min, int64_t max) const {
    std::string s = Str(node, what);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) {
      Fail(node, std::string(what) + ": expected a whole number, got '" + s + "'");
    }
    if (v < min || v > max) {
      Fail(node, std::string(what) + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + s);
    }
    return v;
  }

  // A TCP address, HOST:PORT (resolved when the pipeline runs).
  std::string Address(const YAML::Node& node, std::string_view what) const {
    std::string s = Str(node, what);
    if (Status st = stream::CheckTcpAddress(s); !st.ok()) Fail(node, st.message());
    return s;
  }

  bool Bool(const YAML::Node& node, std::string_view what) const {
    std::string s = Str(node, what);
    std::string lower;
    for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "true" || lower == "yes" || lower == "on") return true;
    if (lower == "false" || lower == "no" || lower == "off") return false;
    Fail(node, std::string(what) + ": expected true or false, got '" + s + "'");
  }

  int64_t Duration(const YAML::Node& node, std::string_view what) const {
    std::string s = Str(node, what);
    std::optional<int64_t> ms = ParseDurationMs(s);
    if (!ms) {
      Fail(node, "bad duration '" + s + "' for " + std::string(what) +
                     " (expected a number with a unit: ms, s, m, h or d, e.g. 10s)");
    }
    return *ms;
  }

  Format FormatOf(const YAML::Node& node) const {
    std::string s = Str(node, "format");
    if (s == "csv") return Format::kCsv;
    if (s == "jsonl" || s == "json" || s == "ndjson") return Format::kJsonl;
    if (s == "lines" || s == "text") return Format::kLines;
    Fail(node, "unknown format '" + s + "' (expected csv, jsonl or lines)");
  }

  char Delimiter(const YAML::Node& node) const {
    std::string s = Str(node, "delimiter");
    if (s == "\\t" || s == "tab") return '\t';
    if (s.size() != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r') {
      Fail(node,
           "delimiter must be one character other than a quote or line break, got '" + s + "'");
    }
    return s[0];
  }

  // Checks that `node` is a map whose keys are all in `allowed` (each at most once).
  void CheckMap(const YAML::Node& node, std::string_view what,
                const std::vector<std::string>& allowed) const {
    if (!node.IsMap()) Fail(node, std::string(what) + " must be a map of keys to values");
    std::set<std::string> seen;
    for (auto it : node) {
      std::string key = it.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string message = "unknown key '" + key + "' in " + std::string(what);
        if (auto hint = Suggest(key, allowed)) {
          message += " (did you mean '" + *hint + "'?)";
        } else {
          message += " (expected one of: " + Join(allowed) + ")";
        }
        Fail(KeyNode(it), message);
      }
      if (!seen.insert(key).second)
        Fail(KeyNode(it), "duplicate key '" + key + "' in " + std::string(what));
    }
  }

  // The one key of `node` that names its kind, among `kinds`.
  std::pair<std::string, YAML::Node> KindOf(const YAML::Node& node, std::string_view what,
                                            const std::vector<std::string>& kinds) const {
    std::string found;
    YAML::Node value;
    for (auto it : node) {
      std::string key = it.first.Scalar();
      if (std::find(kinds.begin(), kinds.end(), key) == kinds.end()) continue;
      if (!found.empty()) {
        Fail(KeyNode(it), std::string(what) + " has both '" + found + "' and '" + key +
                              "': give one per " + std::string(what));
      }
      found = key;
      value = it.second;
    }
    if (found.empty()) {
      Fail(node, std::string(what) + " needs one of: " + Join(kinds));
    }
    return {found, value};
  }

  static std::string Join(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
  }

  void ReadTop(const YAML::Node& root) {
    if (!root.IsMap()) Fail(root, "a pipeline spec is a map with source, steps and sink");
    CheckMap(root, "the spec",
             {"name", "parallelism", "batch_size", "source", "sources", "steps", "sink", "on_error",
              "checkpoint"});
    if (root["name"]) spec_.name = Str(root["name"], "name");
    if (root["parallelism"]) {
      spec_.parallelism = static_cast<int>(Int(root["parallelism"], "parallelism", 1, 1024));
      spec_.parallelism_pos = PosOf(root["parallelism"]);
    }
    if (options_.parallelism > 0) spec_.parallelism = options_.parallelism;
    if (root["batch_size"]) {
      spec_.batch_size = static_cast<size_t>(Int(root["batch_size"], "batch_size", 1, 1 << 20));
    }
    if (root["source"] && root["sources"]) {
      Fail(root["sources"], "give either 'source' or 'sources', not both");
    }
    if (root["source"]) {
      spec_.sources.push_back(ReadSource(root["source"], "source"));
    } else if (root["sources"]) {
      const YAML::Node& list = root["sources"];
      if (!list.IsSequence() || list.size() == 0) {
        Fail(list, "sources must be a list of one or more sources");
      }
      for (size_t i = 0; i < list.size(); ++i) {
        spec_.sources.push_back(ReadSource(list[i], "source#" + std::to_string(i + 1)));
      }
    } else {
      Fail(root, "the spec has no source (add 'source:' with file, stdin, tcp or generate)");
    }
    if (root["steps"]) {
      const YAML::Node& steps = root["steps"];
      if (steps.IsNull()) {
        // No steps: records go from source to sink.
      } else if (!steps.IsSequence()) {
        Fail(steps, "steps must be a list (each item starting with '- ')");
      } else {
        for (size_t i = 0; i < steps.size(); ++i) spec_.steps.push_back(ReadStep(steps[i]));
      }
    }
    if (root["sink"]) {
      spec_.sink = ReadSink(root["sink"]);
    } else {
      spec_.sink.kind = SinkSpec::Kind::kStdout;
      spec_.sink.pos = PosOf(root);
    }
    if (root["on_error"]) ReadOnError(root["on_error"]);
    if (root["checkpoint"]) ReadCheckpoint(root["checkpoint"]);
    if (spec_.name.empty()) {
      std::string base = spec_.file.substr(spec_.file.rfind('/') + 1);
      spec_.name = base.substr(0, base.find('.'));
    }
  }

  SourceSpec ReadSource(const YAML::Node& node, const std::string& default_name) {
    SourceSpec s;
    s.pos = PosOf(node);
    s.name = default_name;
    CheckMap(node, "source",
             {"file", "stdin", "tcp", "generate", "event_time", "schema", "parallelism", "name"});
    auto [kind, value] = KindOf(node, "source", {"file", "stdin", "tcp", "generate"});
    if (kind == "file") {
      s.kind = SourceSpec::Kind::kFile;
      if (value.IsScalar()) {
        s.path = TextOf(value, "file");
        s.format = FormatFromPath(s.path.value);
        s.delimiter = DelimiterFromPath(s.path.value);
      } else {
        CheckMap(value, "file", {"path", "format", "delimiter", "header"});
        if (!value["path"]) Fail(value, "file needs a path");
        s.path = TextOf(value["path"], "path");
        s.format = FormatFromPath(s.path.value);
        s.delimiter = DelimiterFromPath(s.path.value);
        ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, &s.header);
      }
      if (s.path.value.empty()) Fail(value, "file needs a path");
    } else if (kind == "stdin") {
      s.kind = SourceSpec::Kind::kStdin;
      s.path.value = "-";
      s.format = Format::kLines;
      if (value.IsScalar() && !value.Scalar().empty()) {
        s.format = FormatOf(value);
        s.format_pos = PosOf(value);
      } else if (value.IsMap()) {
        CheckMap(value, "stdin", {"format", "delimiter", "header"});
        ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, &s.header);
      }
    } else if (kind == "tcp") {
      s.kind = SourceSpec::Kind::kTcp;
      s.format = Format::kLines;
      CheckMap(value, "tcp",
               {"listen", "connect", "format", "delimiter", "header", "max_connections"});
      if (value["listen"] && value["connect"]) Fail(value, "tcp takes listen or connect, not both");
      if (value["listen"]) s.listen = Address(value["listen"], "listen");
      if (value["connect"]) s.connect = Address(value["connect"], "connect");
      if (s.listen.empty() && s.connect.empty()) {
        Fail(value, "tcp needs listen: HOST:PORT or connect: HOST:PORT");
      }
      if (value["max_connections"]) {
        s.max_connections =
            static_cast<int>(Int(value["max_connections"], "max_connections", 0, 1 << 20));
      }
      ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, &s.header);
    } else {
      s.kind = SourceSpec::Kind::kGenerate;
      if (!value.IsMap() && !value.IsNull())
        Fail(value, "generate must be a map (records, keys, seed)");
      if (value.IsMap()) {
        CheckMap(value, "generate",
                 {"records", "keys", "seed", "records_per_second", "start", "max_disorder"});
        if (value["records"]) {
          s.records = static_cast<uint64_t>(
              Int(value["records"], "records", 0, std::numeric_limits<int64_t>::max()));
        }
        if (value["keys"]) {
          s.keys = static_cast<uint64_t>(
              Int(value["keys"], "keys", 1, std::numeric_limits<int64_t>::max()));
        }
        if (value["seed"]) {
          s.seed = static_cast<uint64_t>(
              Int(value["seed"], "seed", 0, std::numeric_limits<int64_t>::max()));
        }
        if (value["records_per_second"]) {
          s.records_per_second = static_cast<uint64_t>(
              Int(value["records_per_second"], "records_per_second", 1, int64_t{1} << 40));
        }
        if (value["start"]) {
          s.start_ms = Int(value["start"], "start", 0, int64_t{1} << 52);
        }
        if (value["max_disorder"])
          s.max_disorder_ms = Duration(value["max_disorder"], "max_disorder");
      }
    }
    if (node["name"]) s.name = Str(node["name"], "name");
    if (node["parallelism"]) {
      s.parallelism = static_cast<int>(Int(node["parallelism"], "parallelism", 1, 1024));
      s.parallelism_pos = PosOf(node["parallelism"]);
    }
    if (node["schema"]) ReadSchema(node["schema"], s);
    if (node["event_time"]) {
      const YAML::Node& et = node["event_time"];
      EventTimeSpec e;
      if (et.IsScalar()) {
        e.field = TextOf(et, "event_time");
      } else {
        CheckMap(et, "event_time", {"field", "max_delay", "idle"});
        if (!et["field"]) Fail(et, "event_time needs a field (the record's time in milliseconds)");
        e.field = TextOf(et["field"], "field");
        if (et["max_delay"]) e.max_delay_ms = Duration(et["max_delay"], "max_delay");
        if (et["idle"]) e.idle_ms = Duration(et["idle"], "idle");
      }
      s.event_time = e;
    }
    if (s.kind == SourceSpec::Kind::kGenerate && !s.event_time) {
      // The generator's records carry their time; windows work without saying so, and
      // records moved back by max_disorder are on time.
      EventTimeSpec e;
      e.field.value = "ts";
      e.field.pos = s.pos;
      e.max_delay_ms = s.max_disorder_ms;
      s.event_time = e;
    }
    return s;
  }

  static Format FormatFromPath(const std::string& path) {
    auto ends = [&](std::string_view suffix) {
      return path.size() >= suffix.size() &&
             path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends(".csv") || ends(".tsv")) return Format::kCsv;
    if (ends(".jsonl") || ends(".ndjson") || ends(".json")) return Format::kJsonl;
    return Format::kLines;
  }
  // Tab-separated values are CSV with a tab delimiter.
  static char DelimiterFromPath(const std::string& path) {
    return path.size() >= 4 && path.compare(path.size() - 4, 4, ".tsv") == 0 ? '\t' : ',';
  }

  void ReadFormatOptions(const YAML::Node& node, Format& format, Pos& format_pos, char& delimiter,
                         bool* header) {
    if (node["format"]) {
      format = FormatOf(node["format"]);
      format_pos = PosOf(node["format"]);
    }
    if (node["delimiter"]) {
      if (format != Format::kCsv) Fail(node["delimiter"], "delimiter applies to format csv only");
      delimiter = Delimiter(node["delimiter"]);
    }
    if (node["header"] && header != nullptr) {
      if (format != Format::kCsv) Fail(node["header"], "header applies to format csv only");
      *header = Bool(node["header"], "header");
    }
  }

  void ReadSchema(const YAML::Node& node, SourceSpec& s) {
    s.schema_pos = PosOf(node);
    if (!node.IsMap() || node.size() == 0) {
      Fail(node, "schema must be a map of field names to types, e.g. {ts: BIGINT, user: VARCHAR}");
    }
    std::vector<FieldSpec> fields;
    std::set<std::string> names;
    for (auto it : node) {
      FieldSpec f;
      f.field.name = it.first.Scalar();
      f.pos = PosOf(KeyNode(it));
      if (!names.insert(f.field.name).second) {
        Fail(KeyNode(it), "duplicate field '" + f.field.name + "' in schema");
      }
      YAML::Node type = it.second;
      if (type.IsMap()) {
        CheckMap(type, "schema field", {"type", "optional"});
        if (!type["type"]) Fail(type, "schema field '" + f.field.name + "' needs a type");
        if (type["optional"]) f.optional = Bool(type["optional"], "optional");
        type = type["type"];
      }
      std::string name = Str(type, "type");
      std::optional<Type> t = ParseTypeName(name);
      if (!t) {
        Fail(type, "unknown type '" + name + "' for field '" + f.field.name +
                       "' (expected BIGINT, DOUBLE, BOOLEAN, VARCHAR or TIMESTAMP)");
      }
      f.field.type = *t;
      fields.push_back(std::move(f));
    }
    s.schema = std::move(fields);
  }

  StepSpec ReadStep(const YAML::Node& node) {
    StepSpec st;
    st.pos = PosOf(node);
    if (!node.IsMap()) {
      Fail(node,
           "a step is a map such as '- filter: EXPRESSION' (one of filter, select, key_by, "
           "window, aggregate)");
    }
    static const std::vector<std::string> kKinds = {"filter",    "select", "key_by", "window",
                                                    "aggregate", "reduce", "union",  "stage"};
    std::vector<std::string> allowed = kKinds;
    allowed.insert(allowed.end(), {"name", "parallelism"});
    // Unknown keys first, with a hint against step kinds too ("fliter").
    for (auto it : node) {
      std::string key = it.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string message = "unknown step '" + key + "'";
      if (auto hint = Suggest(key, allowed)) {
        message += " (did you mean '" + *hint + "'?)";
      } else {
        message += " (expected one of: " + Join(kKinds) + ")";
      }
      Fail(KeyNode(it), message);
    }
    // `window` may carry its `aggregate` in the same item.
    std::vector<std::string> kinds = {"filter", "select", "key_by", "window",
                                      "reduce", "union",  "stage"};
    if (!node["window"]) kinds.push_back("aggregate");
    auto [kind, value] = KindOf(node, "step", kinds);
    st.keyword = kind;
    CheckMap(node, "step", allowed);
    if (node["name"]) st.name = Str(node["name"], "name");
    if (node["parallelism"]) {
      st.parallelism = static_cast<int>(Int(node["parallelism"], "parallelism", 1, 1024));
      st.parallelism_pos = PosOf(node["parallelism"]);
    }
    if (kind == "filter") {
      st.kind = StepSpec::Kind::kFilter;
      st.filter = TextOf(value, "filter");
    } else if (kind == "select") {
      st.kind = StepSpec::Kind::kSelect;
      ReadSelect(value, st);
    } else if (kind == "stage") {
      st.kind = StepSpec::Kind::kStage;
      st.stage = ReadStage(value, st);
    } else if (kind == "union") {
      st.kind = StepSpec::Kind::kUnion;
      if (value.IsMap()) {
        st.union_sources.push_back(ReadSource(value, "union"));
      } else if (value.IsSequence() && value.size() > 0) {
        for (const YAML::Node& source : value)
          st.union_sources.push_back(ReadSource(source, "union"));
      } else {
        Fail(value, "union takes a source (such as {file: more.csv}) or a list of them");
      }
      if (st.parallelism != 0) {
        FailAt(st.parallelism_pos,
               "union is not an operator of its own: set parallelism on its "
               "source or on the step after it");
      }
    } else if (kind == "key_by") {
      st.kind = StepSpec::Kind::kKeyBy;
      if (value.IsScalar()) {
        st.keys.push_back(TextOf(value, "key_by"));
      } else if (value.IsSequence() && value.size() > 0) {
        for (const YAML::Node& k : value) st.keys.push_back(TextOf(k, "a key_by field"));
      } else {
        Fail(value, "key_by must be a field name or a list of field names");
      }
      if (st.parallelism != 0) {
        FailAt(st.parallelism_pos,
               "key_by is not an operator of its own: set parallelism on the step after it");
      }
    } else if (kind == "window") {
      st.kind = StepSpec::Kind::kWindow;
      st.window = ReadWindow(value);
      if (!node["aggregate"]) {
        Fail(node, "window needs an aggregate in the same step, e.g. 'aggregate: {n: count(*)}'");
      }
      st.aggregates = ReadNamedExprs(node["aggregate"], "aggregate");
    } else {
      st.kind = StepSpec::Kind::kAggregate;
      st.aggregates = ReadNamedExprs(value, kind);
    }
    return st;
  }

  StageSpec ReadStage(const YAML::Node& value, StepSpec& st) {
    StageSpec g;
    if (value.IsScalar()) {
      g.image = TextOf(value, "stage");
      return g;
    }
    CheckMap(value, "stage",
             {"image", "command", "protocol", "parallelism", "memory", "cpus", "env", "volumes",
              "restart", "network", "user", "workdir", "output", "ring", "batch"});
    if (!value["image"]) Fail(value, "a stage needs an image");
    g.image = TextOf(value["image"], "image");
    if (g.image.value.empty()) Fail(value["image"], "a stage needs an image");
    if (const YAML::Node& c = value["command"]) {
      if (c.IsScalar()) {
        // A string runs through the shell, as a Containerfile's shell form.
        g.command = {"/bin/sh", "-c", Str(c, "command")};
      } else if (c.IsSequence() && c.size() > 0) {
        for (const YAML::Node& w : c) g.command.push_back(Str(w, "a command word"));
        if (g.command[0].empty()) Fail(c[0], "the command's first word must name a program");
      } else {
        Fail(c,
             "command must be a list of words, such as [python3, /app/stage.py], or a string "
             "for the shell");
      }
    }
    if (const YAML::Node& p = value["protocol"]) {
      std::string protocol = Str(p, "protocol");
      if (protocol == "shm") {
        g.protocol = StageSpec::Protocol::kShm;
      } else if (protocol == "lines") {
        g.protocol = StageSpec::Protocol::kLines;
      } else {
        Fail(p, "unknown protocol '" + protocol + "' (expected shm or lines)");
      }
    }
    if (const YAML::Node& p = value["parallelism"]) {
      if (st.parallelism != 0) Fail(p, "parallelism is given twice for this step");
      st.parallelism = static_cast<int>(Int(p, "parallelism", 1, 1024));
      st.parallelism_pos = PosOf(p);
    }
    if (const YAML::Node& m = value["memory"]) {
      g.memory = Str(m, "memory");
      if (Result<int64_t> bytes = launch::ParseMemory(g.memory, "memory"); !bytes.ok()) {
        Fail(m, bytes.status().message());
      }
    }
    if (const YAML::Node& c = value["cpus"]) {
      std::string text = Str(c, "cpus");
      char* end = nullptr;
      g.cpus = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || !(g.cpus > 0)) {
        Fail(c, "cpus must be a positive number, such as 1 or 0.5, got '" + text + "'");
      }
      g.cpus_pos = PosOf(c);  // the planner checks it against this machine's CPUs
    }
    if (const YAML::Node& e = value["env"]) {
      if (!e.IsMap()) Fail(e, "env must be a map of names to values, such as {SCALE: \"2\"}");
      for (auto it : e) {
        std::string name = it.first.Scalar();
        if (Status st = launch::CheckEnvName(name); !st.ok()) {
          Fail(KeyNode(it), "env: " + st.message());
        }
        if (name.rfind("BARGE_STAGE_", 0) == 0) {
          Fail(KeyNode(it), "env: " + name + " is set by barge in every replica");
        }
        g.env.push_back(name + "=" + Str(it.second, "an env value"));
      }
    }
    if (const YAML::Node& v = value["volumes"]) {
      if (!v.IsSequence()) Fail(v, "volumes must be a list, such as [models:/models:ro]");
      std::set<std::string> destinations;
      for (const YAML::Node& x : v) {
        std::string text = Str(x, "a volume");
        // Its form here; whether a host path exists, when the pipeline is planned.
        Result<runtime::VolumeSpec> parsed = runtime::ParseVolumeSpec(text);
        if (!parsed.ok()) Fail(x, parsed.status().message());
        const std::string& dst = parsed->destination;
        for (std::string_view reserved : {kStageDirMount, kStageSdkMount}) {
          if (dst == reserved || dst.rfind(std::string(reserved) + "/", 0) == 0 ||
              reserved.rfind(dst + "/", 0) == 0) {
            Fail(x, "invalid volume '" + text + "': barge mounts the stage's rings at " +
                        std::string(kStageDirMount) + " and its SDKs at " +
                        std::string(kStageSdkMount) +
                        " (mount the volume elsewhere, such as /data)");
          }
        }
        if (!destinations.insert(dst).second) {
          Fail(x, "invalid volume '" + text + "': " + dst + " is already a volume's destination");
        }
        g.volumes.push_back(text);
        g.volume_pos.push_back(PosOf(x));
      }
    }
    if (const YAML::Node& r = value["restart"]) {
      g.restart = static_cast<int>(Int(r, "restart", 0, 1000000));
    }
    if (const YAML::Node& n = value["network"]) {
      g.network = Str(n, "network");
      if (g.network != "none" && g.network != "host") {
        Fail(n, "network must be none or host, got '" + g.network + "'");
      }
    }
    if (const YAML::Node& u = value["user"]) g.user = Str(u, "user");
    if (const YAML::Node& w = value["workdir"]) {
      g.workdir = Str(w, "workdir");
      if (Status st = launch::CheckWorkdir(g.workdir, "workdir"); !st.ok()) Fail(w, st.message());
    }
    if (const YAML::Node& b = value["batch"]) {
      g.message_rows = static_cast<size_t>(Int(b, "batch", 1, 1 << 24));
    }
    if (const YAML::Node& r = value["ring"]) {
      std::string text = Str(r, "ring");
      uint64_t bytes = 0;
      size_t k = 0;
      while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) {
        bytes = bytes * 10 + static_cast<uint64_t>(text[k++] - '0');
      }
      std::string unit = text.substr(k);
      if (unit == "k" || unit == "K") bytes <<= 10;
      if (unit == "m" || unit == "M") bytes <<= 20;
      if (unit == "g" || unit == "G") bytes <<= 30;
      bool known = unit.empty() || unit == "k" || unit == "K" || unit == "m" || unit == "M" ||
                   unit == "g" || unit == "G";
      if (k == 0 || !known || bytes < (1u << 20) || bytes > (uint64_t{1} << 32) ||
          (bytes & (bytes - 1)) != 0) {
        Fail(r, "ring must be a power of two from 1m to 4g, such as 32m, got '" + text + "'");
      }
      g.ring_bytes = bytes;
    }
    if (const YAML::Node& o = value["output"]) {
      g.output_pos = PosOf(o);
      if (!o.IsMap() || o.size() == 0) {
        Fail(o, "output must be a map of field names to types (\"*\": true keeps the input's)");
      }
      SourceSpec tmp;
      YAML::Node fields(YAML::NodeType::Map);
      for (auto it : o) {
        if (it.first.Scalar() == "*") {
          if (!Bool(it.second, "'*'")) Fail(it.second, "'*' takes true (keep the input's fields)");
          g.output_star = true;
        } else {
          fields[it.first] = it.second;
        }
      }
      if (fields.size() > 0) {
        ReadSchema(fields, tmp);
        g.output = *tmp.schema;
        // ReadSchema reports positions of the copied nodes: keep the original ones.
        size_t i = 0;
        for (auto it : o) {
          if (it.first.Scalar() == "*") continue;
          (*g.output)[i++].pos = PosOf(KeyNode(it));
        }
      } else {
        g.output = std::vector<FieldSpec>{};
      }
    }
    return g;
  }

  void ReadSelect(const YAML::Node& value, StepSpec& st) {
    auto add = [&](const YAML::Node& key, const YAML::Node& expr) {
      std::string name = key.Scalar();
      if (name == "*") {
        if (!Bool(expr, "'*'")) Fail(expr, "'*' takes true (keep the other fields)");
        st.select_star = true;
        return;
      }
      for (const NamedExpr& e : st.select) {
        if (e.name == name) Fail(key, "field '" + name + "' is selected twice");
      }
      st.select.push_back({name, PosOf(key), TextOf(expr, "the expression of '" + name + "'")});
    };
    if (value.IsMap()) {
      for (auto it : value) add(it.first, it.second);
    } else if (value.IsSequence()) {
      for (const YAML::Node& item : value) {
        if (item.IsScalar()) {
          Text field = TextOf(item, "a select item");
          if (field.value == "*") {
            st.select_star = true;
            continue;
          }
          st.select.push_back({field.value, field.pos, field});
        } else if (item.IsMap()) {
          for (auto it : item) add(it.first, it.second);
        } else {
          Fail(item, "a select item is a field name, '*', or 'name: expression'");
        }
      }
    } else {
      Fail(value, "select must be a map of 'name: expression' (or a list of field names)");
    }
    if (st.select.empty() && !st.select_star) Fail(value, "select selects nothing");
  }

  std::vector<NamedExpr> ReadNamedExprs(const YAML::Node& value, std::string_view what) {
    if (!value.IsMap() || value.size() == 0) {
      Fail(value, std::string(what) +
                      " must be a map of 'name: function(field)', e.g. {orders: count(*), "
                      "total: sum(amount)}");
    }
    std::vector<NamedExpr> out;
    std::set<std::string> names;
    for (auto it : value) {
      std::string name = it.first.Scalar();
      if (!names.insert(name).second)
        Fail(KeyNode(it), "duplicate name '" + name + "' in " + std::string(what));
      out.push_back({name, PosOf(KeyNode(it)), TextOf(it.second, "the aggregate '" + name + "'")});
    }
    return out;
  }

  WindowSpec ReadWindow(const YAML::Node& value) {
    WindowSpec w;
    w.pos = PosOf(value);
    CheckMap(value, "window",
             {"tumbling", "sliding", "session", "allowed_lateness", "late", "offset"});
    auto [kind, spec] = KindOf(value, "window", {"tumbling", "sliding", "session"});
    if (kind == "tumbling") {
      w.kind = WindowSpec::Kind::kTumbling;
      if (spec.IsMap()) {
        CheckMap(spec, "tumbling", {"size", "offset"});
        if (!spec["size"]) Fail(spec, "tumbling needs a size");
        w.size_ms = Duration(spec["size"], "size");
        if (spec["offset"]) w.offset_ms = Duration(spec["offset"], "offset");
      } else {
        w.size_ms = Duration(spec, "tumbling");
      }
      if (w.size_ms <= 0) Fail(spec, "tumbling window size must be positive");
    } else if (kind == "sliding") {
      w.kind = WindowSpec::Kind::kSliding;
      CheckMap(spec, "sliding", {"size", "slide", "offset"});
      if (!spec["size"] || !spec["slide"]) Fail(spec, "sliding needs size and slide");
      w.size_ms = Duration(spec["size"], "size");
      w.slide_ms = Duration(spec["slide"], "slide");
      if (spec["offset"]) w.offset_ms = Duration(spec["offset"], "offset");
      if (w.size_ms <= 0) Fail(spec["size"], "sliding window size must be positive");
      if (w.slide_ms <= 0) Fail(spec["slide"], "sliding window slide must be positive");
      if (w.size_ms / w.slide_ms > 10000) {
        Fail(spec, "sliding window puts each record in more than 10000 windows (size / slide)");
      }
    } else {
      w.kind = WindowSpec::Kind::kSession;
      if (spec.IsMap()) {
        CheckMap(spec, "session", {"gap"});
        if (!spec["gap"]) Fail(spec, "session needs a gap");
        w.gap_ms = Duration(spec["gap"], "gap");
      } else {
        w.gap_ms = Duration(spec, "session");
      }
      if (w.gap_ms <= 0) Fail(spec, "session gap must be positive");
    }
    if (value["offset"]) w.offset_ms = Duration(value["offset"], "offset");
    if (value["allowed_lateness"]) {
      w.lateness_ms = Duration(value["allowed_lateness"], "allowed_lateness");
    }
    if (value["late"]) {
      w.late_path = Str(value["late"], "late");
      if (w.late_path.empty()) Fail(value["late"], "late needs a path");
    }
    return w;
  }

  SinkSpec ReadSink(const YAML::Node& node) {
    SinkSpec s;
    s.pos = PosOf(node);
    if (node.IsScalar() && node.Scalar() == "stdout") {
      s.kind = SinkSpec::Kind::kStdout;
      return s;
    }
    CheckMap(node, "sink", {"file", "stdout", "tcp", "parallelism"});
    auto [kind, value] = KindOf(node, "sink", {"file", "stdout", "tcp"});
    if (kind == "file") {
      s.kind = SinkSpec::Kind::kFile;
      if (value.IsScalar()) {
        s.path = TextOf(value, "file");
        s.format = ReaderFormatForSink(s.path.value);
        s.delimiter = DelimiterFromPath(s.path.value);
      } else {
        CheckMap(value, "file", {"path", "format", "delimiter"});
        if (!value["path"]) Fail(value, "file needs a path");
        s.path = TextOf(value["path"], "path");
        s.format = ReaderFormatForSink(s.path.value);
        s.delimiter = DelimiterFromPath(s.path.value);
        ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, nullptr);
      }
      if (s.path.value.empty()) Fail(value, "file needs a path");
    } else if (kind == "stdout") {
      s.kind = SinkSpec::Kind::kStdout;
      if (value.IsScalar() && !value.Scalar().empty()) {
        s.format = FormatOf(value);
        s.format_pos = PosOf(value);
      } else if (value.IsMap()) {
        CheckMap(value, "stdout", {"format", "delimiter"});
        ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, nullptr);
      }
    } else {
      s.kind = SinkSpec::Kind::kTcp;
      CheckMap(value, "tcp", {"connect", "format", "delimiter"});
      if (!value["connect"]) Fail(value, "a tcp sink needs connect: HOST:PORT");
      s.connect = Address(value["connect"], "connect");
      ReadFormatOptions(value, s.format, s.format_pos, s.delimiter, nullptr);
    }
    if (node["parallelism"]) {
      s.parallelism = static_cast<int>(Int(node["parallelism"], "parallelism", 1, 1024));
      s.parallelism_pos = PosOf(node["parallelism"]);
    }
    return s;
  }

  static Format ReaderFormatForSink(const std::string& path) {
    Format f = FormatFromPath(path);
    return f == Format::kLines && path.find('.') == std::string::npos ? Format::kJsonl : f;
  }

  void ReadCheckpoint(const YAML::Node& node) {
    CheckpointSpec c;
    c.pos = PosOf(node);
    CheckMap(node, "checkpoint", {"interval", "dir", "keep"});
    if (!node["interval"]) Fail(node, "checkpoint needs an interval (e.g. interval: 1s)");
    c.interval_ms = Duration(node["interval"], "interval");
    if (c.interval_ms < 10) Fail(node["interval"], "checkpoint interval must be at least 10ms");
    if (node["dir"]) {
      c.dir = Str(node["dir"], "dir");
      if (c.dir.empty()) Fail(node["dir"], "checkpoint dir needs a path");
    }
    if (node["keep"]) c.keep = static_cast<int>(Int(node["keep"], "keep", 1, 1000));
    spec_.checkpoint = c;
  }

  void ReadOnError(const YAML::Node& node) {
    OnErrorSpec& e = spec_.on_error;
    e.pos = PosOf(node);
    if (node.IsScalar()) {
      std::string mode = node.Scalar();
      if (mode == "fail") {
        e.mode = OnErrorSpec::Mode::kFail;
      } else if (mode == "skip") {
        e.mode = OnErrorSpec::Mode::kSkip;
      } else {
        Fail(node, "on_error must be fail, skip or {dead_letter: PATH}, got '" + mode + "'");
      }
      return;
    }
    CheckMap(node, "on_error", {"dead_letter"});
    if (!node["dead_letter"]) Fail(node, "on_error must be fail, skip or {dead_letter: PATH}");
    e.mode = OnErrorSpec::Mode::kDeadLetter;
    e.path = Str(node["dead_letter"], "dead_letter");
    if (e.path.empty()) Fail(node["dead_letter"], "dead_letter needs a path");
  }

 private:
  Spec& spec_;
  const LoadOptions& options_;
};

// Applies `PATH=VALUE` to the YAML tree.
Status ApplySet(YAML::Node root, const std::string& set, size_t index) {
  size_t eq = set.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument("--set " + set + ": expected PATH=VALUE, e.g. source.file.path=in.csv");
  }
  std::string path = set.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(set.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("--set " + set + ": invalid YAML value: " + e.msg);
  }
  TagSetValue(value, index);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // Walk with references (yaml-cpp nodes are handles into one tree).
  YAML::Node node = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty()) return InvalidArgument("--set " + set + ": empty component in " + path);
    bool last = i + 1 == parts.size();
    if (node.IsSequence()) {
      size_t k = 0;
      auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), k);
      if (ec != std::errc() || end != part.data() + part.size()) {
        return InvalidArgument("--set " + set + ": '" + part + "' is not an index of a list");
      }
      if (k >= node.size()) {
        return InvalidArgument("--set " + set + ": index " + part +
                               " is past the end of a list of " + std::to_string(node.size()));
      }
      if (last) {
        node[k] = value;
        return Status::Ok();
      }
      node.reset(node[k]);
      continue;
    }
    if (!node.IsMap() && !node.IsNull()) {
      return InvalidArgument("--set " + set + ": '" + parts[i - 1] + "' is a value, not a map");
    }
    if (last) {
      node[part] = value;
      return Status::Ok();
    }
    YAML::Node child = node[part];
    if (!child || child.IsNull()) {
      node[part] = YAML::Node(YAML::NodeType::Map);
      child = node[part];
      child.SetTag(std::string(kSetTagPrefix) + std::to_string(index));
    }
    node.reset(child);
  }
  return Status::Ok();
}

constexpr int kMaxNesting = 64;

// The first place where flow collections ([ {) or indentation nest past kMaxNesting levels.
Pos TooDeep(std::string_view text) {
  int depth = 0, line = 1, col = 1;
  char quote = 0;
  bool line_start = true;
  int indent = 0;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      col = 1;
      line_start = true;
      indent = 0;
      // Comments end with their line; so do single quotes, for this rough scan.
      if (quote == '\'' || quote == '\n') quote = 0;
      continue;
    }
    if (line_start && (c == ' ' || c == '-')) {
      if (++indent > kMaxNesting * 4) return {line, col};
    } else {
      line_start = false;
    }
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      // A comment runs to the end of the line; its brackets do not count.
      quote = '\n';
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return {line, col};
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    }
    ++col;
  }
  return {};
}

}  // namespace

Result<Spec> ParseSpec(std::string text, const std::string& file, const LoadOptions& options) {
  Spec spec;
  spec.file = file;
  size_t slash = file.rfind('/');
  spec.dir = slash == std::string::npos ? "" : file.substr(0, slash == 0 ? 1 : slash);
  spec.text = std::make_shared<const std::string>(std::move(text));
  // yaml-cpp reads nested collections recursively: bound the nesting before it sees the text, so
  // that a hostile spec is an error, not a stack overflow.
  if (Pos deep = TooDeep(*spec.text); deep.line > 0) {
    return spec.ErrorAt(deep,
                        "the spec nests deeper than " + std::to_string(kMaxNesting) + " levels");
  }
  YAML::Node root;
  try {
    root = YAML::Load(*spec.text);
  } catch (const YAML::Exception& e) {
    Pos pos;
    if (!e.mark.is_null()) pos = {e.mark.line + 1, e.mark.column + 1};
    std::string msg = e.msg;
    if (msg == "illegal map value" || msg == "end of map not found" ||
        msg == "end of sequence not found") {
      msg += " (check the indentation: keys of one map start in the same column)";
    }
    return spec.ErrorAt(pos, "invalid YAML: " + msg);
  }
  if (!root || root.IsNull()) return spec.ErrorAt({}, "the spec is empty");
  spec.sets = options.sets;
  for (size_t i = 0; i < options.sets.size(); ++i) {
    RETURN_IF_ERROR(ApplySet(root, options.sets[i], i));
  }
  try {
    Reader reader(spec, options);
    reader.ReadTop(root);
  } catch (const SpecError& e) {
    return e.status;
  } catch (const YAML::Exception& e) {
    return spec.ErrorAt({e.mark.line + 1, e.mark.column + 1}, e.msg);
  }
  return spec;
}

Result<Spec> LoadSpec(const std::string& path, const LoadOptions& options) {
  // Specs are small; a bound keeps a mistaken path (a device, a huge log) from eating memory.
  constexpr size_t kMaxSpecBytes = 4 << 20;
  std::string file = path == "-" ? "/dev/stdin" : path;
  ASSIGN_OR_RETURN(std::string text, ReadFileLimited(file, kMaxSpecBytes));
  return ParseSpec(std::move(text), path == "-" ? "<stdin>" : path, options);
}

}  // namespace barge::pipeline
