#include "tests/sim/adb_protocol.hpp"

#include <array>
#include <vector>

#include "tests/sim/adb_json.hpp"
#include "tests/sim/adb_validation.hpp"
#include "tests/sim/common/percent.hpp"
#include "tests/sim/common/query.hpp"
#include "tests/sim/common/split.hpp"

namespace pha::sim {

namespace {

using ojson = nlohmann::ordered_json;

// The calls' paths: the segments after the leading '/', "{}" for the parameter.
struct CallPath {
  AdbCall call;
  const char* method;
  const char* pattern;
  std::array<const char*, 5> segments;
};

constexpr std::array<CallPath, 6> kCallPaths = {{
    {AdbCall::node_info,
     "GET",
     "/proxmox-nodes/agent-node/{node_id}",
     {"proxmox-nodes", "agent-node", "{}"}},
    {AdbCall::heartbeat, "POST", "/proxmox-nodes/heartbeat", {"proxmox-nodes", "heartbeat"}},
    {AdbCall::whitelist,
     "GET",
     "/vm-access/node/{node_id}/whitelist/agent",
     {"vm-access", "node", "{}", "whitelist", "agent"}},
    {AdbCall::whitelist_legacy,
     "GET",
     "/proxmox-nodes/agent-whitelist/{node_id}",
     {"proxmox-nodes", "agent-whitelist", "{}"}},
    {AdbCall::list_vms,
     "GET",
     "/proxmox-nodes/agent-vms/{node_id}",
     {"proxmox-nodes", "agent-vms", "{}"}},
    {AdbCall::put_vm, "PUT", "/vms/agent/{id}", {"vms", "agent", "{}"}},
}};

// The parameter when `s` is the call's path ("" for a call without one).
std::optional<std::string> match(const CallPath& c, const std::vector<std::string_view>& s) {
  std::size_t n = 0;
  while (n < c.segments.size() && c.segments[n] != nullptr) {
    ++n;
  }
  if (s.size() != n) {
    return std::nullopt;
  }
  std::string param;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::string_view(c.segments[i]) == "{}") {
      if (s[i].empty()) {
        return std::nullopt;
      }
      param = std::string(s[i]);
    } else if (s[i] != c.segments[i]) {
      return std::nullopt;
    }
  }
  return param;
}

// A row as list_vms lists it: every column but template_id and notes.
ojson listed_row_body(const AdbRow& r) {
  auto j = row_columns(r);
  j.erase("template_id");
  j.erase("notes");
  return j;
}

// A row as put_vm answers it (the server's VMResponse model).
ojson stored_row_body(const AdbRow& r, const std::optional<std::string>& node_name) {
  return ojson{{"vmid", r.vmid},
               {"name", r.name},
               {"ip_address", optional_json<ojson>(r.ip_address)},
               {"status", r.status},
               {"cpu_cores", optional_json<ojson>(r.cpu_cores)},
               {"cpu_usage_percent", optional_json<ojson>(r.cpu_usage_percent)},
               {"memory_mb", optional_json<ojson>(r.memory_mb)},
               {"disk_gb", optional_json<ojson>(r.disk_gb)},
               {"uptime_seconds", nullptr},
               {"proxmox_node_id", r.proxmox_node_id},
               {"proxmox_node", optional_json<ojson>(node_name)},
               {"template_id", optional_json<ojson>(r.template_id)},
               {"notes", optional_json<ojson>(r.notes)},
               {"id", r.id},
               {"created_at", r.created_at},
               {"updated_at", r.updated_at},
               {"owner_id", r.owner_id}};
}

AdbReply http_error(int status, const std::string& detail, const WireRequest& req) {
  return http_error_reply(status, detail, req.header("accept"));
}

// node_info and heartbeat tell an unknown node (404) from a wrong key (401).
std::optional<AdbReply> refused_node(AdbKeyCheck check, const WireRequest& req) {
  if (check == AdbKeyCheck::no_such_node) {
    return not_found_reply();
  }
  if (check == AdbKeyCheck::wrong_key) {
    return http_error(401, "Invalid API key", req);
  }
  return std::nullopt;
}

// The key check of the calls after node_info and heartbeat: an unknown node
// and a wrong key are both 401.
std::optional<AdbReply> unauthorized(const AdbStore& store, long long node_id,
                                     const std::string& key, const WireRequest& req) {
  if (store.check_key(node_id, key) != AdbKeyCheck::ok) {
    return http_error(401, "Invalid API key or node not found", req);
  }
  return std::nullopt;
}

// What list_vms and put_vm check after validation, in the server's order.
std::optional<AdbReply> refused_vm_call(const AdbStore& store, long long node_id,
                                        const std::string& key, const WireRequest& req) {
  if (node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (key.empty()) {
    return http_error(400, "Missing required parameter: api_key", req);
  }
  return unauthorized(store, node_id, key, req);
}

// The path's node_id and the query's api_key, both required, as whitelist
// and list_vms take them: `invalid` holds the 422 when either is missing or
// malformed.
struct NodeAndKey {
  long long node_id = 0;
  std::string key;
  std::optional<AdbReply> invalid;
};

NodeAndKey node_and_key(const AdbRoute& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  AdbValidation v;
  const auto node_id = v.int_param(route.param, "path.node_id", true);
  const auto key = query_value(q, "api_key");
  v.require(key, "query.api_key");
  if (v.failed()) {
    return {0, "", v.reply()};
  }
  return {*node_id, *key, std::nullopt};
}

}  // namespace

AdbRoute route_of(const WireRequest& req) {
  AdbRoute route;
  route.path = percent_decode(req.path, false);
  // The segments after the leading '/'.
  const auto segments = route.path.empty()
                            ? std::vector<std::string_view>{}
                            : split_pieces(std::string_view(route.path).substr(1), '/');
  for (const auto& c : kCallPaths) {
    if (auto param = match(c, segments)) {
      route.call = c.call;
      route.pattern = req.method + " " + c.pattern;
      route.param = std::move(*param);
      route.method_ok = req.method == c.method;
      return route;
    }
  }
  route.pattern = req.method + " " + req.path;
  return route;
}

AdbReply AdbProtocol::answer(const AdbRoute& route, const WireRequest& req) {
  if (route.call == AdbCall::none ||
      (route.call == AdbCall::whitelist && !store_.settings().whitelist_endpoint)) {
    return not_found_reply();
  }
  if (!route.method_ok) {
    return http_error(405, "Method Not Allowed", req);
  }
  switch (route.call) {
    case AdbCall::node_info:
      return node_info(route, req);
    case AdbCall::heartbeat:
      return heartbeat(req);
    case AdbCall::whitelist:
      return whitelist(route, req);
    case AdbCall::whitelist_legacy:
      return whitelist_legacy(route, req);
    case AdbCall::list_vms:
      return list_vms(route, req);
    case AdbCall::put_vm:
      return put_vm(route, req);
    case AdbCall::none:
      break;
  }
  return not_found_reply();
}

AdbReply AdbProtocol::node_info(const AdbRoute& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  AdbValidation v;
  const auto node_id = v.int_param(route.param, "path.node_id", true);
  if (v.failed()) {
    return v.reply();
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  const auto key = query_value(q, "api_key");
  if (!key || key->empty()) {
    return http_error(400, "Invalid api_key parameter", req);
  }
  if (auto refused = refused_node(store_.check_key(*node_id, *key), req)) {
    return *refused;
  }
  // The server answers with the node as it read it, before marking it connected.
  const auto before = store_.mark_connected(*node_id);
  return before ? json_reply(200, node_columns(*before)) : not_found_reply();
}

AdbReply AdbProtocol::heartbeat(const WireRequest& req) {
  const auto q = parse_query(req.query);
  AdbValidation v;
  const auto node_id = v.int_param(query_value(q, "node_id"), "query.node_id", false);
  if (v.failed()) {
    return v.reply();
  }
  const auto key = query_value(q, "api_key");
  if (!node_id || !key) {
    return http_error(400, "Missing required parameters: node_id and api_key", req);
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (key->empty()) {
    return http_error(400, "Invalid api_key parameter", req);
  }
  if (auto refused = refused_node(store_.check_key(*node_id, *key), req)) {
    return *refused;
  }
  store_.mark_connected(*node_id);
  return json_reply(200, ojson{{"message", "Heartbeat received"}});
}

AdbReply AdbProtocol::whitelist(const AdbRoute& route, const WireRequest& req) {
  const auto args = node_and_key(route, req);
  if (args.invalid) {
    return *args.invalid;
  }
  if (auto refused = unauthorized(store_, args.node_id, args.key, req)) {
    return *refused;
  }
  return json_reply(200, ojson(store_.node(args.node_id)->whitelist));
}

AdbReply AdbProtocol::whitelist_legacy(const AdbRoute& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  AdbValidation v;
  const auto node_id = v.int_param(route.param, "path.node_id", true);
  if (v.failed()) {
    return v.reply();
  }
  const auto key = query_value(q, "api_key");
  if (!key || key->empty()) {
    return http_error(400, "Missing required parameter: api_key", req);
  }
  if (*node_id == 0) {
    return http_error(400, "Invalid node_id parameter", req);
  }
  if (auto refused = unauthorized(store_, *node_id, *key, req)) {
    return *refused;
  }
  return json_reply(200, ojson{{"node_id", *node_id},
                               {"vmids", store_.node(*node_id)->whitelist},
                               {"success", true},
                               {"message", "VMID whitelist retrieved successfully"}});
}

AdbReply AdbProtocol::list_vms(const AdbRoute& route, const WireRequest& req) {
  const auto args = node_and_key(route, req);
  if (args.invalid) {
    return *args.invalid;
  }
  if (auto refused = refused_vm_call(store_, args.node_id, args.key, req)) {
    return *refused;
  }
  ojson vms = ojson::array();
  for (const auto& r : store_.rows_of_node(args.node_id)) {
    vms.push_back(listed_row_body(r));
  }
  const auto n = vms.size();
  return json_reply(200, ojson{{"vms", std::move(vms)}, {"count", n}, {"node_id", args.node_id}});
}

AdbReply AdbProtocol::put_vm(const AdbRoute& route, const WireRequest& req) {
  const auto q = parse_query(req.query);
  AdbValidation v;
  const auto vm_id = v.int_param(route.param, "path.vm_id", true);
  const auto node_id = v.int_param(query_value(q, "node_id"), "query.node_id", true);
  const auto key = query_value(q, "api_key");
  v.require(key, "query.api_key");
  const auto vm =
      v.vm_body(req.body, req.header("content-type"), store_.settings().reject_float_disk);
  if (v.failed()) {
    return v.reply();
  }
  if (auto refused = refused_vm_call(store_, *node_id, *key, req)) {
    return *refused;
  }
  const auto row = store_.put_vm(*vm_id, *node_id, vm);
  const auto node = store_.node(row.proxmox_node_id);
  return json_reply(200, stored_row_body(row, node ? std::optional(node->name) : std::nullopt));
}

}  // namespace pha::sim
