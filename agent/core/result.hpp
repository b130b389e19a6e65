#pragma once
// The agent's one way to say "failed" (docs/architecture.md "Errors"):
// expected failures are values. A Result<T> holds a value or an Error; a
// Status holds nothing or an Error. Both are [[nodiscard]]: a caller that
// drops one does not build.
//
// An Error carries a kind that code may branch on, a message for an operator,
// and its context as fields (the request's method and URL, the HTTP status),
// so that logs and answers can show them without parsing text. None of them
// ever holds a secret: URLs are stored without credentials or api_key.

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pha {

enum class ErrorKind {
  // An upstream exchange (the kinds of docs/failover.md "Failure kinds").
  network,
  timeout,
  tls,
  server,
  rate_limited,
  auth,
  client,
  bad_reply,    // the upstream answered, but not with what the protocol says
  invalid,      // input the agent refuses: a setting, an env file, a request
  io,           // a local file or the system
  not_found,    // a file (or resource) that does not exist
  unavailable,  // nothing to ask: no usable target, not read yet, stopping
};

std::string_view to_string(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::invalid;
  std::string message;  // for an operator; never a secret
  // The request the error is about, when there is one.
  std::string method;
  std::string url;  // without credentials or query string
  int status = 0;   // the HTTP status; 0 when no answer arrived
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Success, or an Error. Default-constructed: success.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

}  // namespace pha
