#pragma once
// The `data` of each simulated endpoint, built from the cluster state in the
// shapes of the captured responses (tests/fixtures/proxmox/): fields
// omitted rather than null, legacy string typing on old versions. Pure
// functions of their inputs.
//
// What the answers promise, each from the code that makes the real one:
// - A guest's `name` in the node lists, status/current and /cluster/resources
//   is never absent or "": "VM <vmid>" for a VM without one (qemu-server
//   src/PVE/QemuServer.pm vmstatus), "CT<vmid>" for a container without a
//   hostname, whose whitespace is removed (pve-container src/PVE/LXC.pm
//   vmstatus). /cluster/resources shows the same name because pvestatd
//   broadcasts vmstatus' name (pve-manager PVE/Service/pvestatd.pm
//   update_qemu_status/update_lxc_status, read back by PVE/API2Tools.pm
//   extract_vm_stats); only the skeleton of a guest on a node gone for long
//   has none.
// - A running container's `cpu` may be slightly negative (Guest::cpu), in its
//   list entry, its status/current and /cluster/resources.
// - On PVE 9 (qemu-server 9.0.11, pve-container 6.0.7) a running guest has the
//   pressure stall averages pressure{cpu,io,memory}{some,full} in its list
//   entry and status/current (not in /cluster/resources): numbers for a VM
//   (vmstatus multiplies them by 1), but strings such as "0.00" for a
//   container (pve-container vmstatus passes on the text that pve-common
//   src/PVE/ProcFSTools.pm parse_pressure read from the cgroup's
//   *.pressure file), although the API schema says number.
// - GET /nodes/{node}/lxc/{vmid}/interfaces has `ip-addresses` (typed "inet"
//   and "inet6", the families of `ip --json a`) and `hardware-address` from
//   PVE 8.4 (pve-container 5.2.6, src/PVE/LXC.pm get_interfaces), next to
//   the older hwaddr/inet/inet6.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/sim/pve_cluster.hpp"

namespace pha::sim {

// How a node of a given pve-manager version types its list answers.
struct Typing {
  bool qemu_legacy = false;  // before PVE 7: QEMU vmid/pid strings, template "" for non-templates
  bool lxc_vmid_string = false;   // before PVE 8.2 (pve-container 5.0.10): LXC vmid as a string
  bool pressure = false;          // PVE 9: pressure stall averages of running guests
  bool lxc_ip_addresses = false;  // PVE 8.4 on: LXC interfaces with ip-addresses
  static Typing for_version(const std::string& version);
};

// The name a guest's list entry shows: its own, "VM <vmid>" or "CT<vmid>".
std::string display_name(const Guest& g);

// The short git revision shown for a version: 8 lower-case hex digits ("0f39f621").
std::string repo_id(const std::string& version);

nlohmann::json version_data(const std::string& version);
// `local`: the node of the host that answers. A cluster of one node has no cluster entry.
nlohmann::json cluster_status_data(const std::string& cluster_name, const std::vector<Node>& nodes,
                                   const std::string& local);
nlohmann::json nodes_data(const std::vector<Node>& nodes, const std::vector<Guest>& guests,
                          long long now);
nlohmann::json node_status_data(const Node& node, const std::vector<Guest>& guests, long long now);

// /nodes/{node}/qemu and /nodes/{node}/lxc entries.
nlohmann::json qemu_list_entry(const Guest& g, long long now, Typing typing);
nlohmann::json lxc_list_entry(const Guest& g, long long now, Typing typing);

// /cluster/resources entries. A guest of a node offline for more than
// kUnknownAfter seconds shrinks to {id, vmid, node, type, status: "unknown"}.
constexpr long long kUnknownAfter = 300;
nlohmann::json vm_resource(const Guest& g, long long now, bool unknown);
// Every node is listed; without Sys.Audit on /nodes/{node} without its figures
// (pve-manager PVE/API2/Cluster.pm resources, PVE/API2Tools.pm extract_node_stats).
nlohmann::json node_resource(const Node& n, const std::vector<Guest>& guests, long long now,
                             bool audit);
std::vector<nlohmann::json> storage_resources(const Node& n);
nlohmann::json sdn_resource(const Node& n);

nlohmann::json guest_config(const Guest& g, Typing typing);
nlohmann::json status_current(const Guest& g, long long now, Typing typing);
// QEMU guest agent "network-get-interfaces": {"result": [...]}.
nlohmann::json agent_network_interfaces(const Guest& g);
// LXC /interfaces of a running container.
nlohmann::json lxc_interfaces(const Guest& g, Typing typing);

// The login answer of POST /access/ticket.
nlohmann::json ticket_data(const std::string& userid, const std::string& ticket,
                           const std::string& csrf, const std::string& cluster_name,
                           bool clustered);

}  // namespace pha::sim
