#include "agent/accountdb/types.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace pha {

namespace {

using nlohmann::json;

Result<json> parse_json(std::string_view body) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) {
    return Error{ErrorKind::bad_reply, "the body is not JSON"};
  }
  return doc;
}

// An integer, or a float truncated as pydantic v1 does; a number outside
// int64 is no integer (converting it would be undefined, or wrap).
std::optional<std::int64_t> opt_int(const json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end() || !it->is_number()) {
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    const auto u = it->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(u);
  }
  if (it->is_number_integer()) {
    return it->get<std::int64_t>();
  }
  const double d = it->get<double>();
  // -2^63 <= d < 2^63: the doubles whose truncation is an int64.
  if (!std::isfinite(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(d);
}

std::optional<std::string> opt_string(const json& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end() || !it->is_string()) {
    return std::nullopt;
  }
  return it->get<std::string>();
}

Result<std::set<std::int64_t>> vmid_set(const json& arr) {
  if (!arr.is_array()) {
    return Error{ErrorKind::bad_reply, "the whitelist is not a list"};
  }
  std::set<std::int64_t> out;
  for (const auto& v : arr) {
    if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
      return Error{ErrorKind::bad_reply,
                   "the whitelist holds a value that is not a VMID: " + v.dump()};
    }
    out.insert(v.get<std::int64_t>());
  }
  return out;
}

}  // namespace

Result<AccountDbNode> parse_node(std::string_view body) {
  auto doc = parse_json(body);
  if (!doc) {
    return doc.error();
  }
  if (!doc->is_object() || !opt_int(*doc, "id")) {
    return Error{ErrorKind::bad_reply, "the node object has no \"id\""};
  }
  AccountDbNode n;
  n.id = *opt_int(*doc, "id");
  n.name = opt_string(*doc, "name").value_or("");
  n.status = opt_string(*doc, "status").value_or("");
  n.owner_id = opt_int(*doc, "owner_id");
  if (doc->contains("whitelist") && (*doc)["whitelist"].is_array()) {
    auto wl = vmid_set((*doc)["whitelist"]);
    if (wl) {
      n.whitelist.assign(wl->begin(), wl->end());
    }
  }
  return n;
}

Result<std::set<std::int64_t>> parse_whitelist_c(std::string_view body) {
  auto doc = parse_json(body);
  if (!doc) {
    return doc.error();
  }
  return vmid_set(*doc);
}

Result<std::set<std::int64_t>> parse_whitelist_d(std::string_view body) {
  auto doc = parse_json(body);
  if (!doc) {
    return doc.error();
  }
  if (!doc->is_object() || !doc->contains("vmids")) {
    return Error{ErrorKind::bad_reply, "the answer has no \"vmids\""};
  }
  if (doc->contains("success") && (*doc)["success"].is_boolean() &&
      !(*doc)["success"].get<bool>()) {
    return Error{ErrorKind::bad_reply,
                 "the server says it failed: " + opt_string(*doc, "message").value_or("")};
  }
  return vmid_set((*doc)["vmids"]);
}

Result<std::vector<AccountDbRow>> parse_rows(std::string_view body) {
  auto doc = parse_json(body);
  if (!doc) {
    return doc.error();
  }
  if (!doc->is_object() || !doc->contains("vms") || !(*doc)["vms"].is_array()) {
    return Error{ErrorKind::bad_reply, "the answer has no \"vms\" list"};
  }
  std::vector<AccountDbRow> rows;
  for (const auto& r : (*doc)["vms"]) {
    if (!r.is_object() || !opt_int(r, "id") || !opt_int(r, "vmid")) {
      return Error{ErrorKind::bad_reply,
                   "a row has no \"id\" or \"vmid\": " + r.dump().substr(0, 120)};
    }
    AccountDbRow row;
    row.id = *opt_int(r, "id");
    // Ids are positive serials; the agent's creates go to the negative VMID,
    // so an update to a row id <= 0 would be sent as a create.
    if (row.id <= 0) {
      return Error{ErrorKind::bad_reply,
                   "a row's \"id\" is not a positive serial: " + r.dump().substr(0, 120)};
    }
    row.vmid = *opt_int(r, "vmid");
    row.name = opt_string(r, "name").value_or("");
    row.status = opt_string(r, "status").value_or("");
    row.cpu_cores = opt_int(r, "cpu_cores");
    if (r.contains("cpu_usage_percent") && r["cpu_usage_percent"].is_number()) {
      row.cpu_usage_percent = r["cpu_usage_percent"].get<double>();
    }
    row.memory_mb = opt_int(r, "memory_mb");
    row.disk_gb = opt_int(r, "disk_gb");
    row.ip_address = opt_string(r, "ip_address");
    row.owner_id = opt_int(r, "owner_id");
    row.proxmox_node_id = opt_int(r, "proxmox_node_id");
    row.created_at = opt_string(r, "created_at").value_or("");
    row.updated_at = opt_string(r, "updated_at").value_or("");
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace pha
