// Errors as values. A Status is OK or carries a code and a one-line message that
// names what failed ("open /var/lib/barge/blobs/sha256/ab..: permission denied").
// Result<T> holds either a value or a non-OK Status. Neither throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace barge {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong; the message names the input
  kNotFound,
  kAlreadyExists,
  kIoError,     // a system call failed; the message carries errno text
  kCorruption,  // stored data does not match its digest or format
  kUnsupported,
  kCancelled,
  kInternal,  // a bug or a failure inside user code (operator)
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends context: Status("x: y").Wrap("loading z") -> "loading z: x: y".
  Status Wrap(std::string_view context) const;

  std::string ToString() const { return ok() ? "OK" : message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status AlreadyExists(std::string message);
Status IoError(std::string message);
Status Corruption(std::string message);
Status Unsupported(std::string message);
Status Cancelled(std::string message);
Status Internal(std::string message);

// A failed system call: "<what>: <strerror(err)>". `what` names the call and its object,
// e.g. "open /tmp/x".
Status ErrnoError(std::string_view what, int err);
// Same, with the current errno.
Status ErrnoError(std::string_view what);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "Result constructed from an OK status without a value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace barge

#define BARGE_CONCAT_INNER(a, b) a##b
#define BARGE_CONCAT(a, b) BARGE_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)     \
  do {                            \
    ::barge::Status _st = (expr); \
    if (!_st.ok()) return _st;    \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  BARGE_ASSIGN_OR_RETURN_IMPL(BARGE_CONCAT(_result_, __LINE__), lhs, expr)
#define BARGE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
