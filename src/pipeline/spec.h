// The pipeline spec: what a user writes in SPEC.yaml, read with yaml-cpp into plain structs that
// remember where each value was written, so that every later error (a bad expression, an
// unknown field) names FILE:LINE:COL. See docs/pipelines.md for the format.
//
//   ASSIGN_OR_RETURN(Spec spec, LoadSpec("orders.yaml", {.sets = {"parallelism=4"}}));
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "pipeline/types.h"

namespace barge::pipeline {

// A place in the spec file: 1-based line and column; 0 when unknown. A value given by --set is
// placed by the index of its --set argument instead.
struct Pos {
  int line = 0;
  int col = 0;
  int set = -1;  // index into Spec::sets, or -1
};

// A scalar as written: its value and where its raw text starts in the file, so that an offset
// into the value (an expression's error) maps back to a line and column.
struct Text {
  std::string value;
  Pos pos;
  int raw_offset = -1;  // byte offset of the scalar's raw text in the file; -1 when synthetic
};

enum class Format { kCsv, kJsonl, kLines };
std::string_view FormatName(Format f);

struct EventTimeSpec {
  Text field;
  int64_t max_delay_ms = 0;
  // An instance with no records for this long stops holding back event time (0: never).
  int64_t idle_ms = 0;
};

// A declared schema field.
struct FieldSpec {
  Field field;
  bool optional = false;  // JSON: may be absent (NULL); else absence makes a bad record
  Pos pos;
};

struct SourceSpec {
  enum class Kind { kFile, kStdin, kTcp, kGenerate };
  Kind kind = Kind::kFile;
  Pos pos;
  std::string name;  // the engine operator's name ("source", or the user's `name:`)
  // file: a path or a glob (`logs/*.jsonl`); stdin/tcp/file: the format of each record.
  Text path;
  Format format = Format::kLines;
  Pos format_pos;
  char delimiter = ',';
  bool header = true;  // csv: the first row names the fields
  // tcp
  std::string listen;
  std::string connect;
  int max_connections = 0;
  // generate: fields id, key, value, ts (BIGINT), deterministic for a seed.
  std::optional<uint64_t> records;  // none: unbounded
  uint64_t keys = 1000;
  uint64_t seed = 0;
  uint64_t records_per_second = 1000;  // event time: ts advances 1 s per this many records
  int64_t start_ms = 0;                // ts of the first record
  int64_t max_disorder_ms = 0;         // ts moved back by up to this much, deterministically
  // Declared schema, if any.
  std::optional<std::vector<FieldSpec>> schema;
  Pos schema_pos;
  std::optional<EventTimeSpec> event_time;
  int parallelism = 0;  // 0: chosen by the planner
  Pos parallelism_pos;
};

// A named expression of a select or aggregate step: `name: expression`.
struct NamedExpr {
  std::string name;
  Pos name_pos;
  Text expr;
};

struct WindowSpec {
  enum class Kind { kTumbling, kSliding, kSession };
  Kind kind = Kind::kTumbling;
  int64_t size_ms = 0;
  int64_t slide_ms = 0;
  int64_t offset_ms = 0;
  int64_t gap_ms = 0;
  int64_t lateness_ms = 0;
  std::string late_path;  // too-late records go here (JSON Lines); empty: counted only
  Pos pos;
};

// Where barge mounts, in every replica of a container stage, the replica's rings
// (BARGE_DEFAULT_DIR of sdk/c/barge_stage.h) and the SDKs it ships. Volumes may not use them.
inline constexpr std::string_view kStageDirMount = "/run/barge/stage";
inline constexpr std::string_view kStageSdkMount = "/run/barge/sdk";

// A container stage: an image that processes batches, as `barge run` would run it. The reader
// checks every option that can be checked without the host (the launch library's rules, as
// `barge run` applies them); the planner checks the rest (the image, host paths, CPUs).
struct StageSpec {
  Text image;
  std::vector<std::string> command;  // empty: the image's Entrypoint and Cmd
  enum class Protocol { kShm, kLines };
  Protocol protocol = Protocol::kShm;
  std::string memory;  // "256m"; empty: no limit
  double cpus = 0;
  Pos cpus_pos;
  std::vector<std::string> env;      // "K=V"
  std::vector<std::string> volumes;  // NAME:/DST[:ro] or /HOST:/DST[:ro]
  std::vector<Pos> volume_pos;       // where each of `volumes` is
  std::string network = "none";
  std::string user;
  std::string workdir;
  int restart = 0;  // replica restarts allowed before the pipeline fails
  // The fields the stage returns: declared (with "*" the input's plus these), else the input's.
  std::optional<std::vector<FieldSpec>> output;
  bool output_star = false;
  Pos output_pos;
  uint64_t ring_bytes = 32ull << 20;  // each direction
  size_t message_rows = 0;            // batch: rows per message to a replica; 0: as they come
};

struct StepSpec {
  enum class Kind { kFilter, kSelect, kKeyBy, kWindow, kAggregate, kUnion, kStage };
  Kind kind = Kind::kFilter;
  Pos pos;
  std::string keyword;  // as written: filter, select, key_by, window, aggregate, reduce, union
  std::string name;     // the user's `name:`, else empty
  Text filter;
  std::vector<NamedExpr> select;
  bool select_star = false;  // `*: true` or a `*` entry keeps the other fields
  std::vector<Text> keys;
  std::optional<WindowSpec> window;       // kWindow
  std::vector<NamedExpr> aggregates;      // kWindow and kAggregate (rolling, per key)
  std::vector<SourceSpec> union_sources;  // kUnion: merged into the stream here
  std::optional<StageSpec> stage;         // kStage
  int parallelism = 0;
  Pos parallelism_pos;
};

struct SinkSpec {
  enum class Kind { kFile, kStdout, kTcp };
  Kind kind = Kind::kStdout;
  Pos pos;
  Text path;
  std::string connect;
  Format format = Format::kJsonl;
  Pos format_pos;
  char delimiter = ',';
  int parallelism = 0;
  Pos parallelism_pos;
};

struct OnErrorSpec {
  enum class Mode { kFail, kSkip, kDeadLetter };
  Mode mode = Mode::kFail;
  std::string path;  // kDeadLetter
  Pos pos;
};

// checkpoint: {interval: 1s, dir: PATH, keep: 3}
struct CheckpointSpec {
  int64_t interval_ms = 0;
  std::string dir;  // as written; empty: ROOT/checkpoints/NAME
  int keep = 3;
  Pos pos;
};

struct Spec {
  std::string file;  // as the user named it, for messages
  std::string dir;   // its directory: relative paths in the spec are relative to it
  std::shared_ptr<const std::string> text;  // the file's bytes, to locate errors
  std::string name;
  int parallelism = 1;
  Pos parallelism_pos;
  size_t batch_size = 1024;  // rows per columnar batch
  std::vector<SourceSpec> sources;
  std::vector<StepSpec> steps;
  SinkSpec sink;
  OnErrorSpec on_error;
  std::optional<CheckpointSpec> checkpoint;
  std::vector<std::string> sets;  // the --set arguments applied, for messages

  // "FILE:LINE:COL: message" as an InvalidArgument status (FILE alone when pos is unknown;
  // "--set PATH=VALUE: message" for a value given by --set).
  Status ErrorAt(Pos pos, std::string_view message) const;
  // The position of byte `offset` of `text`'s value in the file.
  Pos Locate(const Text& text, size_t offset) const;
  // A path written in the spec, relative to the spec's directory ("-" and absolute paths as is).
  std::string Resolve(const std::string& path) const;
};

struct LoadOptions {
  // `PATH=VALUE` overrides applied to the YAML before it is read: PATH is dotted keys and
  // sequence indexes (`source.file.path`, `steps.0.filter`), VALUE is YAML (`4`, `{tumbling: 5s}`).
  std::vector<std::string> sets;
  int parallelism = 0;  // > 0 overrides the spec's `parallelism`
};

// Reads and checks the spec's structure (keys, kinds, durations, numbers). Expressions and field
// names are checked later, against schemas, by the planner. Errors name FILE:LINE:COL.
Result<Spec> LoadSpec(const std::string& path, const LoadOptions& options = {});
// The same from text already read (tests; `file` names it in messages).
Result<Spec> ParseSpec(std::string text, const std::string& file, const LoadOptions& options = {});

// "2s", "10s", "1.5s", "500ms", "1m", "2h", "1d", or a bare number of milliseconds.
std::optional<int64_t> ParseDurationMs(std::string_view text);

}  // namespace barge::pipeline
