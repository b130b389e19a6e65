#include "tests/sim/adb_fault.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
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

constexpr std::array<std::pair<AdbFaultKind, const char*>, 11> kKinds = {{
    {AdbFaultKind::down, "down"},
    {AdbFaultKind::slow, "slow"},
    {AdbFaultKind::hang, "hang"},
    {AdbFaultKind::status, "status"},
    {AdbFaultKind::rate_limit, "rate_limit"},
    {AdbFaultKind::reset, "reset"},
    {AdbFaultKind::list_vms_fails, "list_vms_fails"},
    {AdbFaultKind::list_vms_empty, "list_vms_empty"},
    {AdbFaultKind::list_vms_drop, "list_vms_drop"},
    {AdbFaultKind::list_vms_other_node, "list_vms_other_node"},
    {AdbFaultKind::whitelist_empty, "whitelist_empty"},
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
  switch (fault.kind) {
    case AdbFaultKind::list_vms_fails:
    case AdbFaultKind::list_vms_empty:
    case AdbFaultKind::list_vms_drop:
    case AdbFaultKind::list_vms_other_node:
      return call == AdbCall::list_vms;
    case AdbFaultKind::whitelist_empty:
      return call == AdbCall::whitelist || call == AdbCall::whitelist_legacy;
    default:
      return fault.call == AdbCall::none || fault.call == call;
  }
}

bool is_lie(AdbFaultKind k) {
  return k == AdbFaultKind::list_vms_empty || k == AdbFaultKind::list_vms_drop ||
         k == AdbFaultKind::list_vms_other_node || k == AdbFaultKind::whitelist_empty;
}

AdbReply lie_reply(const AdbFault& fault, AdbCall call, AdbReply real) {
  using ojson = nlohmann::ordered_json;
  if (real.status != 200 || !is_lie(fault.kind) || !applies_to(fault, call)) {
    return real;
  }
  auto body = ojson::parse(real.body, nullptr, false);
  if (body.is_discarded()) {
    return real;
  }
  if (call == AdbCall::whitelist) {
    body = ojson::array();
  } else if (call == AdbCall::whitelist_legacy) {
    body["vmids"] = ojson::array();
  } else if (fault.kind == AdbFaultKind::list_vms_empty) {
    body["vms"] = ojson::array();
    body["count"] = 0;
  } else if (fault.kind == AdbFaultKind::list_vms_drop) {
    auto& vms = body["vms"];
    const auto n = std::min(fault.drop, vms.size());
    vms.erase(vms.begin(), vms.begin() + static_cast<std::ptrdiff_t>(n));
    body["count"] = vms.size();
  } else if (fault.kind == AdbFaultKind::list_vms_other_node) {
    const auto own = body.value("node_id", 0LL);
    const auto other =
        fault.other_node_id != 0 && fault.other_node_id != own ? fault.other_node_id : own + 1;
    for (auto& vm : body["vms"]) {
      vm["proxmox_node_id"] = other;
    }
  }
  real.body = body.dump();
  return real;
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
