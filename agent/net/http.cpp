#include "agent/net/http.hpp"

#include "agent/core/text.hpp"

namespace pha {

ErrorKind error_kind(FailureKind k) {
  switch (k) {
    case FailureKind::ok:
    case FailureKind::network:
      return ErrorKind::network;
    case FailureKind::timeout:
      return ErrorKind::timeout;
    case FailureKind::tls:
      return ErrorKind::tls;
    case FailureKind::server:
      return ErrorKind::server;
    case FailureKind::rate_limited:
      return ErrorKind::rate_limited;
    case FailureKind::auth:
      return ErrorKind::auth;
    case FailureKind::client:
      return ErrorKind::client;
  }
  return ErrorKind::network;
}

bool is_host_failure(ErrorKind k) {
  return k == ErrorKind::network || k == ErrorKind::timeout || k == ErrorKind::tls ||
         k == ErrorKind::server || k == ErrorKind::bad_reply;
}

std::string_view to_string(FailureKind k) {
  switch (k) {
    case FailureKind::ok:
      return "ok";
    case FailureKind::network:
      return "network";
    case FailureKind::timeout:
      return "timeout";
    case FailureKind::tls:
      return "tls";
    case FailureKind::server:
      return "server";
    case FailureKind::rate_limited:
      return "rate_limited";
    case FailureKind::auth:
      return "auth";
    case FailureKind::client:
      return "client";
  }
  return "network";
}

bool is_host_failure(FailureKind k) {
  switch (k) {
    case FailureKind::network:
    case FailureKind::timeout:
    case FailureKind::tls:
    case FailureKind::server:
      return true;
    case FailureKind::ok:
    case FailureKind::rate_limited:
    case FailureKind::auth:
    case FailureKind::client:
      return false;
  }
  return false;
}

bool is_retryable(FailureKind k) {
  switch (k) {
    case FailureKind::network:
    case FailureKind::timeout:
    case FailureKind::server:
    case FailureKind::rate_limited:
      return true;
    case FailureKind::ok:
    case FailureKind::tls:
    case FailureKind::auth:
    case FailureKind::client:
      return false;
  }
  return false;
}

FailureKind classify_status(int status) {
  if (status >= 200 && status < 300) {
    return FailureKind::ok;
  }
  if (status == 401 || status == 403) {
    return FailureKind::auth;
  }
  if (status == 429) {
    return FailureKind::rate_limited;
  }
  if (status == 501) {
    return FailureKind::client;  // Proxmox: no such method or path, an API error
  }
  if (status >= 500 && status < 600) {
    return FailureKind::server;  // includes Proxmox's 595 and 596
  }
  if (status >= 400 && status < 500) {
    return FailureKind::client;
  }
  if (status >= 300 && status < 400) {
    // The client follows no redirects; Proxmox redirects plain HTTP to HTTPS:
    // a configuration error that another attempt will not fix.
    return FailureKind::client;
  }
  // A 1xx as the final answer, or a status outside HTTP's range.
  return FailureKind::server;
}

std::string HttpOutcome::header(std::string_view lower_name) const {
  const auto it = headers.find(to_lower(lower_name));
  return it == headers.end() ? std::string() : it->second;
}

namespace {
thread_local std::shared_ptr<const std::atomic<bool>> t_abandon;
}  // namespace

AbandonScope::AbandonScope(std::shared_ptr<const std::atomic<bool>> flag)
    : previous_(std::move(t_abandon)) {
  t_abandon = std::move(flag);
}

AbandonScope::~AbandonScope() {
  t_abandon = std::move(previous_);
}

const std::atomic<bool>* abandon_flag() {
  return t_abandon.get();
}

bool abandoned() {
  const auto* f = abandon_flag();
  return f != nullptr && f->load(std::memory_order_acquire);
}

}  // namespace pha
