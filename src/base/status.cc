#include "barge/status.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace barge {

Status Status::Wrap(std::string_view context) const {
  if (ok()) return *this;
  std::string message(context);
  message += ": ";
  message += message_;
  return Status(code_, std::move(message));
}

Status InvalidArgument(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}
Status NotFound(std::string message) { return {StatusCode::kNotFound, std::move(message)}; }
Status AlreadyExists(std::string message) {
  return {StatusCode::kAlreadyExists, std::move(message)};
}
Status IoError(std::string message) { return {StatusCode::kIoError, std::move(message)}; }
Status Corruption(std::string message) { return {StatusCode::kCorruption, std::move(message)}; }
Status Unsupported(std::string message) { return {StatusCode::kUnsupported, std::move(message)}; }
Status Cancelled(std::string message) { return {StatusCode::kCancelled, std::move(message)}; }
Status Internal(std::string message) { return {StatusCode::kInternal, std::move(message)}; }

Status ErrnoError(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  StatusCode code = err == ENOENT   ? StatusCode::kNotFound
                    : err == EEXIST ? StatusCode::kAlreadyExists
                                    : StatusCode::kIoError;
  return {code, std::move(message)};
}

Status ErrnoError(std::string_view what) { return ErrnoError(what, errno); }

}  // namespace barge
