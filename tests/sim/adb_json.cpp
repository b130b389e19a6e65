#include "tests/sim/adb_json.hpp"

#include "tests/sim/adb_sim.hpp"
#include "tests/sim/common/control_server.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;

template <typename T>
void read_optional(const json& j, const char* key, std::optional<T>& into) {
  if (j.contains(key)) {
    into = j[key].is_null() ? std::nullopt : std::optional<T>(j[key].get<T>());
  }
}

template <typename T>
void read(const json& j, const char* key, T& into) {
  if (j.contains(key) && !j[key].is_null()) {
    into = j[key].get<T>();
  }
}

}  // namespace

nlohmann::ordered_json node_columns(const AdbNode& n) {
  using ojson = nlohmann::ordered_json;
  return ojson{{"name", n.name},
               {"hostname", n.hostname},
               {"port", n.port},
               {"id", n.id},
               {"status", n.status},
               {"whitelist", n.whitelist},
               {"last_seen", optional_json<ojson>(n.last_seen)},
               {"created_at", n.created_at},
               {"updated_at", n.updated_at},
               {"owner_id", n.owner_id}};
}

nlohmann::ordered_json row_columns(const AdbRow& r) {
  using ojson = nlohmann::ordered_json;
  return ojson{{"id", r.id},
               {"vmid", r.vmid},
               {"name", r.name},
               {"status", r.status},
               {"cpu_cores", optional_json<ojson>(r.cpu_cores)},
               {"cpu_usage_percent", optional_json<ojson>(r.cpu_usage_percent)},
               {"memory_mb", optional_json<ojson>(r.memory_mb)},
               {"disk_gb", optional_json<ojson>(r.disk_gb)},
               {"ip_address", optional_json<ojson>(r.ip_address)},
               {"proxmox_node_id", r.proxmox_node_id},
               {"template_id", optional_json<ojson>(r.template_id)},
               {"notes", optional_json<ojson>(r.notes)},
               {"owner_id", r.owner_id},
               {"created_at", r.created_at},
               {"updated_at", r.updated_at}};
}

json node_json(const AdbNode& n) {
  json j = node_columns(n);
  j["api_key"] = n.api_key;
  return j;
}

json row_json(const AdbRow& r) {
  return row_columns(r);
}

json fault_json(const std::optional<AdbFault>& f) {
  if (!f) {
    return nullptr;
  }
  return json{{"kind", to_string(f->kind)},
              {"call", to_string(f->call)},
              {"delay_ms", f->delay.count()},
              {"status", f->status},
              {"body", f->body},
              {"retry_after", f->retry_after},
              {"drop", f->drop},
              {"other_node_id", f->other_node_id},
              {"count", optional_json(f->count)}};
}

json settings_json(const AdbSettings& s) {
  return json{{"rate_limit", s.rate_limit},
              {"rate_window", s.rate_window.count()},
              {"whitelist_endpoint", s.whitelist_endpoint},
              {"reject_float_disk", s.reject_float_disk},
              {"created_row_owner_id", s.created_row_owner_id}};
}

json request_json(const AdbRecordedRequest& r) {
  return json{{"method", r.method},    {"path", r.path},
              {"query", r.query},      {"body", r.body},
              {"status", r.status},    {"call", to_string(r.call)},
              {"client", r.client},    {"request_id", r.request_id},
              {"endpoint", r.endpoint}};
}

void apply_row_json(const json& j, AdbRow& r) {
  read(j, "vmid", r.vmid);
  read(j, "name", r.name);
  read(j, "status", r.status);
  read_optional(j, "cpu_cores", r.cpu_cores);
  read_optional(j, "cpu_usage_percent", r.cpu_usage_percent);
  read_optional(j, "memory_mb", r.memory_mb);
  read_optional(j, "disk_gb", r.disk_gb);
  read_optional(j, "ip_address", r.ip_address);
  read(j, "proxmox_node_id", r.proxmox_node_id);
  read_optional(j, "template_id", r.template_id);
  read_optional(j, "notes", r.notes);
  read(j, "owner_id", r.owner_id);
  read(j, "created_at", r.created_at);
  read(j, "updated_at", r.updated_at);
}

AdbRow new_row_from_json(const json& j, long long node_id) {
  AdbRow r;
  r.proxmox_node_id = node_id;
  apply_row_json(j, r);
  read(j, "id", r.id);
  if (r.name.empty()) {
    r.name = "VM-" + std::to_string(r.vmid);
  }
  return r;
}

AdbNode node_from_json(const json& j) {
  AdbNode n;
  read(j, "id", n.id);
  read(j, "name", n.name);
  read(j, "hostname", n.hostname);
  read(j, "port", n.port);
  read(j, "api_key", n.api_key);
  read(j, "owner_id", n.owner_id);
  read(j, "whitelist", n.whitelist);
  read(j, "status", n.status);
  return n;
}

AdbFault fault_from_json(const json& j) {
  AdbFault f;
  const auto kind = parse_adb_fault_kind(j.value("kind", std::string()));
  if (!kind) {
    throw ControlError(
        400,
        "kind must be one of down, slow, hang, status, rate_limit, reset, list_vms_fails, "
        "list_vms_empty, list_vms_drop, list_vms_other_node, whitelist_empty");
  }
  f.kind = *kind;
  const auto call = parse_adb_call(j.value("call", std::string()));
  if (!call) {
    throw ControlError(400,
                       "call must be one of node_info, heartbeat, whitelist, whitelist_legacy, "
                       "list_vms, put_vm (or empty: every request)");
  }
  f.call = *call;
  read_optional(j, "count", f.count);
  f.delay = std::chrono::milliseconds(j.value("delay_ms", 2000LL));
  f.status = j.value("status", 500);
  f.body = j.contains("body") && !j["body"].is_string() ? j["body"].dump()
                                                        : j.value("body", std::string());
  f.retry_after = j.value("retry_after", 30LL);
  f.drop = j.value("drop", std::size_t{1});
  f.other_node_id = j.value("other_node_id", 0LL);
  return f;
}

}  // namespace pha::sim
