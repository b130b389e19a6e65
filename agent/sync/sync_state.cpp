#include "agent/sync/sync_state.hpp"

#include <optional>
#include <stdexcept>
#include <string>

namespace pha {

namespace {

template <class T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// A known row as the state file keeps it: the id and the compared fields.
nlohmann::json row_json(const AccountDbRow& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"status", r.status},
          {"cpu_cores", or_null(r.cpu_cores)},
          {"cpu_usage_percent", or_null(r.cpu_usage_percent)},
          {"memory_mb", or_null(r.memory_mb)},
          {"disk_gb", or_null(r.disk_gb)},
          {"ip_address", or_null(r.ip_address)}};
}

template <class T>
std::optional<T> opt_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return std::nullopt;
  }
  return it->get<T>();
}

AccountDbRow row_from_json(std::int64_t vmid, const nlohmann::json& j) {
  AccountDbRow r;
  r.vmid = vmid;
  r.id = j.at("id").get<std::int64_t>();
  if (r.id <= 0) {
    throw std::out_of_range("a row id is not a positive serial");
  }
  r.name = j.at("name").get<std::string>();
  r.status = j.at("status").get<std::string>();
  r.cpu_cores = opt_field<std::int64_t>(j, "cpu_cores");
  r.cpu_usage_percent = opt_field<double>(j, "cpu_usage_percent");
  r.memory_mb = opt_field<std::int64_t>(j, "memory_mb");
  r.disk_gb = opt_field<std::int64_t>(j, "disk_gb");
  r.ip_address = opt_field<std::string>(j, "ip_address");
  return r;
}

}  // namespace

nlohmann::json memory_json(const SyncMemory& m) {
  nlohmann::json sent = nlohmann::json::object();
  for (const auto& [vmid, at] : m.last_sent) {
    sent[std::to_string(vmid)] = at;
  }
  nlohmann::json missing = nlohmann::json::object();
  for (const auto& [vmid, n] : m.missing) {
    missing[std::to_string(vmid)] = n;
  }
  nlohmann::json rows = nlohmann::json::object();
  for (const auto& [vmid, row] : m.rows) {
    rows[std::to_string(vmid)] = row_json(row);
  }
  nlohmann::json held = nlohmann::json::object();
  for (const auto& [vmid, h] : m.held) {
    held[std::to_string(vmid)] = {{"kind", to_string(h.kind)}, {"cycles", h.cycles}};
  }
  nlohmann::json types = nlohmann::json::object();
  for (const auto& [vmid, t] : m.types) {
    types[std::to_string(vmid)] = to_string(t);
  }
  return {{"last_sent", sent},
          {"missing", missing},
          {"rows", rows},
          {"held", held},
          {"types", types},
          {"last_read_guests", m.last_read_guests},
          {"emptied_from", m.emptied_from}};
}

bool memory_from_json(const nlohmann::json& j, SyncMemory& m) {
  if (!j.is_object() || !j.contains("last_sent") || !j["last_sent"].is_object() ||
      !j.contains("missing") || !j["missing"].is_object()) {
    return false;
  }
  try {
    for (const auto& [k, v] : j["last_sent"].items()) {
      m.last_sent[std::stoll(k)] = v.get<std::int64_t>();
    }
    for (const auto& [k, v] : j["missing"].items()) {
      m.missing[std::stoll(k)] = v.get<int>();
    }
    static const nlohmann::json kNone = nlohmann::json::object();
    const auto& rows = j.contains("rows") ? j.at("rows") : kNone;
    const auto& held = j.contains("held") ? j.at("held") : kNone;
    if (!rows.is_object() || !held.is_object()) {
      throw std::out_of_range("rows or held is not an object");
    }
    for (const auto& [k, v] : rows.items()) {
      const auto vmid = std::stoll(k);
      m.rows[vmid] = row_from_json(vmid, v);
    }
    for (const auto& [k, v] : held.items()) {
      const auto kind = v.at("kind").get<std::string>();
      if (kind != "create" && kind != "mark") {
        throw std::out_of_range("unknown kind of held change");
      }
      m.held[std::stoll(k)] = {kind == "create" ? RequestKind::create : RequestKind::mark,
                               v.at("cycles").get<int>()};
    }
    if (const auto t = j.find("types"); t != j.end()) {
      for (const auto& [k, v] : t->items()) {
        const auto type = v.get<std::string>();
        if (type != "qemu" && type != "lxc") {
          throw std::out_of_range("unknown guest type");
        }
        m.types[std::stoll(k)] = type == "qemu" ? GuestType::qemu : GuestType::lxc;
      }
    }
    m.last_read_guests = j.value("last_read_guests", std::int64_t{0});
    m.emptied_from = j.value("emptied_from", std::int64_t{0});
  } catch (const std::exception&) {
    m = {};
    return false;
  }
  return true;
}

}  // namespace pha
