#include "agent/proxmox/guest.hpp"

#include <algorithm>
#include <cmath>

namespace pha {

namespace {

constexpr std::size_t kMaxName = 100;   // AccountDB: name <= 100 characters
constexpr std::size_t kMaxStatus = 20;  // status <= 20
constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Cuts at a UTF-8 character boundary so the server never gets a broken sequence.
std::string truncate_utf8(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) {
    return s;
  }
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) {
    --cut;
  }
  return s.substr(0, cut);
}

}  // namespace

std::string_view to_string(GuestType t) {
  return t == GuestType::qemu ? "qemu" : "lxc";
}

GuestRecord to_record(const Guest& g) {
  GuestRecord r;
  r.vmid = g.vmid;
  r.name = truncate_utf8(g.name.empty() ? "VM-" + std::to_string(g.vmid) : g.name, kMaxName);
  r.status = truncate_utf8(g.status, kMaxStatus);
  r.cpu_cores = static_cast<std::int64_t>(std::ceil(std::max(0.0, g.cpus)));
  if (g.running()) {
    // Proxmox's cpu is already the share of the guest's own cores.
    const double percent = std::clamp(g.cpu * 100.0, 0.0, 100.0);
    r.cpu_usage_percent = std::round(percent * 10.0) / 10.0;
    r.uptime_seconds = std::max<std::int64_t>(0, g.uptime);
  }
  r.memory_mb = static_cast<std::int64_t>(
      std::floor(static_cast<double>(std::max<std::int64_t>(0, g.maxmem)) / kMiB));
  r.disk_gb = static_cast<std::int64_t>(
      std::floor(static_cast<double>(std::max<std::int64_t>(0, g.maxdisk)) / kGiB));
  r.ip_address = g.ip_address;
  r.proxmox_node = g.node;
  if (g.is_template) {
    r.template_id = 1;
  }
  r.notes = g.notes;
  r.type = std::string(to_string(g.type));
  return r;
}

nlohmann::json to_accountdb_json(const GuestRecord& r) {
  auto opt = [](const auto& o) -> nlohmann::json {
    return o ? nlohmann::json(*o) : nlohmann::json(nullptr);
  };
  return {{"vmid", r.vmid},
          {"name", r.name},
          {"status", r.status},
          {"cpu_cores", r.cpu_cores},
          {"cpu_usage_percent", r.cpu_usage_percent},
          {"memory_mb", r.memory_mb},
          {"disk_gb", r.disk_gb},
          {"ip_address", opt(r.ip_address)},
          {"uptime_seconds", r.uptime_seconds},
          {"proxmox_node", r.proxmox_node},
          {"template_id", opt(r.template_id)},
          {"notes", opt(r.notes)}};
}

nlohmann::json guests_json(const std::vector<Guest>& guests) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& g : guests) {
    const auto record = to_record(g);
    auto j = to_accountdb_json(record);
    j["type"] = record.type;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace pha
