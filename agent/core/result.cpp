#include "agent/core/result.hpp"

namespace pha {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::network:
      return "network";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::tls:
      return "tls";
    case ErrorKind::server:
      return "server";
    case ErrorKind::rate_limited:
      return "rate_limited";
    case ErrorKind::auth:
      return "auth";
    case ErrorKind::client:
      return "client";
    case ErrorKind::bad_reply:
      return "bad_reply";
    case ErrorKind::invalid:
      return "invalid";
    case ErrorKind::io:
      return "io";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::unavailable:
      return "unavailable";
  }
  return "invalid";
}

}  // namespace pha
