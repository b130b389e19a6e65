#pragma once
// The `data` of each simulated endpoint, built from the cluster state in the
// shapes of the captured responses (tests/fixtures/proxmox/): fields
// omitted rather than null, legacy string typing on old versions. Pure
// functions of their inputs.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/sim/pve_cluster.hpp"

namespace pha::sim {

// How a node of a given pve-manager version types its list answers.
struct Typing {
  bool qemu_legacy = false;  // before PVE 7: QEMU vmid/pid strings, template "" for non-templates
  bool lxc_vmid_string = false;  // before PVE 8.2 (pve-container 5.0.10): LXC vmid as a string
  static Typing for_version(const std::string& version);
};

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
nlohmann::json node_resource(const Node& n, const std::vector<Guest>& guests, long long now);
std::vector<nlohmann::json> storage_resources(const Node& n);
nlohmann::json sdn_resource(const Node& n);

nlohmann::json guest_config(const Guest& g, Typing typing);
nlohmann::json status_current(const Guest& g, long long now);
// QEMU guest agent "network-get-interfaces": {"result": [...]}.
nlohmann::json agent_network_interfaces(const Guest& g);
// LXC /interfaces of a running container.
nlohmann::json lxc_interfaces(const Guest& g);

// The login answer of POST /access/ticket.
nlohmann::json ticket_data(const std::string& userid, const std::string& ticket,
                           const std::string& csrf, const std::string& cluster_name,
                           bool clustered);

}  // namespace pha::sim
