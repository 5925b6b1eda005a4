#include "pipeline/planner.h"

#include <glob.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <barge_stage.h>
#include <algorithm>
#include <deque>
#include <set>

#include "barge/stream/io.h"
#include "launch/container_options.h"
#include "oci/image_store.h"
#include "pipeline/stage.h"
#include "pipeline/text_source.h"
#include "pipeline/window_step.h"

namespace barge::pipeline {

static_assert(kStageDirMount == BARGE_DEFAULT_DIR, "the rings are mounted where the SDKs look");

namespace {

// ---- The generator

// Fields id, key, value, ts (BIGINT), deterministic: record i has key = h % keys and value =
// (h >> 20) & 0xFFFF for h a 64-bit mix of i (and the seed), and ts = start + i * 1000 /
// records_per_second, moved back by up to max_disorder. Instance k of P makes records k, k + P,
// ..., so every parallelism makes the same records.
class GenerateSource final : public stream::Source<BatchPtr> {
 public:
  struct Options {
    std::optional<uint64_t> records;
    uint64_t keys = 1000;
    uint64_t seed = 0;
    uint64_t records_per_second = 1000;
    int64_t start_ms = 0;
    int64_t max_disorder_ms = 0;
    // Which of id, key, value, ts (the schema's fields, in this order) to fill.
    bool id = true, key = true, value = true, ts = true;
    bool origin = false;  // fill RecordBatch::origin (input `input`, line i + 1)
    uint64_t input = 0;
    std::shared_ptr<const Schema> schema;
    size_t batch_rows = 1024;
    BatchPool* pool = nullptr;
  };
  explicit GenerateSource(Options o) : o_(std::move(o)), keys_(o_.keys) {
    seed_mix_ = o_.seed == 0 ? 0 : (o_.seed + 1) * 0xD6E8FEB86659FD93ULL;
  }

  Status Open(int instance, int parallelism) override {
    next_ = static_cast<uint64_t>(instance);
    stride_ = static_cast<uint64_t>(parallelism);
    return Status::Ok();
  }

  Result<stream::SourceState> Next(stream::Batch<BatchPtr>& out, size_t max_records) override {
    const uint64_t count = o_.records.value_or(UINT64_MAX);
    if (next_ >= count) return stream::SourceState::kEnd;
    uint64_t remaining = (count - next_ - 1) / stride_ + 1;
    size_t n =
        static_cast<size_t>(std::min<uint64_t>(remaining, std::min(max_records, o_.batch_rows)));
    BatchPtr ptr = o_.pool->Get(o_.schema);
    RecordBatch& b = *ptr;
    const uint64_t first = next_, stride = stride_;
    auto mix = [this](uint64_t i) {
      uint64_t h = ((i + 1) * 0x9E3779B97F4A7C15ULL) ^ seed_mix_;
      return h ^ (h >> 31);
    };
    // A field no step reads is sized but not written: nothing looks at it.
    Column& id = b.columns[0];
    id.Resize(n);
    if (o_.id) {
      int64_t* v = id.ints();
      for (size_t j = 0; j < n; ++j) v[j] = static_cast<int64_t>(first + j * stride);
    }
    Column& key = b.columns[1];
    key.Resize(n);
    if (o_.key) {
      int64_t* v = key.ints();
      for (size_t j = 0; j < n; ++j)
        v[j] = static_cast<int64_t>(keys_.Mod(mix(first + j * stride)));
    }
    Column& value = b.columns[2];
    value.Resize(n);
    if (o_.value) {
      int64_t* v = value.ints();
      for (size_t j = 0; j < n; ++j) {
        v[j] = static_cast<int64_t>((mix(first + j * stride) >> 20) & 0xFFFF);
      }
    }
    Column& time = b.columns[3];
    time.Resize(n);
    if (o_.ts) {
      int64_t* v = time.ints();
      // ts = i * 1000 / rps, stepped by quotient and remainder (no division per record).
      const uint64_t rps = o_.records_per_second;
      const auto scaled = static_cast<unsigned __int128>(first) * 1000;
      auto q = static_cast<uint64_t>(scaled / rps);
      uint64_t r = static_cast<uint64_t>(scaled % rps);
      const auto step = static_cast<unsigned __int128>(stride) * 1000;
      const auto step_q = static_cast<uint64_t>(step / rps);
      const auto step_r = static_cast<uint64_t>(step % rps);
      for (size_t j = 0; j < n; ++j) {
        v[j] = o_.start_ms + static_cast<int64_t>(q);
        q += step_q;
        r += step_r;
        if (r >= rps) {
          r -= rps;
          ++q;
        }
      }
      if (o_.max_disorder_ms > 0) {
        const auto span = static_cast<uint64_t>(o_.max_disorder_ms) + 1;
        for (size_t j = 0; j < n; ++j) {
          uint64_t h = mix((first + j * stride) ^ 0xA5A5A5A5A5A5A5A5ULL);
          v[j] -= static_cast<int64_t>((h >> 7) % span);
        }
      }
    }
    if (o_.origin) {
      b.origin.resize(n);
      for (size_t j = 0; j < n; ++j)
        b.origin[j] = RecordBatch::MakeOrigin(o_.input, first + j * stride + 1);
    }
    b.rows = n;
    next_ = n == remaining ? count : first + n * stride;
    out.records.push_back(std::move(ptr));
    return stream::SourceState::kMore;
  }

  bool replayable() const override { return true; }
  void Snapshot(stream::StateWriter& out) override { out.Put(next_); }
  Status Restore(stream::StateReader& in) override {
    next_ = in.Get<uint64_t>();
    return Status::Ok();
  }

 private:
  // x % d without a division per record (Lemire, Kaser and Kurz, "Faster remainder by direct
  // computation", 2019): exact for every 64-bit x when d < 2^32.
  class FastMod {
   public:
    explicit FastMod(uint64_t d)
        : d_(d), m_(d < (uint64_t{1} << 32) ? ~(unsigned __int128)0 / d + 1 : 0) {}
    uint64_t Mod(uint64_t x) const {
      if (m_ == 0) return x % d_;
      unsigned __int128 low = m_ * x;
      auto lo = static_cast<uint64_t>(low), hi = static_cast<uint64_t>(low >> 64);
      unsigned __int128 top = static_cast<unsigned __int128>(hi) * d_ +
                              ((static_cast<unsigned __int128>(lo) * d_) >> 64);
      return static_cast<uint64_t>(top >> 64);
    }

   private:
    uint64_t d_;
    unsigned __int128 m_;
  };

  Options o_;
  FastMod keys_;
  uint64_t seed_mix_ = 0;
  uint64_t next_ = 0;
  uint64_t stride_ = 1;
};

// Records from a line-framed source (TCP) decoded into rows; each line is one record.
class ParseLinesStep final : public stream::Operator<std::string, BatchPtr> {
 public:
  ParseLinesStep(std::string name, RunContext& ctx, std::shared_ptr<const Schema> schema,
                 std::unique_ptr<RowDecoder> decoder, uint64_t input, size_t batch_rows)
      : stream::Operator<std::string, BatchPtr>(std::move(name)),
        ctx_(ctx),
        schema_(std::move(schema)),
        decoder_(std::move(decoder)),
        input_(input),
        batch_rows_(batch_rows) {
    decoder_->StartInput();
  }

  void Push(stream::Batch<std::string>& in) override {
    CountIn(in);
    stream::Guarded(name(), [&] {
      BatchPtr out = ctx_.pool.Get(schema_);
      RecordBatch& b = *out;
      for (const std::string& line : in.records) {
        ++line_;
        if (line.find_first_not_of(" \t\r") == std::string::npos && decoder_ != nullptr &&
            schema_->fields.size() != 1) {
          continue;  // blank lines carry no record (except in format lines)
        }
        std::string record = line + "\n";
        error_.clear();
        Result<bool> row = decoder_->Parse(record, b, error_);
        if (!row.ok()) throw std::runtime_error(row.status().message());
        int64_t origin = RecordBatch::MakeOrigin(input_, line_);
        if (*row) {
          ++b.rows;
          b.origin.push_back(origin);
        } else if (!error_.empty()) {
          Status st = ctx_.bad->Report({origin, "source", error_, line});
          if (!st.ok()) throw std::runtime_error(st.message());
        }
      }
      if (b.rows > 0) {
        stream::Batch<BatchPtr>& o = out_.scratch();
        o.records.push_back(std::move(out));
        out_.Flush(metrics());
      }
    });
  }

 private:
  RunContext& ctx_;
  std::shared_ptr<const Schema> schema_;
  std::unique_ptr<RowDecoder> decoder_;
  uint64_t input_;
  size_t batch_rows_;
  uint64_t line_ = 0;
  std::string error_;
};

std::string Join(const std::vector<std::string>& words, std::string_view sep = ", ") {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += sep;
    out += w;
  }
  return out;
}

std::string Duration(int64_t ms) {
  if (ms % 86'400'000 == 0 && ms != 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0 && ms != 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::vector<std::string> FieldNames(const Schema& s) {
  std::vector<std::string> names;
  for (const Field& f : s.fields) names.push_back(f.name);
  return names;
}

// Expands a glob; a path without wildcards is taken as is (its absence is reported on open).
Result<std::vector<std::string>> Expand(const std::string& pattern) {
  if (pattern.find_first_of("*?[") == std::string::npos) return std::vector<std::string>{pattern};
  // A file whose name holds a glob character is read as named.
  if (struct stat st{}; ::stat(pattern.c_str(), &st) == 0) return std::vector<std::string>{pattern};
  glob_t g{};
  int rc = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &g);
  std::vector<std::string> out;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  if (rc == GLOB_NOMATCH || out.empty()) return NotFound("no file matches " + pattern);
  if (rc != 0) return IoError("reading the directories of " + pattern + " failed");
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// ---- The builder: plans every step, then puts the plan on the engine.

class SpecPipeline::Builder {
 public:
  Builder(SpecPipeline& owner) : p_(owner), spec_(owner.spec_) {}

  Status Build() {
    RETURN_IF_ERROR(PlanSources());
    RETURN_IF_ERROR(PlanSteps());
    RETURN_IF_ERROR(PlanSink());
    RETURN_IF_ERROR(PlanCheckpoints());
    BuildEngine();
    if (spec_.checkpoint) {
      p_.job_ = JobDescription().dump();
      p_.engine_->SetCheckpointJob(p_.job_);
    }
    return Status::Ok();
  }

 private:
  struct SourcePlan {
    const SourceSpec* spec = nullptr;
    std::vector<TextInput> inputs;
    uint64_t input = 0;  // origin index of a generator or tcp source
    std::shared_ptr<const Schema> schema;
    std::vector<bool> optional;
    bool inferred = false;
    int parallelism = 1;
    int event_field = -1;
    std::shared_ptr<const std::string> stdin_prefix;
    std::vector<SelectStep::Item> conform;  // to the union's schema, when it differs
    std::shared_ptr<const Schema> conformed;
    GenerateSource::Options generate;
    bool all_fields = false;  // a generator makes every field (it joins by a union step)
  };

  struct StepPlan {
    const StepSpec* spec = nullptr;
    enum class Kind { kFilter, kSelect, kWindow, kRolling, kUnion, kStage } kind = Kind::kFilter;
    std::string label;
    std::string role;
    std::optional<Expr> filter;
    std::vector<SelectStep::Item> items;
    std::shared_ptr<const Schema> schema;  // output
    KeyedConfig keyed;
    WindowSpec window;
    int parallelism = 1;
    bool by_key = false;
    std::string detail;
    std::string input;
    const StepSpec* key_by = nullptr;  // the key_by before a keyed step
    std::string key_by_label;
    std::vector<size_t> unions;  // kUnion: indexes into union_sources_
    StageConfig stage;           // kStage
  };

  Status Fail(Pos pos, const std::string& message) const { return spec_.ErrorAt(pos, message); }

  Status ExprFailure(const Text& text, const ExprError& e) const {
    return spec_.ErrorAt(spec_.Locate(text, e.offset), e.message);
  }

  uint64_t AddInput(std::string name) {
    p_.inputs_.push_back(std::move(name));
    return p_.inputs_.size() - 1;
  }

  Status PlanSources() {
    for (const SourceSpec& s : spec_.sources) {
      SourcePlan plan;
      plan.spec = &s;
      RETURN_IF_ERROR(PlanSource(s, plan));
      sources_.push_back(std::move(plan));
    }
    // Event time on every source or none: windows need it from all their inputs.
    bool any = false, all = true;
    for (const SourcePlan& sp : sources_) {
      any = any || sp.event_field >= 0;
      all = all && sp.event_field >= 0;
    }
    if (any && !all) {
      for (const SourcePlan& sp : sources_) {
        if (sp.event_field < 0) {
          return Fail(sp.spec->pos,
                      "this source has no event_time while another has: give every source one");
        }
      }
    }
    has_time_ = any;
    if (sources_.size() > 1) RETURN_IF_ERROR(UnifySources());
    if (schema_known_) {
      schema_ = sources_.size() > 1 ? sources_[0].conformed : sources_[0].schema;
    }
    ordered_ = sources_.size() == 1 && sources_[0].parallelism == 1;
    next_input_union_ = sources_.size() > 1;
    parallelism_ = sources_.size() == 1 ? sources_[0].parallelism : spec_.parallelism;
    return Status::Ok();
  }

  Status PlanSource(const SourceSpec& s, SourcePlan& plan) {
    TextFormat format{s.format, s.delimiter, s.header};
    std::vector<FieldSpec> fields;
    bool declared = s.schema.has_value();
    if (declared) fields = *s.schema;
    switch (s.kind) {
      case SourceSpec::Kind::kGenerate: {
        if (declared)
          return Fail(s.schema_pos, "a generate source has fixed fields: id, key, value, ts");
        for (const char* name : {"id", "key", "value", "ts"}) {
          fields.push_back({{name, Type::kInt64}, false, {}});
        }
        plan.input = AddInput("generate");
        plan.parallelism = s.parallelism > 0 ? s.parallelism : spec_.parallelism;
        break;
      }
      case SourceSpec::Kind::kFile: {
        std::string pattern = spec_.Resolve(s.path.value);
        Result<std::vector<std::string>> paths = Expand(pattern);
        if (!paths.ok()) return Fail(s.path.pos, paths.status().message());
        for (const std::string& path : *paths) {
          std::string name = path;
          if (!spec_.dir.empty() && name.rfind(spec_.dir + "/", 0) == 0) {
            name = name.substr(spec_.dir.size() + 1);
          }
          plan.inputs.push_back({path, name, AddInput(name)});
        }
        if (!declared) {
          // Inputs without records (a header-only CSV) say nothing of types: sample on.
          constexpr size_t kMaxSampledFiles = 16;
          for (size_t i = 0; i < plan.inputs.size() && i < kMaxSampledFiles; ++i) {
            bool complete = false;
            Result<std::string> sample =
                ReadSample(plan.inputs[i].path, size_t{1} << 20, 0, &complete);
            if (!sample.ok()) return Fail(s.path.pos, sample.status().message());
            Result<std::vector<FieldSpec>> inferred =
                InferSchema(*sample, complete, format, plan.inputs[i].name);
            if (!inferred.ok()) return Fail(s.path.pos, inferred.status().message());
            const bool typed =
                std::any_of(inferred->begin(), inferred->end(),
                            [](const FieldSpec& f) { return f.field.type != Type::kNull; });
            if (i == 0 || typed) fields = std::move(*inferred);
            if (typed) break;
          }
          plan.inferred = true;
        }
        int files = static_cast<int>(plan.inputs.size());
        plan.parallelism =
            s.parallelism > 0 ? std::min(s.parallelism, files) : std::min(spec_.parallelism, files);
        if (s.parallelism > files) {
          p_.notes_.push_back(
              fmt::format("{}: parallelism {} but {} input file(s): one reader "
                          "per file, so {} instance(s)",
                          s.name, s.parallelism, files, plan.parallelism));
        }
        break;
      }
      case SourceSpec::Kind::kStdin: {
        plan.inputs.push_back({"-", "<stdin>", AddInput("<stdin>")});
        plan.parallelism = 1;
        if (!declared && s.format != Format::kLines) {
          if (p_.options_.validate_only) {
            schema_known_ = false;
            p_.notes_.push_back(s.name +
                                ": the fields of stdin are inferred when the pipeline runs; "
                                "declare schema: in the source to check the steps now");
            return Status::Ok();
          }
          bool complete = false;
          Result<std::string> sample = ReadSample("-", size_t{256} << 10, 100, &complete);
          if (!sample.ok()) return Fail(s.pos, sample.status().message());
          plan.stdin_prefix = std::make_shared<const std::string>(*sample);
          Result<std::vector<FieldSpec>> inferred =
              InferSchema(*sample, complete, format, "<stdin>");
          if (!inferred.ok()) return Fail(s.pos, inferred.status().message());
          fields = std::move(*inferred);
          plan.inferred = true;
        } else if (!declared) {
          fields.push_back({{"line", Type::kString}, false, {}});
        }
        break;
      }
      case SourceSpec::Kind::kTcp: {
        std::string name = "tcp://" + (s.listen.empty() ? s.connect : s.listen);
        plan.input = AddInput(name);
        plan.parallelism = 1;
        if (s.format == Format::kCsv && s.header && !declared) {
          return Fail(s.pos,
                      "a tcp source cannot read a CSV header (connections interleave): "
                      "declare schema: and set header: false");
        }
        if (!declared && s.format != Format::kLines) {
          return Fail(s.pos, "a tcp source needs a declared schema: for format " +
                                 std::string(FormatName(s.format)) +
                                 " (nothing can be sampled before connections arrive)");
        }
        if (!declared) fields.push_back({{"line", Type::kString}, false, {}});
        break;
      }
    }
    if (s.format == Format::kLines && s.kind != SourceSpec::Kind::kGenerate &&
        (fields.size() != 1 || fields[0].field.type != Type::kString)) {
      return Fail(s.schema_pos, "format lines reads one VARCHAR field per record");
    }
    auto schema = std::make_shared<Schema>();
    for (const FieldSpec& f : fields) {
      schema->fields.push_back(f.field);
      plan.optional.push_back(f.optional);
    }
    plan.schema = schema;
    if (s.event_time) {
      const Text& field = s.event_time->field;
      int idx = schema->Find(field.value);
      if (idx < 0) {
        std::string message = "unknown field '" + field.value + "' for event_time";
        if (auto hint = Suggest(field.value, FieldNames(*schema))) {
          message += " (did you mean '" + *hint + "'?)";
        } else {
          message += " (the source has: " + Join(FieldNames(*schema)) + ")";
        }
        return Fail(field.pos, message);
      }
      Type& t = schema->fields[static_cast<size_t>(idx)].type;
      if (t == Type::kNull) t = Type::kInt64;  // an input without records: any time type fits
      if (t != Type::kInt64 && t != Type::kTimestamp) {
        return Fail(field.pos, "event_time field '" + field.value +
                                   "' must be BIGINT (milliseconds) or TIMESTAMP, but it is " +
                                   std::string(TypeName(t)) +
                                   (plan.inferred ? " (inferred; declare schema: to set it)" : ""));
      }
      plan.event_field = idx;
    }
    return Status::Ok();
  }

  // Several sources feed one stream: fields by name, in order of first appearance. A field some
  // source lacks is NULL there; BIGINT and DOUBLE unify to DOUBLE; other mismatches are errors.
  Status UnifySources() {
    if (!schema_known_) return Status::Ok();
    auto unified = std::make_shared<Schema>();
    for (const SourcePlan& sp : sources_) {
      for (const Field& f : sp.schema->fields) {
        int at = unified->Find(f.name);
        if (at < 0) {
          unified->fields.push_back(f);
          continue;
        }
        Field& u = unified->fields[static_cast<size_t>(at)];
        if (u.type == f.type || f.type == Type::kNull) continue;
        if (u.type == Type::kNull) {  // a header-only input's column takes the other's type
          u.type = f.type;
          continue;
        }
        if (IsNumeric(u.type) && IsNumeric(f.type)) {
          u.type = Type::kDouble;
          continue;
        }
        return Fail(sp.spec->pos, "field '" + f.name + "' is " + std::string(TypeName(f.type)) +
                                      " here but " + std::string(TypeName(u.type)) +
                                      " in an earlier source: sources of one stream must agree");
      }
    }
    for (SourcePlan& sp : sources_) {
      sp.conformed = unified;
      if (*sp.schema == *unified) continue;
      for (const Field& f : unified->fields) {
        int idx = sp.schema->Find(f.name);
        SelectStep::Item item;
        std::string text;
        if (idx < 0) {
          text = "CAST(NULL AS " + std::string(TypeName(f.type)) + ")";
        } else if (sp.schema->fields[static_cast<size_t>(idx)].type != f.type) {
          text = "CAST(\"" + f.name + "\" AS " + std::string(TypeName(f.type)) + ")";
        } else {
          item.input = idx;
        }
        if (!text.empty()) {
          ExprError error;
          item.expr = Expr::Compile(text, *sp.schema, &error);
          if (!item.expr)
            return Fail(sp.spec->pos, "cannot unify field '" + f.name + "': " + error.message);
        }
        sp.conform.push_back(std::move(item));
      }
    }
    return Status::Ok();
  }

  Status PlanSteps() {
    std::vector<int> pending_keys;
    const StepSpec* key_by = nullptr;
    std::string key_by_label;
    for (size_t i = 0; i < spec_.steps.size(); ++i) {
      const StepSpec& st = spec_.steps[i];
      // "step 2 (select)", or "step 2 'clean' (select)" when the step is named.
      std::string label = "step " + std::to_string(i + 1) +
                          (st.name.empty() ? "" : " '" + st.name + "'") + " (" + st.keyword + ")";
      if (key_by != nullptr && st.kind != StepSpec::Kind::kWindow &&
          st.kind != StepSpec::Kind::kAggregate && st.kind != StepSpec::Kind::kStage) {
        return Fail(st.pos, "key_by must be followed by window, aggregate or stage (put " +
                                st.keyword + " before key_by)");
      }
      if (!schema_known_) {
        p_.notes_.push_back(label + " is checked when the pipeline runs");
        continue;
      }
      StepPlan plan;
      plan.spec = &st;
      plan.label = label;
      switch (st.kind) {
        case StepSpec::Kind::kFilter: {
          plan.kind = StepPlan::Kind::kFilter;
          plan.role = "filter";
          ExprError error;
          plan.filter = Expr::Compile(st.filter.value, *schema_, &error);
          if (!plan.filter) return ExprFailure(st.filter, error);
          Type t = plan.filter->type();
          if (t != Type::kBool && t != Type::kNull) {
            return Fail(st.filter.pos, "filter needs a BOOLEAN condition, but '" + st.filter.value +
                                           "' is " + std::string(TypeName(t)));
          }
          plan.schema = schema_;
          plan.detail = st.filter.value;
          Use(plan.filter->inputs());
          can_fail_ = can_fail_ || plan.filter->can_fail();
          RETURN_IF_ERROR(Stateless(st, plan));
          break;
        }
        case StepSpec::Kind::kSelect:
          plan.kind = StepPlan::Kind::kSelect;
          plan.role = "select";
          RETURN_IF_ERROR(PlanSelect(st, plan));
          RETURN_IF_ERROR(Stateless(st, plan));
          break;
        case StepSpec::Kind::kKeyBy:
          pending_keys.clear();
          for (const Text& k : st.keys) {
            int idx = schema_->Find(k.value);
            if (idx < 0) {
              std::string message = "unknown field '" + k.value + "' in key_by";
              if (auto hint = Suggest(k.value, FieldNames(*schema_))) {
                message += " (did you mean '" + *hint + "'?)";
              }
              return Fail(k.pos, message);
            }
            if (std::find(pending_keys.begin(), pending_keys.end(), idx) != pending_keys.end()) {
              return Fail(k.pos, "field '" + k.value + "' is named twice in key_by");
            }
            pending_keys.push_back(idx);
          }
          key_by = &st;
          key_by_label = label;
          continue;
        case StepSpec::Kind::kUnion:
          RETURN_IF_ERROR(PlanUnion(st, plan));
          break;
        case StepSpec::Kind::kStage:
          RETURN_IF_ERROR(PlanStage(st, plan, pending_keys));
          plan.key_by = key_by;
          plan.key_by_label = key_by_label;
          pending_keys.clear();
          key_by = nullptr;
          break;
        case StepSpec::Kind::kWindow:
        case StepSpec::Kind::kAggregate:
          RETURN_IF_ERROR(PlanKeyed(st, plan, pending_keys, key_by));
          plan.key_by = key_by;
          plan.key_by_label = key_by_label;
          pending_keys.clear();
          key_by = nullptr;
          break;
      }
      schema_ = plan.schema;
      steps_.push_back(std::move(plan));
    }
    if (key_by != nullptr) {
      return Fail(key_by->pos, "key_by must be followed by window, aggregate or stage");
    }
    return Status::Ok();
  }

  // More sources merged into the stream: their fields are matched to the stream's by name (a
  // field they lack is NULL; BIGINT widens to DOUBLE; fields the stream does not have are left
  // out, with a note).
  Status PlanUnion(const StepSpec& st, StepPlan& plan) {
    plan.kind = StepPlan::Kind::kUnion;
    plan.role = "union";
    plan.schema = schema_;
    plan.parallelism = parallelism_;
    std::vector<std::string> details;
    for (const SourceSpec& us : st.union_sources) {
      SourcePlan sp;
      sp.spec = &us;
      sp.all_fields = true;
      RETURN_IF_ERROR(PlanSource(us, sp));
      if (!schema_known_) return Status::Ok();
      if ((sp.event_field >= 0) != has_time_) {
        return Fail(us.pos, has_time_ ? "this source needs event_time, as the pipeline's "
                                        "sources have"
                                      : "the pipeline's sources have no event_time: this one "
                                        "cannot have one either");
      }
      sp.conformed = schema_;
      bool same = *sp.schema == *schema_;
      std::vector<std::string> dropped;
      for (const Field& f : sp.schema->fields) {
        if (schema_->Find(f.name) < 0) dropped.push_back(f.name);
      }
      for (const Field& f : schema_->fields) {
        int idx = sp.schema->Find(f.name);
        SelectStep::Item item;
        std::string text;
        if (idx < 0) {
          text = "CAST(NULL AS " + std::string(TypeName(f.type)) + ")";
        } else {
          Type from = sp.schema->fields[static_cast<size_t>(idx)].type;
          if (from != f.type) {
            if (!(IsNumeric(from) && IsNumeric(f.type))) {
              return Fail(us.pos, "field '" + f.name + "' is " + std::string(TypeName(from)) +
                                      " in this source but " + std::string(TypeName(f.type)) +
                                      " in the stream it joins");
            }
            text = "CAST(\"" + f.name + "\" AS " + std::string(TypeName(f.type)) + ")";
          } else {
            item.input = idx;
          }
        }
        if (!text.empty()) {
          ExprError error;
          item.expr = Expr::Compile(text, *sp.schema, &error);
          if (!item.expr)
            return Fail(us.pos, "cannot match field '" + f.name + "': " + error.message);
        }
        sp.conform.push_back(std::move(item));
      }
      if (same) sp.conform.clear();
      if (!dropped.empty()) {
        p_.notes_.push_back(plan.label + ": fields " + Join(dropped) +
                            " are not in the stream and are left out");
      }
      details.push_back(SourceDetail(sp));
      plan.unions.push_back(union_sources_.size());
      union_sources_.push_back(std::move(sp));
    }
    plan.detail = "merge with " + Join(details);
    plan.input = "";
    ordered_ = false;
    next_input_union_ = true;
    return Status::Ok();
  }

  // A container stage: replicas of an image, fed partitioned by key after key_by, else spread
  // over them; its output fields are declared (output:) or the input's.
  Status PlanStage(const StepSpec& st, StepPlan& plan, const std::vector<int>& keys) {
    const StageSpec& g = *st.stage;
    plan.kind = StepPlan::Kind::kStage;
    plan.role = "stage";
    if (p_.options_.root.empty()) {
      return Fail(st.pos, "container stages need barge's root directory (images, containers)");
    }
    // The image must exist and say what to run unless the stage does; validate checks it without
    // unpacking anything.
    Result<oci::ImageStore> store = oci::ImageStore::Open(p_.options_.root);
    if (!store.ok()) return Fail(g.image.pos, store.status().message());
    Result<oci::Image> image = store->Resolve(g.image.value);
    if (!image.ok()) {
      return Fail(g.image.pos, "unknown image '" + g.image.value +
                                   "': not in the local repository (see 'barge images', "
                                   "'barge build', 'barge load')");
    }
    if (Result<std::vector<std::string>> argv = launch::ProcessArgv(
            g.image.value, image->config.entrypoint, image->config.cmd, g.command, std::nullopt);
        !argv.ok()) {
      return Fail(g.image.pos, argv.status().message() + " (give the stage a command:)");
    }
    // The options the spec reader cannot check: against this machine, by the rules `barge run`
    // applies (the same launch library makes the replicas' containers).
    if (g.cpus != 0) {
      if (Status cpus = launch::CheckCpus(g.cpus, "cpus"); !cpus.ok()) {
        return Fail(g.cpus_pos, cpus.message());
      }
    }
    for (size_t i = 0; i < g.volumes.size(); ++i) {
      if (Result<runtime::VolumeSpec> v = launch::ParseVolume(g.volumes[i]); !v.ok()) {
        return Fail(i < g.volume_pos.size() ? g.volume_pos[i] : st.pos, v.status().message());
      }
    }
    // Output fields.
    auto out = std::make_shared<Schema>();
    if (!g.output || g.output_star) *out = *schema_;
    if (g.output) {
      for (const FieldSpec& f : *g.output) {
        int at = out->Find(f.field.name);
        if (at >= 0) {
          out->fields[static_cast<size_t>(at)].type = f.field.type;
        } else {
          out->fields.push_back(f.field);
        }
      }
    }
    if (out->fields.empty()) return Fail(g.output_pos, "a stage must return at least one field");
    plan.schema = out;
    plan.parallelism = st.parallelism > 0 ? st.parallelism : spec_.parallelism;
    const bool union_input = next_input_union_;
    std::vector<std::string> key_names;
    for (int k : keys) key_names.push_back(schema_->fields[static_cast<size_t>(k)].name);
    plan.keyed.key_columns = keys;
    plan.by_key = !keys.empty() && (plan.parallelism > 1 || parallelism_ > 1 || union_input);
    if (plan.by_key) {
      plan.input = "by key (" + Join(key_names) + ")";
    } else if (union_input) {
      plan.input = "union";
    } else {
      plan.input = plan.parallelism == parallelism_ ? "forward" : "rebalance";
    }
    UseAll();  // everything flowing in is sent to the stage
    passthrough_ = false;
    StageConfig& c = plan.stage;
    c.label = plan.label;
    // "step 2 'clean' (stage 'doubler:1')": unambiguous when two stages run one image.
    c.display = plan.label.substr(0, plan.label.rfind(" (")) + " (stage '" + g.image.value + "')";
    c.root = p_.options_.root;
    c.container.image = g.image.value;
    c.container.command = g.command;
    c.container.env = g.env;
    c.container.volumes = g.volumes;
    c.container.memory = g.memory;
    c.container.cpus = g.cpus;
    c.container.network = g.network;
    c.container.user = g.user;
    c.container.workdir = g.workdir;
    if (!p_.options_.cgroup_parent.empty()) c.container.cgroup_parent = p_.options_.cgroup_parent;
    c.protocol = g.protocol;
    c.restart = g.restart;
    c.ring_bytes = g.ring_bytes;
    c.input = schema_;
    c.output = out;
    c.batch_rows = spec_.batch_size;
    c.message_rows = g.message_rows;
    plan.detail = "image " + g.image.value +
                  (g.protocol == StageSpec::Protocol::kShm ? " (shared memory)" : " (lines)");
    if (!g.command.empty()) plan.detail += ", command " + Join(g.command, " ");
    if (!g.memory.empty()) plan.detail += ", memory " + g.memory;
    if (g.cpus > 0) plan.detail += fmt::format(", cpus {}", g.cpus);
    if (g.restart > 0) plan.detail += fmt::format(", {} restart(s)", g.restart);
    if (g.message_rows > 0) plan.detail += fmt::format(", batches of {} rows", g.message_rows);
    // One replica keeps the records in order; several interleave them.
    if (plan.parallelism != 1 || parallelism_ != 1) ordered_ = false;
    next_input_union_ = false;
    parallelism_ = plan.parallelism;
    return Status::Ok();
  }

  // Notes source fields read while the source's fields still flow as they are.
  void Use(const std::vector<int>& fields) {
    if (!passthrough_) return;
    for (int f : fields) used_.insert(schema_->fields[static_cast<size_t>(f)].name);
  }
  void UseAll() {
    if (!passthrough_) return;
    for (const Field& f : schema_->fields) used_.insert(f.name);
  }

  // Parallelism of a stateless step: its own, or its input's (so it chains to it). The first
  // step after several sources reads their union.
  Status Stateless(const StepSpec& st, StepPlan& plan) {
    const bool union_input = next_input_union_;
    plan.parallelism = st.parallelism > 0 ? st.parallelism : parallelism_;
    if (union_input) {
      plan.input = "union";
    } else {
      plan.input = plan.parallelism == parallelism_ ? "forward" : "rebalance";
    }
    // Records stay in source order only through one instance after one instance.
    if (plan.parallelism != 1 || parallelism_ != 1) ordered_ = false;
    next_input_union_ = false;
    parallelism_ = plan.parallelism;
    return Status::Ok();
  }

  Status PlanSelect(const StepSpec& st, StepPlan& plan) {
    auto out = std::make_shared<Schema>();
    std::vector<SelectStep::Item> items;
    std::vector<bool> replaced(st.select.size(), false);
    auto compile = [&](const NamedExpr& e, SelectStep::Item& item) -> Status {
      ExprError error;
      std::optional<Expr> expr = Expr::Compile(e.expr.value, *schema_, &error);
      if (!expr) return ExprFailure(e.expr, error);
      Use(expr->inputs());
      can_fail_ = can_fail_ || expr->can_fail();
      if (expr->field_ref() >= 0) {
        item.input = expr->field_ref();
      } else {
        item.expr = std::move(expr);
      }
      return Status::Ok();
    };
    auto type_of = [&](const SelectStep::Item& item) {
      return item.expr ? item.expr->type() : schema_->fields[static_cast<size_t>(item.input)].type;
    };
    std::vector<std::string> details;
    if (st.select_star) {
      details.push_back("*");
      for (size_t f = 0; f < schema_->fields.size(); ++f) {
        const Field& field = schema_->fields[f];
        SelectStep::Item item;
        item.input = static_cast<int>(f);
        for (size_t k = 0; k < st.select.size(); ++k) {
          if (st.select[k].name != field.name) continue;
          replaced[k] = true;
          item = SelectStep::Item{};
          RETURN_IF_ERROR(compile(st.select[k], item));
          details.push_back(field.name + ": " + st.select[k].expr.value);
        }
        out->fields.push_back({field.name, type_of(item)});
        items.push_back(std::move(item));
      }
    }
    for (size_t k = 0; k < st.select.size(); ++k) {
      if (replaced[k]) continue;
      const NamedExpr& e = st.select[k];
      if (e.name.empty()) return Fail(e.name_pos, "a selected field needs a name");
      SelectStep::Item item;
      RETURN_IF_ERROR(compile(e, item));
      Type t = type_of(item);
      out->fields.push_back({e.name, t == Type::kNull ? Type::kString : t});
      if (t == Type::kNull) {
        // A field that is always NULL still needs a type: VARCHAR, as DuckDB gives NULL columns.
        ExprError error;
        item.expr = Expr::Compile("CAST(NULL AS VARCHAR)", *schema_, &error);
      }
      details.push_back(e.name + ": " + e.expr.value);
      items.push_back(std::move(item));
    }
    plan.items = std::move(items);
    plan.schema = out;
    plan.detail = Join(details);
    if (!st.select_star) passthrough_ = false;
    return Status::Ok();
  }

  Status PlanKeyed(const StepSpec& st, StepPlan& plan, const std::vector<int>& keys,
                   const StepSpec* key_by) {
    const bool windowed = st.kind == StepSpec::Kind::kWindow;
    plan.kind = windowed ? StepPlan::Kind::kWindow : StepPlan::Kind::kRolling;
    plan.role = windowed ? "window" : "aggregate";
    if (windowed && !has_time_) {
      return Fail(st.pos,
                  "window needs event time: add event_time: {field: ..., max_delay: ...} "
                  "to the source");
    }
    std::vector<std::string> names;
    std::vector<std::string> details;
    for (const NamedExpr& a : st.aggregates) {
      ExprError error;
      std::optional<AggregateCall> call = CompileAggregate(a.expr.value, *schema_, &error);
      if (!call) return ExprFailure(a.expr, error);
      if (call->argument) {
        can_fail_ = can_fail_ || call->argument->can_fail();
        Use(call->argument->inputs());
      }
      if (call->kind == AggregateKind::kFirst || call->kind == AggregateKind::kLast) {
        uses_order_ = true;
      }
      for (int k : keys) {
        if (schema_->fields[static_cast<size_t>(k)].name == a.name) {
          return Fail(a.name_pos, "'" + a.name + "' is already a key field of this step");
        }
      }
      if (windowed && (a.name == "window_start" || a.name == "window_end")) {
        return Fail(a.name_pos, "'" + a.name + "' is a field every window result has");
      }
      names.push_back(a.name);
      details.push_back(a.name + ": " + a.expr.value);
      plan.keyed.aggregates.push_back(std::move(*call));
    }
    Use(keys);
    if (windowed && !st.window->late_path.empty()) UseAll();  // late records are written whole
    passthrough_ = false;
    plan.keyed.key_columns = keys;
    plan.keyed.label = plan.label;
    plan.keyed.batch_rows = spec_.batch_size;
    plan.keyed.output = KeyedOutputSchema(*schema_, keys, windowed, names, plan.keyed.aggregates);
    plan.schema = plan.keyed.output;
    if (keys.empty()) {
      plan.parallelism = 1;
      if (st.parallelism > 1) {
        return Fail(st.parallelism_pos, st.keyword +
                                            " without key_by runs in one instance: "
                                            "add key_by to run it in parallel");
      }
    } else {
      plan.parallelism = st.parallelism > 0 ? st.parallelism : spec_.parallelism;
    }
    std::vector<std::string> key_names;
    for (int k : keys) key_names.push_back(schema_->fields[static_cast<size_t>(k)].name);
    const bool union_input = next_input_union_;
    plan.by_key = !keys.empty() && (plan.parallelism > 1 || parallelism_ > 1 || union_input);
    if (plan.by_key) {
      plan.input = "by key (" + Join(key_names) + ")";
    } else if (union_input) {
      plan.input = "union";
    } else {
      plan.input = plan.parallelism == parallelism_ ? "forward" : "rebalance";
    }
    (void)key_by;
    if (windowed) {
      plan.window = *st.window;
      const WindowSpec& w = plan.window;
      std::string what;
      switch (w.kind) {
        case WindowSpec::Kind::kTumbling:
          what = "tumbling " + Duration(w.size_ms);
          break;
        case WindowSpec::Kind::kSliding:
          what = "sliding " + Duration(w.size_ms) + " every " + Duration(w.slide_ms);
          break;
        case WindowSpec::Kind::kSession:
          what = "session gap " + Duration(w.gap_ms);
          break;
      }
      if (w.offset_ms != 0) what += " offset " + Duration(w.offset_ms);
      if (w.lateness_ms != 0) what += ", allowed lateness " + Duration(w.lateness_ms);
      if (!w.late_path.empty()) what += ", late records to " + w.late_path;
      plan.detail = what + "; " + Join(details);
      plan.keyed.row_watermarks = ordered_;
      need_time_ = true;
      carry_watermarks_ = carry_watermarks_ || ordered_;
    } else {
      plan.detail = "rolling; " + Join(details);
    }
    if (!key_names.empty()) plan.detail = "by " + Join(key_names) + ": " + plan.detail;
    // After a keyed step records come from several instances: no total order any more.
    ordered_ = false;
    next_input_union_ = false;
    parallelism_ = plan.parallelism;
    return Status::Ok();
  }

  Status PlanSink() {
    const SinkSpec& s = spec_.sink;
    sink_parallelism_ = s.parallelism > 0 ? s.parallelism : 1;
    if (s.format == Format::kLines && schema_known_ &&
        (schema_->fields.size() != 1 || schema_->fields[0].type != Type::kString)) {
      return Fail(s.format_pos.line > 0 ? s.format_pos : s.pos,
                  "format lines writes one VARCHAR field per record, but records have: " +
                      schema_->ToString() + " (use jsonl or csv, or select one field)");
    }
    if (s.kind == SinkSpec::Kind::kStdout && sink_parallelism_ > 1) {
      return Fail(s.parallelism_pos, "a stdout sink runs in one instance");
    }
    for (const StepPlan& st : steps_) {
      if (st.kind != StepPlan::Kind::kStage || st.stage.container.volumes.empty()) continue;
      p_.notes_.push_back(st.label +
                          ": a stage is stateless to barge: after a recovery it sees again the "
                          "records since the last checkpoint, so state it keeps on its volumes "
                          "must go back to $BARGE_STAGE_CHECKPOINT to stay exact "
                          "(docs/checkpoints.md#container-stages)");
      if (st.stage.restart > 0) {
        p_.notes_.push_back(st.label +
                            ": restart: sends a restarted replica only what it had not answered, "
                            "so state it keeps on its volumes would miss what it answered before; "
                            "with such state use restart: 0 (a failure then ends the run, and the "
                            "next resumes from the last checkpoint)");
      }
    }
    if (spec_.on_error.mode == OnErrorSpec::Mode::kDeadLetter) {
      p_.dead_letter_path_ = spec_.Resolve(spec_.on_error.path);
    }
    return Status::Ok();
  }

  // checkpoint: where they go, and what is exactly-once and what is not.
  Status PlanCheckpoints() {
    if (!spec_.checkpoint) return Status::Ok();
    const CheckpointSpec& c = *spec_.checkpoint;
    if (!c.dir.empty()) {
      p_.checkpoint_dir_ = spec_.Resolve(c.dir);
    } else if (!p_.options_.root.empty()) {
      p_.checkpoint_dir_ = p_.options_.root + "/checkpoints/" + spec_.name;
    } else {
      return Fail(c.pos, "checkpoint needs dir: (no barge root directory to keep them in)");
    }
    auto all_sources = [&](auto&& f) {
      for (const SourcePlan& sp : sources_) f(sp);
      for (const SourcePlan& sp : union_sources_) f(sp);
    };
    all_sources([&](const SourcePlan& sp) {
      const SourceSpec& s = *sp.spec;
      if (s.kind == SourceSpec::Kind::kStdin || s.kind == SourceSpec::Kind::kTcp) {
        p_.notes_.push_back(s.name + ": " +
                            (s.kind == SourceSpec::Kind::kStdin ? "stdin" : "a tcp source") +
                            " cannot be replayed: records it delivered after the last checkpoint "
                            "are lost on recovery (at-most-once)");
      }
    });
    if (spec_.sink.kind != SinkSpec::Kind::kFile && !p_.options_.collect) {
      p_.notes_.push_back(std::string("sink: ") +
                          (spec_.sink.kind == SinkSpec::Kind::kStdout ? "stdout" : "tcp") +
                          " is not transactional: after a recovery it may repeat records written "
                          "since the last checkpoint (at-least-once)");
    }
    if (spec_.on_error.mode == OnErrorSpec::Mode::kDeadLetter) {
      p_.notes_.push_back(
          "on_error: bad records are written to the dead letter file as found: after a recovery "
          "it may hold some twice (at-least-once)");
    }
    p_.notes_.push_back("checkpoints every " + Duration(c.interval_ms) + " in " +
                        p_.checkpoint_dir_ + " (the last " + std::to_string(c.keep) + " kept)");
    if (!p_.options_.validate_only) {
      Result<stream::CheckpointStore> store =
          stream::CheckpointStore::Open(p_.checkpoint_dir_, c.keep);
      if (!store.ok()) return Fail(c.pos, store.status().message());
      p_.store_.emplace(std::move(*store));
    }
    return Status::Ok();
  }

  // What the saved state depends on: every planned operator (what it does, its parallelism and
  // input, its output fields) and the files each source reads. A checkpoint whose description
  // differs is refused on resume, naming the first difference.
  nlohmann::json JobDescription() const {
    nlohmann::json steps = nlohmann::json::array();
    for (const PlannedStep& s : p_.steps_) {
      steps.push_back({{"label", s.label},
                       {"role", s.role},
                       {"detail", s.detail},
                       {"parallelism", s.parallelism},
                       {"input", s.input},
                       {"schema", s.schema ? s.schema->ToString() : ""}});
    }
    nlohmann::json files = nlohmann::json::array();
    auto add = [&](const SourcePlan& sp) {
      nlohmann::json names = nlohmann::json::array();
      for (const TextInput& in : sp.inputs) names.push_back(in.path);
      files.push_back({{"source", sp.spec->name}, {"files", names}});
    };
    for (const SourcePlan& sp : sources_) add(sp);
    for (const SourcePlan& sp : union_sources_) add(sp);
    return {{"name", spec_.name},
            {"batch_size", spec_.batch_size},
            {"steps", steps},
            {"inputs", files}};
  }

  // ---- Pass 2: the engine graph.

  template <class T>
  void Record(stream::Stream<T>& s, PlannedStep step) {
    step.op = s.upstreams().back().node->name;
    p_.steps_.push_back(std::move(step));
  }

  // A source's operators: the reader, event time when a window needs it, and the conversion to
  // the fields of the stream it joins.
  stream::Stream<BatchPtr> BuildSource(SourcePlan& sp) {
    stream::Pipeline& engine = *p_.engine_;
    RunContext* ctx = p_.ctx_.get();
    const SourceSpec& s = *sp.spec;
    std::optional<stream::Stream<BatchPtr>> st;
    PlannedStep planned{"source", "",        "source",    SourceDetail(sp), sp.parallelism,
                        "",       sp.schema, sp.optional, sp.inferred};
    if (s.kind == SourceSpec::Kind::kGenerate) {
      GenerateSource::Options g;
      g.records = s.records;
      g.keys = s.keys;
      g.seed = s.seed;
      g.records_per_second = s.records_per_second;
      g.start_ms = s.start_ms;
      g.max_disorder_ms = s.max_disorder_ms;
      g.origin = keep_origin_;
      auto used = [&](const char* field) {
        // Dead letters hold whole records.
        return sp.all_fields || passthrough_ || used_.count(field) > 0 ||
               spec_.on_error.mode == OnErrorSpec::Mode::kDeadLetter ||
               (need_time_ && std::string(field) == "ts");
      };
      g.id = used("id");
      g.key = used("key");
      g.value = used("value");
      g.ts = used("ts");
      g.input = sp.input;
      g.schema = sp.schema;
      g.batch_rows = spec_.batch_size;
      g.pool = &ctx->pool;
      st = engine.source<BatchPtr>(
          s.name, [g] { return std::make_unique<GenerateSource>(g); }, sp.parallelism);
    } else if (s.kind == SourceSpec::Kind::kTcp) {
      stream::TcpOptions tcp;
      tcp.listen = s.listen;
      tcp.connect = s.connect;
      tcp.max_connections = s.max_connections;
      tcp.read.on_error = stream::OnError::kFail;
      stream::Stream<std::string> lines = stream::TcpSource(engine, tcp).name(s.name);
      auto schema = sp.schema;
      auto optional = sp.optional;
      TextFormat format{s.format, s.delimiter, false};
      uint64_t input = sp.input;
      size_t rows = spec_.batch_size;
      st = lines.template Apply<BatchPtr>(
          "parse", [ctx, schema, optional, format, input, rows](stream::detail::RunState&,
                                                                const std::string& name) {
            auto decoder = RowDecoder::Make(format, schema, optional);
            return std::make_unique<ParseLinesStep>(name, *ctx, schema, std::move(*decoder), input,
                                                    rows);
          });
      st->parallelism(1);
    } else {
      TextSource::Options t;
      t.inputs = sp.inputs;
      t.format = {s.format, s.delimiter, s.header};
      t.schema = sp.schema;
      t.optional = sp.optional;
      t.batch_rows = spec_.batch_size;
      t.pool = &ctx->pool;
      t.stdin_prefix = sp.stdin_prefix;
      t.event_time_field = need_time_ ? sp.event_field : -1;
      st = engine.source<BatchPtr>(
          s.name,
          [t, ctx]() mutable {
            t.bad = ctx->bad.get();
            return std::make_unique<TextSource>(t);
          },
          sp.parallelism);
    }
    Record(*st, planned);
    p_.source_ops_.push_back(p_.steps_.back().op);
    if (sp.event_field >= 0 && need_time_) {
      int field = sp.event_field;
      std::string field_name = sp.schema->fields[static_cast<size_t>(field)].name;
      int64_t delay = s.event_time->max_delay_ms, idle = s.event_time->idle_ms;
      bool carry = carry_watermarks_;
      st = st->Apply<BatchPtr>("event_time", [=](stream::detail::RunState&,
                                                 const std::string& name) {
        return std::make_unique<EventTimeStep>(name, *ctx, field, field_name, delay, idle, carry);
      });
      st->parallelism(sp.parallelism);
      std::string detail = "event time from " + field_name + ", watermark " + Duration(delay) +
                           " behind the largest seen";
      if (idle > 0) detail += ", idle after " + Duration(idle);
      Record(*st, {"event_time", "", "source", detail, sp.parallelism, "forward", sp.schema});
    }
    if (!sp.conform.empty()) {
      auto conformed = sp.conformed;
      auto items = sp.conform;
      st = st->Apply<BatchPtr>("conform", [=](stream::detail::RunState&, const std::string& name) {
        return std::make_unique<SelectStep>(name, "source", *ctx, conformed, items);
      });
      st->parallelism(sp.parallelism);
      Record(*st, {"conform", "", "source", "to the union's fields", sp.parallelism, "forward",
                   conformed});
    }
    return *st;
  }

  void BuildEngine() {
    stream::PipelineOptions options;
    options.parallelism = spec_.parallelism;
    options.batch_size = spec_.batch_size;
    if (p_.store_) {
      options.checkpoint.interval = std::chrono::milliseconds(spec_.checkpoint->interval_ms);
      options.checkpoint.store = &*p_.store_;
    }
    p_.engine_ = std::make_unique<stream::Pipeline>(options);
    stream::Pipeline& engine = *p_.engine_;
    RunContext* ctx = p_.ctx_.get();
    keep_origin_ = can_fail_ || uses_order_ || spec_.on_error.mode != OnErrorSpec::Mode::kSkip;
    std::vector<stream::Stream<BatchPtr>> streams;
    for (SourcePlan& sp : sources_) streams.push_back(BuildSource(sp));
    stream::Stream<BatchPtr> cur = streams[0];
    for (size_t i = 1; i < streams.size(); ++i) cur = cur.union_with(streams[i]);

    for (StepPlan& plan : steps_) {
      if (plan.kind == StepPlan::Kind::kUnion) {
        p_.steps_.push_back({"union", "", plan.label, plan.detail, plan.parallelism, "", nullptr});
        for (size_t u : plan.unions) cur = cur.union_with(BuildSource(union_sources_[u]));
        continue;
      }
      if (plan.key_by != nullptr) {
        std::vector<std::string> names;
        for (const Text& k : plan.key_by->keys) names.push_back(k.value);
        p_.steps_.push_back({"key_by", "", plan.key_by_label,
                             "records with equal " + Join(names) + " meet in one instance",
                             plan.parallelism, "", nullptr});
      }
      if (plan.by_key) cur = cur.partition_rows(KeySplitter(plan.keyed.key_columns, &ctx->pool));
      std::string base = plan.spec->name.empty() ? plan.role : plan.spec->name;
      std::string label = plan.label;
      switch (plan.kind) {
        case StepPlan::Kind::kFilter: {
          Expr expr = *plan.filter;
          cur = cur.Apply<BatchPtr>(base, [=](stream::detail::RunState&, const std::string& name) {
            return std::make_unique<FilterStep>(name, label, *ctx, expr);
          });
          break;
        }
        case StepPlan::Kind::kSelect: {
          auto schema = plan.schema;
          auto items = plan.items;
          cur = cur.Apply<BatchPtr>(base, [=](stream::detail::RunState&, const std::string& name) {
            return std::make_unique<SelectStep>(name, label, *ctx, schema, items);
          });
          break;
        }
        case StepPlan::Kind::kWindow: {
          KeyedConfig config = plan.keyed;
          WindowSpec window = plan.window;
          cur = cur.Apply<BatchPtr>(base, [=](stream::detail::RunState&, const std::string& name) {
            return std::make_unique<WindowStep>(name, *ctx, config, window);
          });
          break;
        }
        case StepPlan::Kind::kRolling: {
          KeyedConfig config = plan.keyed;
          cur = cur.Apply<BatchPtr>(base, [=](stream::detail::RunState&, const std::string& name) {
            return std::make_unique<RollingStep>(name, *ctx, config);
          });
          break;
        }
        case StepPlan::Kind::kUnion:
          break;  // handled above: no operator of its own
        case StepPlan::Kind::kStage: {
          auto group = std::make_shared<StageGroup>(plan.stage, *ctx, plan.parallelism);
          cur = cur.Apply<BatchPtr>(
              base + "_in", [group](stream::detail::RunState& run, const std::string& name) {
                return std::make_unique<StageInput>(name, group, &run.cancelled);
              });
          cur.parallelism(plan.parallelism);
          p_.steps_.push_back({"stage_in", cur.upstreams().back().node->name, plan.label,
                               "records to the replicas", plan.parallelism, plan.input, nullptr});
          cur = engine.source<BatchPtr>(
              base, [group] { return std::make_unique<StageOutput>(group); }, plan.parallelism);
          p_.stages_.push_back({plan.label, cur.upstreams().back().node->name, group});
          break;
        }
      }
      cur.parallelism(plan.parallelism);
      Record(cur,
             {plan.role, "", plan.label, plan.detail, plan.parallelism, plan.input, plan.schema});
      if (plan.kind == StepPlan::Kind::kWindow) {
        p_.window_ops_.push_back(p_.steps_.back().op);
        if (!plan.window.late_path.empty()) {
          stream::Stream<BatchPtr> late(&engine, {{cur.upstreams().back().node, 1}});
          std::string path = spec_.Resolve(plan.window.late_path);
          std::shared_ptr<const Schema> in_schema = InputSchemaOf(plan);
          const bool tx = spec_.checkpoint.has_value();
          stream::SinkHandle h = late.sink("late", [path, in_schema, tx] {
            if (tx) return BatchSink::Transactional(path, in_schema, Format::kJsonl, ',');
            return std::make_unique<BatchSink>(
                [path](int i, int n) { return stream::detail::OpenFileWriter(path, i, n); },
                in_schema, Format::kJsonl, ',');
          });
          h.parallelism(1);
          p_.steps_.push_back({"late", "late", plan.label,
                               "records too late for their window, to " + plan.window.late_path, 1,
                               "forward", in_schema});
        }
      }
    }

    if (p_.options_.collect) {
      auto collect = p_.options_.collect;
      stream::SinkHandle sink = cur.sink([collect](const stream::Batch<BatchPtr>& b) {
        for (const BatchPtr& r : b.records) collect(*r);
      });
      sink.parallelism(parallelism_);
      p_.steps_.push_back(
          {"sink", "sink", "sink", "collected in memory", parallelism_, "forward", schema_});
      p_.sink_ops_.push_back("sink");
      return;
    }
    const SinkSpec& s = spec_.sink;
    BatchSink::WriterFactory open;
    std::string detail;
    if (s.kind == SinkSpec::Kind::kFile) {
      std::string path = spec_.Resolve(s.path.value);
      open = [path](int i, int n) { return stream::detail::OpenFileWriter(path, i, n); };
      detail = "file " + s.path.value;
      if (sink_parallelism_ > 1) detail += " (instance k writes " + s.path.value + ".k)";
    } else if (s.kind == SinkSpec::Kind::kStdout) {
      open = [](int i, int n) { return stream::detail::OpenFileWriter("-", i, n); };
      detail = "stdout";
    } else {
      stream::TcpOptions tcp;
      tcp.connect = s.connect;
      open = [tcp](int, int) { return stream::detail::ConnectTcpWriter(tcp); };
      detail = "tcp " + s.connect;
    }
    detail += " (" + std::string(FormatName(s.format)) + ")";
    Format format = s.format;
    char delimiter = s.delimiter;
    auto schema = schema_;
    std::string tx_path;
    if (spec_.checkpoint && s.kind == SinkSpec::Kind::kFile) tx_path = spec_.Resolve(s.path.value);
    stream::SinkHandle sink = cur.sink("sink", [open, schema, format, delimiter, tx_path] {
      if (!tx_path.empty()) return BatchSink::Transactional(tx_path, schema, format, delimiter);
      return std::make_unique<BatchSink>(open, schema, format, delimiter);
    });
    sink.parallelism(sink_parallelism_);
    std::string input = sink_parallelism_ == parallelism_ ? "forward" : "rebalance";
    if (next_input_union_) input = "union";
    p_.steps_.push_back({"sink", "sink", "sink", detail, sink_parallelism_, input, schema_});
    p_.sink_ops_.push_back("sink");
  }

  std::shared_ptr<const Schema> InputSchemaOf(const StepPlan& plan) const {
    std::shared_ptr<const Schema> in =
        sources_.size() > 1 ? sources_[0].conformed : sources_[0].schema;
    for (const StepPlan& s : steps_) {
      if (&s == &plan) return in;
      in = s.schema;
    }
    return in;
  }

  std::string SourceDetail(const SourcePlan& sp) const {
    const SourceSpec& s = *sp.spec;
    switch (s.kind) {
      case SourceSpec::Kind::kGenerate: {
        std::string d = "generate " + (s.records ? std::to_string(*s.records) : "unbounded") +
                        " records, " + std::to_string(s.keys) + " keys, seed " +
                        std::to_string(s.seed);
        return d;
      }
      case SourceSpec::Kind::kFile: {
        std::string d = "file " + s.path.value + " (" + std::string(FormatName(s.format)) + ")";
        if (sp.inputs.size() != 1 || sp.inputs[0].name != s.path.value) {
          d += ", " + std::to_string(sp.inputs.size()) + " file(s)";
        }
        return d;
      }
      case SourceSpec::Kind::kStdin:
        return "stdin (" + std::string(FormatName(s.format)) + ")";
      case SourceSpec::Kind::kTcp:
        return "tcp " + (s.listen.empty() ? "connect " + s.connect : "listen " + s.listen) + " (" +
               std::string(FormatName(s.format)) + ")";
    }
    return "";
  }

  SpecPipeline& p_;
  const Spec& spec_;
  std::vector<SourcePlan> sources_;
  std::deque<SourcePlan> union_sources_;  // of union steps (stable addresses)
  std::vector<StepPlan> steps_;
  std::shared_ptr<const Schema> schema_;  // flowing out of the last planned step
  bool schema_known_ = true;
  bool has_time_ = false;
  bool ordered_ = false;           // one source instance feeds everything, in order
  bool carry_watermarks_ = false;  // some window decides lateness per row
  bool next_input_union_ = false;  // the next node reads several streams (sources, union)
  bool can_fail_ = false;
  bool uses_order_ = false;
  bool need_time_ = false;    // a window needs event time
  bool keep_origin_ = false;  // rows carry their origin (errors after the source, first/last)
  // Source fields the steps read before the first step that replaces the fields (a select
  // without "*", a keyed step); all of them when they reach the sink. A generator makes only
  // these.
  std::set<std::string> used_;
  bool passthrough_ = true;
  int parallelism_ = 1;  // of the last node
  int sink_parallelism_ = 1;
};

SpecPipeline::SpecPipeline(const Spec& spec, PlanOptions options)
    : spec_(spec), options_(options), ctx_(std::make_unique<RunContext>()) {}

SpecPipeline::~SpecPipeline() {
  engine_.reset();  // before the context whose pool its batches return to
}

Result<std::unique_ptr<SpecPipeline>> SpecPipeline::Make(const Spec& spec, PlanOptions options) {
  std::unique_ptr<SpecPipeline> p(new SpecPipeline(spec, options));
  Builder builder(*p);
  RETURN_IF_ERROR(builder.Build());
  return p;
}

namespace {

std::string SchemaText(const PlannedStep& step) {
  if (!step.schema) return "(unknown until the pipeline runs)";
  std::string out;
  for (size_t i = 0; i < step.schema->fields.size(); ++i) {
    const Field& f = step.schema->fields[i];
    if (!out.empty()) out += ", ";
    out += f.name + " " + std::string(TypeName(f.type));
    if (i < step.optional.size() && step.optional[i]) out += " (optional)";
  }
  if (step.inferred) out += "  [inferred]";
  return out;
}

nlohmann::json SchemaJson(const PlannedStep& step) {
  if (!step.schema) return nullptr;
  nlohmann::json fields = nlohmann::json::array();
  for (size_t i = 0; i < step.schema->fields.size(); ++i) {
    const Field& f = step.schema->fields[i];
    nlohmann::json j = {{"name", f.name}, {"type", TypeName(f.type)}};
    if (i < step.optional.size() && step.optional[i]) j["optional"] = true;
    fields.push_back(std::move(j));
  }
  return fields;
}

}  // namespace

std::string SpecPipeline::PlanText() const {
  std::string out = fmt::format("pipeline {} (parallelism {})\n", spec_.name, spec_.parallelism);
  for (const PlannedStep& s : steps_) {
    std::string head = s.label == "source" || s.label == "sink" ? s.role : s.label;
    if (s.role == "event_time" || s.role == "conform" || s.role == "late") head = "  " + s.role;
    out += fmt::format("{:<18} {}\n", head, s.detail);
    if (s.role == "key_by" || s.role == "union") continue;  // not operators of their own
    if (s.role == "stage_in") continue;                     // shown with its stage
    std::string where = fmt::format("parallelism {}", s.parallelism);
    if (!s.input.empty() && s.role != "source") where += ", input " + s.input;
    out += fmt::format("{:<18} {}\n", "", where);
    out += fmt::format("{:<18} schema: {}\n", "", SchemaText(s));
  }
  out += "tasks (operators chained in one thread, times their instances):\n";
  for (const stream::TaskPlan& t : tasks()) {
    out += fmt::format("  {} x{}\n", Join(t.operators, " -> "), t.parallelism);
  }
  for (const std::string& note : notes_) out += "note: " + note + "\n";
  return out;
}

nlohmann::json SpecPipeline::PlanJson() const {
  nlohmann::json steps = nlohmann::json::array();
  for (const PlannedStep& s : steps_) {
    nlohmann::json j = {{"role", s.role},
                        {"operator", s.op},
                        {"label", s.label},
                        {"detail", s.detail},
                        {"parallelism", s.parallelism},
                        {"input", s.input},
                        {"schema", SchemaJson(s)}};
    if (s.role == "source") j["inferred"] = s.inferred;
    steps.push_back(std::move(j));
  }
  nlohmann::json tasks_json = nlohmann::json::array();
  for (const stream::TaskPlan& t : tasks()) {
    tasks_json.push_back({{"operators", t.operators}, {"parallelism", t.parallelism}});
  }
  return {{"name", spec_.name},
          {"parallelism", spec_.parallelism},
          {"steps", std::move(steps)},
          {"tasks", std::move(tasks_json)},
          {"notes", notes_}};
}

namespace {

// The first difference between two job descriptions, in the spec's terms.
std::string JobDifference(const nlohmann::json& was, const nlohmann::json& now) {
  if (was.value("name", "") != now.value("name", "")) {
    return "the pipeline's name was '" + was.value("name", "") + "'";
  }
  const auto& a = was["steps"];
  const auto& b = now["steps"];
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    for (const char* key : {"detail", "parallelism", "input", "schema", "role"}) {
      if (a[i][key] != b[i][key]) {
        std::string what = key == std::string("detail") ? "what it does" : key;
        std::string label = b[i].value("label", "");
        if (label == "source" || label == "sink") label += " (" + b[i].value("role", "") + ")";
        return label + ": " + what + " was " + a[i][key].dump() + ", now " + b[i][key].dump();
      }
    }
  }
  if (a.size() != b.size()) {
    return "it had " + std::to_string(a.size()) + " operators, now " + std::to_string(b.size());
  }
  if (was["inputs"] != now["inputs"]) {
    for (size_t i = 0; i < std::min(was["inputs"].size(), now["inputs"].size()); ++i) {
      if (was["inputs"][i] != now["inputs"][i]) {
        return "the input files of source " + now["inputs"][i].value("source", "") + " were " +
               was["inputs"][i]["files"].dump();
      }
    }
    return "its inputs were " + was["inputs"].dump();
  }
  if (was["batch_size"] != now["batch_size"]) {
    return "batch_size was " + was["batch_size"].dump();
  }
  return "";
}

}  // namespace

Status SpecPipeline::Run() {
  if (options_.validate_only) return InvalidArgument("a pipeline planned for validation only");
  auto log = [&](const std::string& line) {
    if (options_.log) options_.log(line);
  };
  if (store_) {
    if (options_.fresh) {
      RETURN_IF_ERROR(store_->Clear());
    } else {
      std::vector<std::string> warnings;
      Result<std::optional<stream::Checkpoint>> latest = store_->LoadLatest(&warnings);
      for (const std::string& w : warnings) log("warning: " + w);
      if (!latest.ok()) return latest.status().Wrap("reading checkpoints");
      if (latest->has_value()) {
        nlohmann::json was = nlohmann::json::parse((*latest)->job, nullptr, false);
        nlohmann::json now = nlohmann::json::parse(job_);
        if (was.is_discarded() || was != now) {
          std::string diff = was.is_discarded() ? "it was not written by a spec pipeline"
                                                : JobDifference(was, now);
          return InvalidArgument("the spec changed since checkpoint " +
                                 std::to_string((*latest)->id) + " in " + checkpoint_dir_ +
                                 " was taken, so its state cannot be resumed: " + diff +
                                 ". Run with --fresh to start over (discarding the checkpoints)");
        }
        resume_ = std::move(**latest);
        engine_->ResumeFrom(&*resume_);
        ctx_->resumed_checkpoint = resume_->id;
        resumed_unix_ms_.store(resume_->unix_ms, std::memory_order_relaxed);
        log("resuming from " + std::string(resume_->savepoint ? "savepoint " : "checkpoint ") +
            std::to_string(resume_->id) + " in " + checkpoint_dir_);
      }
    }
  }
  ASSIGN_OR_RETURN(
      ctx_->bad, BadRecords::Open(spec_.on_error, dead_letter_path_, inputs_, resume_.has_value()));
  Status st = engine_->Run();
  if (st.ok() && store_) {
    // The input was consumed and the output committed: a later run starts over.
    Status cleared = store_->Clear();
    if (!cleared.ok()) log("warning: " + cleared.message());
  }
  Status closed = ctx_->bad->Close();
  if (!st.ok()) {
    // A bad record under on_error: fail says where it is; report just that.
    if (std::string failure = ctx_->bad->failure(); !failure.empty()) {
      return InvalidArgument(failure);
    }
    if (st.code() == StatusCode::kCancelled) return st;
    // "operator 'select#2' failed: ..." reads better with the step's label.
    std::string message = st.message();
    for (const PlannedStep& s : steps_) {
      for (const std::string& prefix :
           {"operator '" + s.op + "' failed: ", "source '" + s.op + "': "}) {
        if (message.rfind(prefix, 0) == 0) {
          return Status(st.code(), s.label + (s.label == s.role ? "" : " " + s.role) + ": " +
                                       message.substr(prefix.size()));
        }
      }
    }
    return st;
  }
  return closed;
}

void SpecPipeline::Cancel() { engine_->Cancel(); }

std::vector<StageStatus> SpecPipeline::Stages() const {
  std::vector<StageStatus> out;
  for (const Stage& s : stages_) out.push_back({s.label, s.op, s.group->Status()});
  return out;
}

Result<uint64_t> SpecPipeline::StopWithSavepoint(std::chrono::milliseconds timeout) {
  return engine_->StopWithSavepoint(timeout);
}

std::map<std::string, uint64_t, std::less<>> SpecPipeline::BadRecordsByStep() const {
  if (!ctx_->bad) return {};
  return ctx_->bad->CountByStep();
}

RunProgress SpecPipeline::Progress() const {
  RunProgress p;
  for (const stream::OperatorStats& s : engine_->Stats()) {
    if (std::find(source_ops_.begin(), source_ops_.end(), s.name) != source_ops_.end()) {
      p.records_in += s.records_out;
    }
    if (std::find(sink_ops_.begin(), sink_ops_.end(), s.name) != sink_ops_.end()) {
      p.records_out += s.records_in;
    }
    p.late += s.late_records;
  }
  if (ctx_->bad) p.bad = ctx_->bad->count();
  p.max_event_time = ctx_->progress.max_event_time.load(std::memory_order_relaxed);
  p.watermark = window_ops_.empty()
                    ? ctx_->progress.source_watermark.load(std::memory_order_relaxed)
                    : ctx_->progress.window_watermark.load(std::memory_order_relaxed);
  return p;
}

}  // namespace barge::pipeline
