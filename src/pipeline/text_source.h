// Reading text inputs (files, globs of files, stdin) straight into columnar batches: CSV (RFC 4180,
// quoted fields may span lines, the header row names the fields), JSON Lines (nested objects
// flattened to dotted names, arrays kept as JSON text) and plain lines. Values are parsed into
// their column's type as the record is split, with no per-record object in between. Schemas are
// declared or inferred from a sample of the input.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "barge/status.h"
#include "barge/stream/source.h"
#include "pipeline/bad_records.h"
#include "pipeline/batch_pool.h"
#include "pipeline/spec.h"

namespace barge::pipeline {

struct TextFormat {
  Format format = Format::kLines;
  char delimiter = ',';
  bool header = true;  // csv
  // jsonl: a field the schema does not have is a bad record (a stage's answers), rather than
  // ignored (a source's records).
  bool only_schema_fields = false;
};

// One input of a source: a file ("-" for stdin), named in messages, with its origin index.
struct TextInput {
  std::string path;
  std::string name;
  uint64_t index = 0;
};

// A record longer than this (line break included) is a bad record.
inline constexpr size_t kMaxRecordBytes = size_t{16} << 20;

// The fields of a sample: the first bytes of an input (`complete`: the whole input). CSV: the
// header names the fields (or column0, column1, ... without one); JSON Lines: every field seen,
// in order, nested ones dotted. A column is BIGINT, DOUBLE, BOOLEAN or TIMESTAMP when at least 80%
// of its non-empty sampled values read as that type (the others are then bad records), else
// VARCHAR. A JSON field absent from some sampled records is optional. A complete CSV input without
// records (only a header) gives NULL-typed fields.
Result<std::vector<FieldSpec>> InferSchema(std::string_view sample, bool complete,
                                           const TextFormat& format, const std::string& name);

// Reads the first `max_bytes` of `path` (or all of it, `*complete` then true). For stdin ("-"),
// waits for `max_records` line breaks, `max_bytes` or end of input.
Result<std::string> ReadSample(const std::string& path, size_t max_bytes, size_t max_records,
                               bool* complete);

// Splits records of one format into rows of a fixed schema.
class RowDecoder {
 public:
  virtual ~RowDecoder() = default;

  struct Framed {
    enum Kind { kNeedMore, kRecord, kBlank, kBad } kind = kNeedMore;
    size_t consumed = 0;  // bytes of the record, terminator included
    uint64_t lines = 0;   // line breaks within them
    std::string error;    // kBad: why
  };

  static Result<std::unique_ptr<RowDecoder>> Make(const TextFormat& format,
                                                  std::shared_ptr<const Schema> schema,
                                                  std::vector<bool> optional);

  // A new input begins (csv: its first record is the header when the format has one).
  virtual void StartInput() = 0;
  // Finds the record at the start of `data`.
  virtual Framed Frame(std::string_view data, bool eof) = 0;
  // Appends the framed record (`record` = the framed bytes) as a row of `out`. On a bad record
  // `out` is unchanged and `error` says why. Returns an error Status only for what stops the
  // whole input (a csv header without a field of the schema).
  virtual Result<bool> Parse(std::string_view record, RecordBatch& out, std::string& error) = 0;
};

// A source over text inputs. Instance k of P reads inputs k, k + P, ... in order, one reader each,
// so every input's records keep their order (watermarks and lateness stay exact per input).
class TextSource final : public stream::Source<BatchPtr> {
 public:
  struct Options {
    std::vector<TextInput> inputs;
    TextFormat format;
    std::shared_ptr<const Schema> schema;
    std::vector<bool> optional;  // per schema field (JSON)
    size_t batch_rows = 1024;
    BatchPool* pool = nullptr;
    BadRecords* bad = nullptr;
    // Bytes of stdin already read for schema inference; read before the rest of stdin.
    std::shared_ptr<const std::string> stdin_prefix;
    // The event time field: a row where it is NULL is a bad record here, in input order.
    int event_time_field = -1;
  };
  explicit TextSource(Options options);
  ~TextSource() override;

  Status Open(int instance, int parallelism) override;
  Result<stream::SourceState> Next(stream::Batch<BatchPtr>& out, size_t max_records) override;
  void Close() override;

  // Files are replayable: the position is the input being read, its identity (device, inode)
  // and the byte offset and line after the records returned. Stdin is not.
  bool replayable() const override;
  void Snapshot(stream::StateWriter& out) override;
  Status Restore(stream::StateReader& in) override;

 private:
  struct Input;
  Status OpenNext();
  // Reads the header record of the input just opened (csv with a header), as reading from its
  // start would, before a restored position moves past it.
  Status ReadHeader();
  // Parses the records buffered in the current input into `b`, up to `limit` rows.
  Status Drain(RecordBatch& b, size_t limit);
  // Whether a bad record's report lets reading go on; else keeps its error in deferred_.
  bool Reported(Status st);

  Options options_;
  std::vector<size_t> mine_;  // indexes into options_.inputs
  size_t next_ = 0;
  std::unique_ptr<Input> input_;
  std::unique_ptr<RowDecoder> decoder_;
  std::string error_;
  // on_error: fail: a bad record's error, returned once the good rows before it are handed out
  // (so a later step's failure on an earlier row is reported first).
  Status deferred_ = Status::Ok();
  size_t batch_bytes_ = 0;  // input bytes read into the batch being filled (kMaxBatchBytes)
};

}  // namespace barge::pipeline
