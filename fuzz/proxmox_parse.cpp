// Fuzz target: the parsers of Proxmox VE answers (agent/proxmox/parse.*) and
// what the agent makes of a parsed guest (agent/proxmox/guest.*). Every
// parser gets every input: each is a pure function of a body, and the corpus
// holds real bodies of every kind.

#include "agent/proxmox/guest.hpp"
#include "agent/proxmox/parse.hpp"
#include "agent/proxmox/permissions.hpp"
#include "fuzz/target.hpp"

namespace {

// Whatever the permissions answer holds, the evaluation names only what the
// agent needs, each at most once.
void use_permissions(const pha::Result<pha::PermissionMap>& granted) {
  if (!granted) {
    return;
  }
  for (const int major : {8, 9}) {
    const auto missing = pha::missing_privileges(*granted, major, {.token_id = "a@pve!t"});
    pha::fuzz::require(missing.size() <= 3, "at most the three needed privileges are missing");
    for (const auto& m : missing) {
      pha::fuzz::require(!m.effect.empty() && !m.fix.empty(), "a missing privilege says why");
      pha::fuzz::require(major < 9 || m.privilege != "VM.Monitor", "VM.Monitor is not needed on 9");
    }
  }
}

void use_guests(const pha::Result<pha::GuestList>& list) {
  if (!list) {
    return;
  }
  for (const auto& g : list->guests) {
    pha::fuzz::require(g.vmid > 0, "a parsed guest has a VMID");
    const auto record = pha::to_record(g);
    pha::fuzz::require(record.cpu_cores >= 0 && record.memory_mb >= 0 && record.disk_gb >= 0,
                       "no negative resources are sent");
    pha::fuzz::require(record.cpu_usage_percent >= 0 && record.cpu_usage_percent <= 100,
                       "CPU usage is a percentage");
    (void)pha::to_accountdb_json(record).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
  }
  (void)pha::guests_json(list->guests)
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto body = pha::fuzz::as_text(data, size);
  use_guests(pha::parse_guest_list(body, pha::GuestType::qemu, "pve1"));
  use_guests(pha::parse_guest_list(body, pha::GuestType::lxc, "pve1"));
  use_guests(pha::parse_cluster_resources(body));
  if (auto status = pha::parse_cluster_status(body)) {
    (void)status->local_node();
  }
  if (auto version = pha::parse_version(body)) {
    (void)pha::pve_major(*version);
  }
  use_permissions(pha::parse_permissions(body));
  (void)pha::parse_ticket(body);
  (void)pha::parse_config_description(body);
  for (const auto& ip : {pha::parse_qemu_agent_ipv4(body), pha::parse_lxc_interfaces_ipv4(body)}) {
    if (ip && ip->has_value()) {
      pha::fuzz::require(pha::is_reportable_ipv4(**ip), "a reported address is reportable");
    }
  }
  return 0;
}
