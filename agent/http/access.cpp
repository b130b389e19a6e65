#include "agent/http/access.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "agent/core/text.hpp"
#include "agent/platform/logging.hpp"

namespace pha::http {

namespace {

// The token of an "Authorization: Bearer <token>" header (the scheme in any case), or nullopt.
std::optional<std::string_view> bearer(const Request& r) {
  const auto header = r.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
      })) {
    return std::nullopt;
  }
  return trim(header.substr(kBearer.size()));
}

bool matches(std::string_view sent, const std::string& token) {
  return !token.empty() && constant_time_equals(sent, token);
}

Response unauthorized(std::string_view message) {
  auto r = error_response(401, "unauthorized", message);
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

Response not_valid() {
  return error_response(403, "forbidden", "the bearer token is not valid");
}

std::optional<Response> check_control(const Request& r, const Settings& s) {
  if (s.agent_api_token.empty()) {
    if (r.peer_loopback) {
      return std::nullopt;
    }
    return error_response(403, "forbidden",
                          "control (POST) is allowed from loopback only while AGENT_API_TOKEN is "
                          "unset; set AGENT_API_TOKEN (or AGENT_API_TOKEN_FILE)");
  }
  const auto sent = bearer(r);
  if (!sent) {
    return unauthorized("control (POST) needs AGENT_API_TOKEN as a bearer token");
  }
  // Both comparisons run, whatever the first one found.
  const bool control = matches(*sent, s.agent_api_token);
  const bool read = matches(*sent, s.agent_read_token);
  if (control) {
    return std::nullopt;
  }
  if (read) {
    return error_response(403, "forbidden",
                          "this is the read token (AGENT_READ_TOKEN): control (POST) needs "
                          "AGENT_API_TOKEN");
  }
  return not_valid();
}

std::optional<Response> check_read(Access access, const Request& r, const Settings& s) {
  const bool customer_data = access == Access::customer_data && !s.agent_open_customer_data;
  if (!customer_data && !s.agent_read_auth) {
    return std::nullopt;
  }
  const bool any_token = !s.agent_read_token.empty() || !s.agent_api_token.empty();
  if (const auto sent = bearer(r); sent && any_token) {
    const bool read = matches(*sent, s.agent_read_token);
    const bool control = matches(*sent, s.agent_api_token);
    return read || control ? std::nullopt : std::optional<Response>(not_valid());
  }
  // No token sent (or none to check it against).
  const bool token_required = s.agent_read_auth || !s.agent_read_token.empty();
  if (!token_required) {
    if (r.peer_loopback) {
      return std::nullopt;
    }
    return unauthorized(
        "customer data (/vms, /vms/{vmid}, /config) is served to loopback clients only while "
        "AGENT_READ_TOKEN is unset; set AGENT_READ_TOKEN (or AGENT_READ_TOKEN_FILE) and send it "
        "as a bearer token");
  }
  return unauthorized(s.agent_read_auth
                          ? "AGENT_READ_AUTH=true: send AGENT_READ_TOKEN as a bearer token"
                          : "customer data needs AGENT_READ_TOKEN as a bearer token");
}

std::optional<Response> decide(Access access, const Request& request, const Settings& settings) {
  switch (access) {
    case Access::open:
      return std::nullopt;
    case Access::control:
      return check_control(request, settings);
    case Access::monitoring:
    case Access::customer_data:
      return check_read(access, request, settings);
  }
  return std::nullopt;
}

}  // namespace

std::optional<Response> check_access(Access access, const Request& request,
                                     const Settings& settings) {
  auto denied = decide(access, request, settings);
  if (denied) {
    // Debug: a scraper with a wrong token would otherwise log every 15 s.
    log::debug("http_denied", "request refused: " + std::to_string(denied->status),
               {{"peer", request.peer},
                {"method", request.method},
                {"path", request.path},
                {"status", denied->status}});
  }
  return denied;
}

}  // namespace pha::http
