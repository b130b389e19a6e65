#include "tests/sim/adb_fault.hpp"

#include <array>
#include <utility>

#include "tests/sim/adb_rate_limit.hpp"
#include "tests/sim/common/http_reason.hpp"

namespace pha::sim {

namespace {

constexpr std::array<std::pair<AdbCall, const char*>, 7> kCalls = {{
    {AdbCall::none, ""},
    {AdbCall::node_info, "node_info"},
    {AdbCall::heartbeat, "heartbeat"},
    {AdbCall::whitelist, "whitelist"},
    {AdbCall::whitelist_legacy, "whitelist_legacy"},
    {AdbCall::list_vms, "list_vms"},
    {AdbCall::put_vm, "put_vm"},
}};

constexpr std::array<std::pair<AdbFaultKind, const char*>, 7> kKinds = {{
    {AdbFaultKind::down, "down"},
    {AdbFaultKind::slow, "slow"},
    {AdbFaultKind::hang, "hang"},
    {AdbFaultKind::status, "status"},
    {AdbFaultKind::rate_limit, "rate_limit"},
    {AdbFaultKind::reset, "reset"},
    {AdbFaultKind::list_vms_fails, "list_vms_fails"},
}};

template <typename Enum, std::size_t N>
std::string name_in(const std::array<std::pair<Enum, const char*>, N>& names, Enum value) {
  for (const auto& [v, name] : names) {
    if (v == value) {
      return name;
    }
  }
  return "";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_in(const std::array<std::pair<Enum, const char*>, N>& names,
                             const std::string& name) {
  for (const auto& [v, n] : names) {
    if (name == n) {
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string to_string(AdbCall c) {
  return name_in(kCalls, c);
}

std::optional<AdbCall> parse_adb_call(const std::string& s) {
  return value_in(kCalls, s);
}

std::string to_string(AdbFaultKind k) {
  return name_in(kKinds, k);
}

std::optional<AdbFaultKind> parse_adb_fault_kind(const std::string& s) {
  return value_in(kKinds, s);
}

bool applies_to(const AdbFault& fault, AdbCall call) {
  const auto faulted = fault.kind == AdbFaultKind::list_vms_fails ? AdbCall::list_vms : fault.call;
  return faulted == AdbCall::none || faulted == call;
}

AdbReply fault_reply(const AdbFault& fault, AdbCall call, std::size_t rate_limit) {
  using ojson = nlohmann::ordered_json;
  if (fault.kind == AdbFaultKind::rate_limit) {
    auto r = too_many_requests_reply();
    r.headers = rate_limited_headers(rate_limit, fault.retry_after);
    return r;
  }
  const int status = fault.kind == AdbFaultKind::list_vms_fails ? 500 : fault.status;
  if (!fault.body.empty()) {
    AdbReply r;
    r.status = status;
    r.body = fault.body;
    if (!nlohmann::json::accept(fault.body)) {
      // e.g. the HTML page of a reverse proxy
      r.content_type = fault.body.starts_with("<") ? "text/html" : "text/plain; charset=utf-8";
    }
    return r;
  }
  switch (status) {
    case 500:
      return server_error_reply();
    case 401: {
      const bool node_call =
          call == AdbCall::none || call == AdbCall::node_info || call == AdbCall::heartbeat;
      return json_reply(401, ojson{{"detail", node_call ? "Invalid API key"
                                                        : "Invalid API key or node not found"}});
    }
    case 404:
      return not_found_reply();
    case 429: {
      auto r = too_many_requests_reply();
      r.headers.emplace_back("retry-after", std::to_string(fault.retry_after));
      return r;
    }
    default:
      return json_reply(status, ojson{{"detail", reason_phrase(status)}});
  }
}

}  // namespace pha::sim
