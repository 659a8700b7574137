// One error type for the whole store, with codes a caller can act on.
//
// Operating errors travel as values: functions that can fail return
// Result<T> (a T or an Error) or Status (Result<void>). Programming errors are
// CS_ASSERTs. The code tells the caller what to do; the message tells a human
// what went wrong and names the thing at fault (stream, sequence, field, line).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "cs/assert.h"

namespace cs {

enum class ErrorCode {
  conflict,          // expected version did not match, or an id was reused: re-read and decide
  not_found,         // the thing asked for does not exist
  corruption,        // stored bytes fail a check (hash, decode, gap): stop and investigate
  invalid_argument,  // the input is wrong: fix the input, retrying will not help
  unauthorized,      // the caller may not do this
  retriable,         // transient (queue full, broker unavailable): the same call may succeed later
  fatal,             // the component cannot continue (I/O failure, fenced producer)
};

const char* error_code_name(ErrorCode code);

// A finer cause under a code, for callers that act on it (RocksDB's
// sub-codes): the code still says what to do in general.
enum class ErrorCause : std::uint8_t {
  none,
  broken_chain,  // corruption: an event's hash does not follow from the one before
  fenced,        // fatal: another producer took this transactional id over
  stopped,       // retriable: the caller asked to stop (a signal); any open transaction was aborted
};

// `text` with control bytes (below 0x20, and 0x7f) written as \xNN, so that
// a value from the data cannot drive a terminal or forge a log line.
std::string printable(std::string_view text);

class Error {
 public:
  // The message is made printable (see printable()).
  Error(ErrorCode code, std::string message, ErrorCause cause = ErrorCause::none);

  ErrorCode code() const { return code_; }
  ErrorCause cause() const { return cause_; }
  const std::string& message() const { return message_; }
  // "<code name>: <message>", for logs and stderr.
  std::string to_string() const;

 private:
  ErrorCode code_;
  ErrorCause cause_;
  std::string message_;
};

inline Error conflict_error(std::string m) { return {ErrorCode::conflict, std::move(m)}; }
inline Error not_found_error(std::string m) { return {ErrorCode::not_found, std::move(m)}; }
inline Error corruption_error(std::string m) { return {ErrorCode::corruption, std::move(m)}; }
inline Error invalid_argument(std::string m) { return {ErrorCode::invalid_argument, std::move(m)}; }
inline Error unauthorized_error(std::string m) { return {ErrorCode::unauthorized, std::move(m)}; }
inline Error retriable_error(std::string m) { return {ErrorCode::retriable, std::move(m)}; }
inline Error fatal_error(std::string m) { return {ErrorCode::fatal, std::move(m)}; }
inline Error broken_chain_error(std::string m) { return {ErrorCode::corruption, std::move(m), ErrorCause::broken_chain}; }
inline Error fenced_error(std::string m) { return {ErrorCode::fatal, std::move(m), ErrorCause::fenced}; }
inline Error stopped_error(std::string m) { return {ErrorCode::retriable, std::move(m), ErrorCause::stopped}; }

// A value or an error. Accessing the wrong side is a programming error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    CS_ASSERT(ok(), "value() on an error result");
    return std::get<0>(state_);
  }
  const T& value() const& {
    CS_ASSERT(ok(), "value() on an error result");
    return std::get<0>(state_);
  }
  T&& value() && {
    CS_ASSERT(ok(), "value() on an error result");
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    CS_ASSERT(!ok(), "error() on a success result");
    return std::get<1>(state_);
  }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    CS_ASSERT(error_.has_value(), "error() on a success status");
    return *error_;
  }

 private:
  // Empty on success: a success status is returned once per event on every
  // read and fold, and should not build an Error (a string) each time.
  std::optional<Error> error_;
};

using Status = Result<void>;

}  // namespace cs
