// Internal pieces shared by the built-in sources: a block reader over a file descriptor, record
// decoders (lines, JSON Lines, CSV) and the source that joins them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "barge/status.h"
#include "barge/stream/io.h"
#include "barge/stream/source.h"
#include "base/unique_fd.h"

namespace barge::stream::io {

// Reads a file descriptor in large blocks into a buffer from which the caller consumes whole
// records. The buffer grows only to hold one record that is longer than a block.
class BlockReader {
 public:
  static constexpr size_t kBlockBytes = size_t{1} << 20;

  enum class Fill {
    kData,    // at least one byte was appended
    kNoData,  // nothing arrived within the timeout
    kEof,     // the writer closed its end; data() holds the last bytes
  };

  // `name` is how errors refer to the input (a path, "<stdin>", a peer). `pollable` descriptors
  // (pipes, sockets, ttys) are waited on with poll; regular files are read directly.
  BlockReader(UniqueFd fd, std::string name, bool pollable);

  // Opens `path` ("-" duplicates stdin) for reading; errors name the path.
  static Result<BlockReader> OpenPath(const std::string& path);

  // Puts `bytes` in front of everything not read yet, as if they had been read (data read ahead
  // by someone else, such as a sample of stdin). Call before the first Read.
  void Preload(std::string_view bytes);

  // Appends the next block. A pollable descriptor waits at most `timeout_ms` for data.
  Result<Fill> Read(int timeout_ms);

  // Regular files only: their size; moving to `offset` (dropping buffered data); counting the
  // line breaks in [0, end) without disturbing the reading position.
  Result<uint64_t> Size() const;
  Status Seek(uint64_t offset);
  Result<uint64_t> CountLineBreaks(uint64_t end) const;

  // Bytes read and not yet consumed.
  std::string_view data() const { return {buf_.get() + begin_, end_ - begin_}; }
  void Consume(size_t n) { begin_ += n; }
  // File offset of data()[0].
  uint64_t offset() const { return buf_offset_ + begin_; }
  bool regular() const { return !pollable_; }
  bool eof() const { return eof_; }
  // Treats the input as ended (a connection that failed); buffered bytes remain readable.
  void MarkClosed() { eof_ = true; }
  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  UniqueFd fd_;
  std::string name_;
  bool pollable_;
  bool eof_ = false;
  std::unique_ptr<char[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  uint64_t buf_offset_ = 0;  // file offset of buf_[0]
};

// What a decoder found at the start of the unread data.
struct Decoded {
  enum Kind {
    kNeedMore,  // no complete record yet (never returned at end of input with data left)
    kRecord,    // `consumed` bytes made one record
    kNothing,   // `consumed` bytes held no record (a blank line)
    kError,     // malformed: `error` says why; skipping means dropping `consumed` bytes
  } kind = kNeedMore;
  size_t consumed = 0;
  uint64_t lines = 0;       // line breaks within `consumed`
  uint64_t error_line = 0;  // kError: line breaks before the error, from the record's start
  std::string error;
};

// Decoders: Decoded Decode(std::string_view data, bool eof, T& out). `data` starts at a record.

// Lines ending in LF; a CR before the LF is dropped.
struct LineDecoder {
  static constexpr const char* kUnit = "line";
  // Records never contain a line break, so a file can be split at line breaks.
  static constexpr bool kSplittable = true;
  Decoded Decode(std::string_view data, bool eof, std::string& out);
};

struct JsonLineDecoder {
  static constexpr const char* kUnit = "line";
  static constexpr bool kSplittable = true;
  Decoded Decode(std::string_view data, bool eof, nlohmann::json& out);
};

class CsvDecoder {
 public:
  static constexpr const char* kUnit = "record";
  // Quoted fields may hold line breaks: a line break does not tell where a record starts.
  static constexpr bool kSplittable = false;
  explicit CsvDecoder(const CsvOptions& options) : options_(options) {}
  Decoded Decode(std::string_view data, bool eof, CsvRow& out);

 private:
  // Parses one record's fields; fills everything in `d` but the field-count check.
  void Parse(std::string_view data, bool eof, std::vector<std::string>& fields, Decoded& d);

  CsvOptions options_;
  std::shared_ptr<const CsvHeader> header_;
  bool at_start_ = true;  // nothing decoded yet: a byte order mark may come
  bool first_ = true;     // no record yet: the next one is the header or sets the field count
  size_t expected_fields_ = 0;
};

// Splits the line starting `data`: the record's length without its terminator, or npos when
// no LF follows (not at end of input).
size_t LineLength(std::string_view data, bool eof, size_t* consumed, uint64_t* lines);

// "PATH:LINE: message" as an InvalidArgument status.
Status MalformedAt(const std::string& name, uint64_t line, std::string_view message);

// Decodes records from one BlockReader with the error policy; shared by file, stdin and TCP
// sources (TCP keeps one per connection).
template <class T, class Decoder>
class RecordStream {
 public:
  RecordStream(BlockReader reader, Decoder decoder, OnError on_error, size_t max_record_bytes)
      : reader_(std::move(reader)),
        decoder_(std::move(decoder)),
        on_error_(on_error),
        max_record_bytes_(max_record_bytes) {}

  // Reads only the records that start in [start, limit) of a regular file, for a source
  // instance that reads one byte range: the record around `start` belongs to the instance
  // before. Call before the first Drain.
  Status Restrict(uint64_t start, uint64_t limit) {
    limit_ = limit;
    if (start == 0) return Status::Ok();
    // From the byte before `start`, drop everything through the first line break: a record
    // starting exactly at `start` follows a line break at start - 1.
    RETURN_IF_ERROR(reader_.Seek(start - 1));
    discarding_ = true;
    lines_before_known_ = false;
    lines_before_end_ = start - 1;
    return Status::Ok();
  }

  // Appends complete records already buffered, up to `max_records` in `out`. Returns true when
  // more bytes are needed to go on (false: out is full, or the input is exhausted).
  Result<bool> Drain(Batch<T>& out, size_t max_records, SourceMetrics& metrics) {
    while (out.records.size() < max_records) {
      std::string_view data = reader_.data();
      if (discarding_) {
        // Dropping bytes through the next line break: an over-long record being skipped, or
        // the line a byte range starts inside of.
        size_t nl = data.find('\n');
        if (nl == std::string_view::npos) {
          reader_.Consume(data.size());
          if (reader_.eof()) return false;
          return true;
        }
        reader_.Consume(nl + 1);
        ++line_;
        discarding_ = false;
        continue;
      }
      if (reader_.offset() >= limit_) {
        past_limit_ = true;
        return false;
      }
      out.records.emplace_back();
      Decoded d = decoder_.Decode(data, reader_.eof(), out.records.back());
      if (d.kind != Decoded::kNeedMore && d.consumed > max_record_bytes_) {
        d.kind = Decoded::kError;
        d.error = TooLong();
        d.error_line = 0;
      }
      if (d.kind != Decoded::kRecord) out.records.pop_back();
      switch (d.kind) {
        case Decoded::kRecord:
        case Decoded::kNothing:
          reader_.Consume(d.consumed);
          line_ += d.lines;
          break;
        case Decoded::kError:
          RETURN_IF_ERROR(Malformed(line_ + d.error_line, d.error, metrics));
          reader_.Consume(d.consumed);
          line_ += d.lines;
          break;
        case Decoded::kNeedMore:
          if (reader_.eof()) return false;
          // At the limit, the record may still end here (at end of input): only more is over.
          if (data.size() > max_record_bytes_) {
            RETURN_IF_ERROR(Malformed(line_, TooLong(), metrics));
            discarding_ = true;
            break;
          }
          return true;
      }
    }
    return false;
  }

  // True when everything was read and decoded.
  bool done() const {
    return past_limit_ || (reader_.eof() && (reader_.data().empty() || discarding_));
  }
  BlockReader& reader() { return reader_; }

 private:
  std::string TooLong() const {
    return std::string(Decoder::kUnit) + " longer than " + std::to_string(max_record_bytes_) +
           " bytes";
  }

  Status Malformed(uint64_t line, std::string_view message, SourceMetrics& metrics) {
    if (on_error_ == OnError::kFail) {
      if (!lines_before_known_) {
        // A byte-range reader learns where its lines start only when it needs to say so.
        ASSIGN_OR_RETURN(lines_before_, reader_.CountLineBreaks(lines_before_end_));
        lines_before_known_ = true;
      }
      return MalformedAt(reader_.name(), lines_before_ + line, message);
    }
    metrics.skipped.store(metrics.skipped.load(std::memory_order_relaxed) + 1,
                          std::memory_order_relaxed);
    return Status::Ok();
  }

  BlockReader reader_;
  Decoder decoder_;
  OnError on_error_;
  size_t max_record_bytes_;
  uint64_t line_ = 1;  // line number of reader_.data()[0], counted from where reading began
  bool discarding_ = false;
  uint64_t limit_ = UINT64_MAX;  // no record starts at or after this offset
  bool past_limit_ = false;
  // Line breaks before where reading began (byte range readers compute it on first need).
  uint64_t lines_before_ = 0;
  bool lines_before_known_ = true;
  uint64_t lines_before_end_ = 0;
};

}  // namespace barge::stream::io
