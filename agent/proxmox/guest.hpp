#pragma once
// A guest (QEMU VM or LXC container) as the Proxmox VE API reports it, and
// its mapping to AccountDB's field names (docs/sync.md "Field mapping").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace pha {

enum class GuestType { qemu, lxc };
std::string_view to_string(GuestType t);

struct Guest {
  GuestType type = GuestType::qemu;
  std::int64_t vmid = 0;
  std::string node;
  std::string name;          // may be empty: Proxmox omits it for unnamed guests
  std::string status;        // running, stopped, paused, prelaunch, unknown... as Proxmox says it
  double cpus = 0;           // cores; LXC allows fractions (1.5)
  double cpu = 0;            // share of the guest's own cores, 0..1 (may exceed 1 briefly)
  std::int64_t maxmem = 0;   // bytes
  std::int64_t maxdisk = 0;  // bytes
  std::int64_t uptime = 0;   // seconds
  bool is_template = false;
  std::string tags;  // ";"-separated, as Proxmox sends it
  std::string lock;
  // /cluster/resources reports a guest of an offline node as a skeleton with
  // status "unknown": its other fields are not known, not zero.
  bool unknown = false;

  // Details (VM_DETAILS), filled from the per-guest calls and cached.
  std::optional<std::string> ip_address;
  std::optional<std::string> notes;

  bool running() const { return status == "running"; }
  bool operator==(const Guest&) const = default;
};

// A guest in AccountDB's field names: the body of put_vm and the rows of /vms.
struct GuestRecord {
  std::int64_t vmid = 0;
  std::string name;  // never empty: "VM-<vmid>" when Proxmox has none; at most 100 chars
  std::string status;
  std::int64_t cpu_cores = 0;
  double cpu_usage_percent = 0;  // one decimal, 0..100
  std::int64_t memory_mb = 0;
  std::int64_t disk_gb = 0;
  std::optional<std::string> ip_address;
  std::int64_t uptime_seconds = 0;
  std::string proxmox_node;
  std::optional<std::int64_t> template_id;  // 1 for templates, else null
  std::optional<std::string> notes;
  std::string type;  // qemu or lxc (not sent to AccountDB; shown in /vms)

  bool operator==(const GuestRecord&) const = default;
};

GuestRecord to_record(const Guest& guest);
// The JSON body AccountDB expects (put_vm): every field, nulls as null.
nlohmann::json to_accountdb_json(const GuestRecord& record);
// Guests as shown to people (--list-guests, --once, /vms): AccountDB's fields plus "type".
nlohmann::json guests_json(const std::vector<Guest>& guests);

}  // namespace pha
