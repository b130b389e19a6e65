#pragma once
// A guest of the plan's tests and the row AccountDB would hold after a
// successful put_vm of it (sync_plan_test.cpp, sync_evidence_test.cpp).

#include <cstdint>
#include <string>

#include "agent/accountdb/types.hpp"
#include "agent/proxmox/guest.hpp"

namespace pha::test {

inline Guest plan_guest(std::int64_t vmid, const std::string& status = "running",
                        const std::string& name = "") {
  Guest g;
  g.type = GuestType::qemu;
  g.vmid = vmid;
  g.node = "pve1";
  g.name = name.empty() ? "vm-" + std::to_string(vmid) : name;
  g.status = status;
  g.cpus = 2;
  g.cpu = status == "running" ? 0.10 : 0;
  g.maxmem = 2048LL << 20;
  g.maxdisk = 32LL << 30;
  g.uptime = status == "running" ? 100 : 0;
  return g;
}

inline AccountDbRow stored_row(const Guest& g, std::int64_t id) {
  const auto r = to_record(g);
  AccountDbRow row;
  row.id = id;
  row.vmid = r.vmid;
  row.name = r.name;
  row.status = r.status;
  row.cpu_cores = r.cpu_cores;
  row.cpu_usage_percent = r.cpu_usage_percent;
  row.memory_mb = r.memory_mb;
  row.disk_gb = r.disk_gb;
  row.ip_address = r.ip_address;
  row.created_at = "2026-11-01T00:00:00.000000+00:00";
  row.updated_at = "2026-11-01T00:00:00.000000+00:00";
  return row;
}

}  // namespace pha::test
