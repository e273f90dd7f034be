// Status and Result: how errors cross module boundaries in usersd.
//
// A Status is cheap to copy when ok (no allocation). Not-found is an ordinary
// result for lookups (store returns std::optional), so Status::NotFound is only
// used where absence is an error for the caller. Thread-compatible: a value
// type with no shared state.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace usersd {

enum class Code {
  kOk = 0,
  kNotFound,
  kInvalidArgument,  // caller's input was bad; message names the field
  kUnauthorized,     // token or policy refused; message is the detail
  kIOError,          // disk or OS call failed
  kCorruption,       // stored bytes do not decode
  kMapFull,          // LMDB map at store.max_map_size_mib
  kUnavailable,      // upstream (WorkOS) unreachable, or shutting down
  kInternal,         // broken invariant or library failure
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
  static Status Unauthorized(std::string m) { return Status(Code::kUnauthorized, std::move(m)); }
  static Status IOError(std::string m) { return Status(Code::kIOError, std::move(m)); }
  static Status Corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
  static Status MapFull(std::string m) { return Status(Code::kMapFull, std::move(m)); }
  static Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
  static Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds either a T or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}     // NOLINT: implicit by design
  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: !ok() for a meaningful status; returns Ok() when ok().
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  // REQUIRES: ok().
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace usersd

// Propagates a non-ok Status from an expression that yields a Status.
#define USERSD_RETURN_IF_ERROR(expr)        \
  do {                                      \
    ::usersd::Status _st = (expr);          \
    if (!_st.ok()) return _st;              \
  } while (0)
