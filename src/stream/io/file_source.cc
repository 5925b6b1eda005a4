// File and stdin sources: one reader per file, on source instance 0.
#include <optional>

#include "barge/stream/io.h"
#include "stream/io/block_reader.h"

namespace barge::stream {

namespace {

using io::BlockReader;

template <class T, class Decoder>
class FileSource final : public Source<T> {
 public:
  FileSource(std::string path, Decoder decoder, OnError on_error, size_t max_record_bytes)
      : path_(std::move(path)),
        decoder_(std::move(decoder)),
        on_error_(on_error),
        max_record_bytes_(max_record_bytes) {}

  // Instance k of P > 1 reads the records that start in the k-th of P equal byte ranges of a
  // regular file of lines; anything else is read whole by instance 0.
  Status Open(int instance, int parallelism) override {
    if (instance != 0 && !(Decoder::kSplittable && path_ != "-")) return Status::Ok();
    ASSIGN_OR_RETURN(BlockReader reader, BlockReader::OpenPath(path_));
    bool split = Decoder::kSplittable && parallelism > 1 && reader.regular();
    if (!split && instance != 0) return Status::Ok();
    uint64_t size = 0;
    if (split) {
      ASSIGN_OR_RETURN(size, reader.Size());
    }
    stream_.emplace(std::move(reader), std::move(decoder_), on_error_, max_record_bytes_);
    if (split) {
      auto k = static_cast<unsigned __int128>(instance);
      auto p = static_cast<unsigned __int128>(parallelism);
      RETURN_IF_ERROR(stream_->Restrict(static_cast<uint64_t>(size * k / p),
                                        static_cast<uint64_t>(size * (k + 1) / p)));
    }
    return Status::Ok();
  }

  Result<SourceState> Next(Batch<T>& out, size_t max_records) override {
    if (!stream_) return SourceState::kEnd;
    for (;;) {
      ASSIGN_OR_RETURN(bool need_more, stream_->Drain(out, max_records, this->metrics()));
      if (!need_more) return out.size() >= max_records ? SourceState::kMore : SourceState::kEnd;
      // Regular files ignore the timeout; pipes and ttys wait briefly only when there is
      // nothing to hand out yet.
      ASSIGN_OR_RETURN(BlockReader::Fill fill, stream_->reader().Read(out.empty() ? 100 : 0));
      if (fill == BlockReader::Fill::kNoData) {
        return out.empty() ? SourceState::kIdle : SourceState::kMore;
      }
    }
  }

  void Close() override { stream_.reset(); }

 private:
  std::string path_;
  Decoder decoder_;
  OnError on_error_;
  size_t max_record_bytes_;
  std::optional<io::RecordStream<T, Decoder>> stream_;
};

template <class T, class Decoder>
Stream<T> AddFileSource(Pipeline& p, std::string name, std::string path, Decoder decoder,
                        OnError on_error, size_t max_record_bytes) {
  return p.source<T>(
      std::move(name),
      [path = std::move(path), decoder, on_error, max_record_bytes] {
        return std::make_unique<FileSource<T, Decoder>>(path, decoder, on_error, max_record_bytes);
      },
      /*parallelism=*/1);
}

}  // namespace

Stream<std::string> ReadLines(Pipeline& p, std::string path, ReadOptions options) {
  return AddFileSource<std::string>(p, "read_lines", std::move(path), io::LineDecoder{},
                                    options.on_error, options.max_record_bytes);
}

Stream<nlohmann::json> ReadJsonLines(Pipeline& p, std::string path, ReadOptions options) {
  return AddFileSource<nlohmann::json>(p, "read_jsonl", std::move(path), io::JsonLineDecoder{},
                                       options.on_error, options.max_record_bytes);
}

Stream<CsvRow> ReadCsv(Pipeline& p, std::string path, CsvOptions options) {
  return AddFileSource<CsvRow>(p, "read_csv", std::move(path), io::CsvDecoder(options),
                               options.on_error, options.max_record_bytes);
}

Stream<std::string> ReadStdin(Pipeline& p, ReadOptions options) {
  return AddFileSource<std::string>(p, "read_stdin", "-", io::LineDecoder{}, options.on_error,
                                    options.max_record_bytes);
}

}  // namespace barge::stream
