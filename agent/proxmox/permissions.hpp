#pragma once
// What the agent needs of its Proxmox user or API token, and which of it is
// missing: a pure function of the GET /access/permissions answer, the
// Proxmox VE version and the settings (docs/proxmox.md "Privileges").
//
//   VM.Audit on /vms, propagated     the guest lists (without it they are empty)
//   Sys.Audit on /                   /cluster/status: the node name (auto) and discovery;
//                                    /cluster/tasks: the change signal (CHANGE_POLL_INTERVAL)
//   with VM_DETAILS and QEMU guests, propagated on /vms:
//     PVE >= 9: VM.GuestAgent.Audit (or .Unrestricted)   the guest agent's addresses
//     PVE <  9: VM.Monitor                               the same; it also allows guest-exec
//
// A privilege the agent does not need (VM.Monitor on PVE 9, Sys.Audit with a
// fixed node name, no discovery and no change signal) is never reported.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/proxmox/parse.hpp"

namespace pha {

struct PermissionNeeds {
  bool vm_details = true;      // VM_DETAILS
  bool sync_qemu = true;       // SYNC_GUEST_TYPES holds qemu
  bool node_name_auto = true;  // PROXMOX_NODE_NAME=auto: /cluster/status names the node
  bool discover_hosts = true;  // PROXMOX_DISCOVER_HOSTS
  bool watch_tasks = false;    // CHANGE_POLL_INTERVAL > 0: /cluster/tasks
  // Who the privileges are for, for the pveum command of the fix.
  std::string token_id;  // user@realm!name; empty: a password login of `user`
  std::string user;
};

struct MissingPrivilege {
  std::string privilege;
  std::string path;
  std::string effect;  // what the agent does without it
  std::string fix;     // how to grant it, with its risk where it has one
  std::string note;    // how it is granted instead, e.g. without propagation; "" if not at all
  // false: going without it is the advice (VM.Monitor before PVE 9).
  bool advised = true;
  bool operator==(const MissingPrivilege&) const = default;
};

// The major version of a /version answer ("9.0.3", release "9.0"); nullopt
// when neither can be read.
std::optional<int> pve_major(const VersionInfo& version);

// The needed privileges that `granted` lacks, in the order of the table above.
std::vector<MissingPrivilege> missing_privileges(const PermissionMap& granted, int pve_major,
                                                 const PermissionNeeds& needs);

// The agent's knowledge of its permissions, for /status.
struct PermissionStatus {
  std::optional<std::int64_t> checked;  // unix seconds of the answer read; nullopt: none yet
  std::string version;                  // of the host that answered ("" when unknown)
  std::vector<MissingPrivilege> missing;
  std::optional<std::string> error;  // why they are unknown
};

}  // namespace pha
