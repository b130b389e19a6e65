#pragma once
// Proxmox VE's permission model as pve-access-control computes it, for the
// simulator: the privileges that exist per version (PVE 9 dropped VM.Monitor
// and added VM.GuestAgent.*), the built-in roles, what ACL entries give on a
// path (propagation, deeper entries replacing shallower ones, NoAccess), a
// privilege-separated token intersected with its user, and the answer of
// GET /access/permissions. Pure functions of the cluster's users and tokens.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/sim/pve_cluster.hpp"

namespace pha::sim {

// privilege -> propagate flag: the shape of one path of /access/permissions.
using Privileges = std::map<std::string, bool>;

// Every privilege of a version (the role Administrator).
std::set<std::string> valid_privileges(const PveVersion& v);
// A built-in role's privileges on that version; nullopt for an unknown role.
std::optional<std::set<std::string>> builtin_role(const std::string& role, const PveVersion& v);

// What `acls` give on `path` (RPCEnvironment::permissions without pools).
Privileges privileges_at(const std::vector<Acl>& acls, const std::string& path,
                         const PveVersion& v);

// A user or API token as the permission checks see it.
struct Principal {
  std::string authid;                    // "user@realm" or "user@realm!token"
  std::optional<std::vector<Acl>> user;  // nullopt: every privilege
  // A privilege-separated token's own ACLs (nullopt: not one).
  std::optional<std::vector<Acl>> token;

  Privileges at(const std::string& path, const PveVersion& v) const;
  bool has(const std::string& privilege, const std::string& path, const PveVersion& v) const;
};

// The principal of a user or token id as the cluster defines it.
Principal principal_of(const PveCluster& cluster, const std::string& authid);

// GET /access/permissions: with `path` {path: privileges} (even when empty);
// without, every default top-level path, every path with an ACL entry and
// every pool member's /vms/{vmid}, where it has some privilege.
nlohmann::json permissions_data(const PveCluster& cluster, const Principal& who,
                                const std::optional<std::string>& path, const PveVersion& v);

// The privileges of which one lets the QEMU guest agent's informational
// commands (network-get-interfaces) through on that version.
std::vector<std::string> guest_agent_audit_privileges(const PveVersion& v);

}  // namespace pha::sim
