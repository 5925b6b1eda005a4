// Built-in sources and sinks: files (lines, JSON Lines, CSV), stdin/stdout and TCP (line framed).
//
//   Pipeline p;
//   auto errors =
//       ReadJsonLines(p, "events.jsonl", {.on_error = OnError::kSkip})
//           .filter([](const nlohmann::json& e) { return e.value("level", "") == "error"; })
//           .map([](const nlohmann::json& e) { return e.value("message", ""); });
//   WriteLines(errors, "errors.txt");
//   Status st = p.Run();
//
// Reading. Sources read in large blocks and hand out whole batches. A malformed record fails
// the pipeline with "PATH:LINE: what is wrong" (OnError::kFail, the default) or is counted in
// SourceMetrics::skipped / OperatorStats::skipped and left out (OnError::kSkip). Line numbers
// count from 1; a CSV record spanning lines is numbered by the line it starts on. A file path
// of "-" means stdin. File sources have parallelism 1 unless the caller sets it; with P > 1,
// instance k of a lines or JSON Lines file reads the lines that start in the k-th of P equal
// byte ranges (the union is every line once; order across instances is not file order). CSV
// files (quoted fields may span lines), stdin and TCP are read whole by instance 0; other
// instances end at once.
//
// Writing. Sinks format records into a buffer and write it in blocks of about 1 MiB, when the
// input idles (so a slow stream still shows up promptly) and at the end. A failed write fails the
// pipeline naming the path or peer. A path of "-" means stdout. With sink parallelism P > 1,
// instance k of a file sink writes `PATH.k`; stdout sinks share stdout (whole blocks under a
// lock, so lines never interleave mid-line); each TCP sink instance has its own connection.
// Output is complete only when Run() returned OK: a failed or cancelled pipeline leaves
// whatever was flushed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "barge/status.h"
#include "barge/stream/pipeline.h"
#include "barge/stream/sink.h"

namespace barge::stream {

// What a source does with a malformed record.
enum class OnError {
  kFail,  // stop the pipeline with "PATH:LINE: message"
  kSkip,  // count it in SourceMetrics::skipped and go on
};

// Options of the line-based readers (lines, JSON Lines, stdin, TCP).
struct ReadOptions {
  OnError on_error = OnError::kFail;
  // A record longer than this, line break included, is malformed ("line longer than N bytes");
  // bounds memory on bad input.
  size_t max_record_bytes = size_t{16} << 20;
};
using LineOptions = ReadOptions;

// Options of ReadCsv. The dialect is RFC 4180: fields separated by `delimiter`, records by LF or
// CRLF; a field in double quotes may hold delimiters, line breaks and doubled quotes ("").
// A quote inside an unquoted field is kept literally; text after a closing quote is an error.
struct CsvOptions {
  bool header = false;  // the first record names the columns
  char delimiter = ',';
  // Every record must have as many fields as the header (or, without one, the first record).
  bool check_field_count = true;
  OnError on_error = OnError::kFail;
  size_t max_record_bytes = size_t{16} << 20;
};

// Column names of a CSV file with a header row, shared by all its rows.
struct CsvHeader {
  std::vector<std::string> names;
  // Index of column `name`, or -1.
  int Find(std::string_view name) const {
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) return static_cast<int>(i);
    }
    return -1;
  }
};

// One CSV record.
struct CsvRow {
  std::vector<std::string> fields;
  // The file's header when it has one, else null. Shared because every row of a file points to
  // the same immutable header, and rows outlive the source that read them.
  std::shared_ptr<const CsvHeader> header;

  size_t size() const { return fields.size(); }
  const std::string& operator[](size_t i) const { return fields[i]; }
  // The field of column `name`, or null when there is no header or no such column.
  const std::string* Find(std::string_view name) const {
    int i = header ? header->Find(name) : -1;
    return i >= 0 && static_cast<size_t>(i) < fields.size() ? &fields[static_cast<size_t>(i)]
                                                            : nullptr;
  }
  // The field of column `name`; throws std::out_of_range naming the column when missing (inside
  // an operator that becomes a pipeline error naming the operator).
  const std::string& at(std::string_view name) const {
    if (const std::string* f = Find(name)) return *f;
    throw std::out_of_range("no CSV column '" + std::string(name) + "'");
  }
  bool operator==(const CsvRow& other) const { return fields == other.fields; }
};

// TCP endpoints are "HOST:PORT" ("127.0.0.1:9000", "localhost:9000", "[::1]:9000").
struct TcpOptions {
  std::string listen;   // source: accept connections on this address
  std::string connect;  // source or sink: connect to this address
  // Listening source: end after this many connections were accepted and all of them closed;
  // 0 keeps accepting until the pipeline is cancelled.
  int max_connections = 0;
  int connect_timeout_ms = 5000;
  // Sink: a peer that accepts no data for this long fails the pipeline.
  int write_timeout_ms = 30000;
  ReadOptions read;
};

// Checks the form of a TCP address without resolving it: "HOST:PORT" with PORT a number from 0 to
// 65535 (0: an ephemeral port, for listening). The error names the address.
Status CheckTcpAddress(const std::string& address);

// A listening TCP socket bound before the pipeline runs, so the caller knows the port (bind
// port 0 for an ephemeral one). Copies share the socket, which closes with the last copy.
class TcpListener {
 public:
  static Result<TcpListener> Bind(const std::string& address, int backlog = 64);
  uint16_t port() const;
  // "HOST:PORT" with the bound port.
  const std::string& address() const;

  // Internal: the socket, opaque outside the TCP source.
  struct Socket;
  const std::shared_ptr<Socket>& socket() const { return socket_; }

 private:
  explicit TcpListener(std::shared_ptr<Socket> socket) : socket_(std::move(socket)) {}
  // Shared: the pipeline's source factory must be copyable and the caller keeps its handle.
  std::shared_ptr<Socket> socket_;
};

// ---- Sources. Each adds a source node to `p`.

// Lines of a text file, without their LF (or CRLF) terminator. A last line without a newline is a
// record; an empty line is an empty record.
Stream<std::string> ReadLines(Pipeline& p, std::string path, ReadOptions options = {});
// One JSON value per line; blank lines are ignored. Malformed: "PATH:LINE: invalid JSON ...".
Stream<nlohmann::json> ReadJsonLines(Pipeline& p, std::string path, ReadOptions options = {});
// CSV records; empty lines are ignored. With a header the first record is not emitted: it names
// the columns of every row (CsvRow::Find, CsvRow::at).
Stream<CsvRow> ReadCsv(Pipeline& p, std::string path, CsvOptions options = {});
// Lines of standard input (ReadLines(p, "-")); waits for input without blocking cancellation.
Stream<std::string> ReadStdin(Pipeline& p, ReadOptions options = {});
// Lines from TCP. With `listen` it accepts any number of concurrent connections and interleaves
// their lines (each connection is framed separately; a connection's last line may lack its
// newline); it ends after `max_connections` connections closed, or never when that is 0. With
// `connect` it reads one connection and ends when the peer closes it. Errors name the peer.
Stream<std::string> TcpSource(Pipeline& p, TcpOptions options);
// Same as `listen`, on a socket bound beforehand.
Stream<std::string> TcpSource(Pipeline& p, TcpListener listener, TcpOptions options = {});

// ---- Sinks.

namespace detail {

// Where a sink's bytes go. Write is given whole blocks; errors name the target.
class ByteWriter {
 public:
  virtual ~ByteWriter() = default;
  virtual Status Write(std::string_view block) = 0;
  virtual Status Close() = 0;
};

// `path` ("-" for stdout); instance k of P > 1 writes `path.k`. The file is emptied first, or with
// `append` added to.
Result<std::unique_ptr<ByteWriter>> OpenFileWriter(const std::string& path, int instance,
                                                   int parallelism, bool append = false);
Result<std::unique_ptr<ByteWriter>> ConnectTcpWriter(const TcpOptions& options);

using WriterFactory =
    std::function<Result<std::unique_ptr<ByteWriter>>(int instance, int parallelism)>;

inline constexpr size_t kSinkBlockBytes = size_t{1} << 20;

// Appends each record, formatted by `Fmt` (void fmt(const T&, std::string& out), appending the
// record and its line terminator), to a buffer written in blocks.
template <class T, class Fmt>
class FormattingSink final : public Sink<T> {
 public:
  FormattingSink(WriterFactory open, Fmt fmt) : open_(std::move(open)), fmt_(std::move(fmt)) {}

  Status Open(int instance, int parallelism) override {
    ASSIGN_OR_RETURN(writer_, open_(instance, parallelism));
    buffer_.reserve(kSinkBlockBytes + kSinkBlockBytes / 4);
    return Status::Ok();
  }
  Status Write(const Batch<T>& batch) override {
    for (const T& r : batch.records) {
      fmt_(r, buffer_);
      if (buffer_.size() >= kSinkBlockBytes) RETURN_IF_ERROR(Flush());
    }
    return Status::Ok();
  }
  Status Flush() override {
    if (buffer_.empty() || writer_ == nullptr) return Status::Ok();
    Status st = writer_->Write(buffer_);
    buffer_.clear();
    return st;
  }
  Status Close() override {
    RETURN_IF_ERROR(Flush());
    return writer_->Close();
  }

 private:
  WriterFactory open_;
  Fmt fmt_;
  std::unique_ptr<ByteWriter> writer_;
  std::string buffer_;
};

// A line formatter from the user's function: void f(const T&, std::string& out) appends,
// or f(const T&) returns something convertible to std::string_view.
template <class T, class F>
struct LineFormat {
  F f;
  void operator()(const T& r, std::string& out) {
    if constexpr (std::is_invocable_v<F&, const T&, std::string&>) {
      f(r, out);
    } else {
      static_assert(std::is_convertible_v<std::invoke_result_t<F&, const T&>, std::string_view>,
                    "the format function returns something that is not a string");
      out += std::string_view(f(r));
    }
    out += '\n';
  }
};

struct Identity {
  template <class T>
  const T& operator()(const T& r) const {
    return r;
  }
};

// Appends `row` as one CSV record (quoting fields that need it) and a newline.
void AppendCsvRecord(const std::vector<std::string>& fields, char delimiter, std::string& out);

struct CsvFormat {
  std::vector<std::string> header;
  char delimiter;
  bool header_written = false;
  void operator()(const CsvRow& row, std::string& out) {
    if (!header_written) {
      header_written = true;
      if (header.empty() && row.header) header = row.header->names;
      if (!header.empty()) AppendCsvRecord(header, delimiter, out);
    }
    AppendCsvRecord(row.fields, delimiter, out);
  }
};

template <class T, class Fmt>
SinkHandle AddFormattingSink(const Stream<T>& s, std::string name, WriterFactory open, Fmt fmt) {
  return s.sink(std::move(name), [open = std::move(open), fmt]() -> std::unique_ptr<Sink<T>> {
    return std::make_unique<FormattingSink<T, Fmt>>(open, fmt);
  });
}

inline WriterFactory FileWriterFactory(std::string path) {
  return [path = std::move(path)](int instance, int parallelism) {
    return OpenFileWriter(path, instance, parallelism);
  };
}

}  // namespace detail

// One line per record. `format` is std::string_view-like f(const T&) or
// void f(const T&, std::string& out) that appends (no allocation per record); the sink adds the
// newline. The default writes records that are strings as they are.
template <class T, class F = detail::Identity>
SinkHandle WriteLines(const Stream<T>& s, std::string path, F format = {}) {
  return detail::AddFormattingSink(s, "write_lines", detail::FileWriterFactory(std::move(path)),
                                   detail::LineFormat<T, F>{std::move(format)});
}

// Standard output, one line per record (see WriteLines).
template <class T, class F = detail::Identity>
SinkHandle WriteStdout(const Stream<T>& s, F format = {}) {
  return detail::AddFormattingSink(s, "write_stdout", detail::FileWriterFactory("-"),
                                   detail::LineFormat<T, F>{std::move(format)});
}

// JSON Lines: each record serialized compactly on one line. T is nlohmann::json or anything
// with a nlohmann `to_json`.
template <class T>
SinkHandle WriteJsonLines(const Stream<T>& s, std::string path) {
  auto fmt = [](const T& r, std::string& out) {
    if constexpr (std::is_same_v<T, nlohmann::json>) {
      out += r.dump();
    } else {
      out += nlohmann::json(r).dump();
    }
  };
  return detail::AddFormattingSink(s, "write_jsonl", detail::FileWriterFactory(std::move(path)),
                                   detail::LineFormat<T, decltype(fmt)>{fmt});
}

struct CsvWriteOptions {
  // Written first. Empty: the header of the first row read from a CSV file with a header, if any.
  std::vector<std::string> header;
  char delimiter = ',';
};

// CSV (RFC 4180, LF line ends): fields holding the delimiter, a quote, CR or LF are quoted.
inline SinkHandle WriteCsv(const Stream<CsvRow>& s, std::string path,
                           CsvWriteOptions options = {}) {
  return detail::AddFormattingSink(s, "write_csv", detail::FileWriterFactory(std::move(path)),
                                   detail::CsvFormat{std::move(options.header), options.delimiter});
}

// Lines to a TCP peer: every sink instance opens its own connection to `options.connect`.
template <class T, class F = detail::Identity>
SinkHandle TcpSink(const Stream<T>& s, TcpOptions options, F format = {}) {
  return detail::AddFormattingSink(
      s, "tcp_sink", [options](int, int) { return detail::ConnectTcpWriter(options); },
      detail::LineFormat<T, F>{std::move(format)});
}

}  // namespace barge::stream
