#pragma once
// Proxmox VE's permission model as pve-access-control computes it, for the
// simulator: the privileges that exist per version (PVE 9 dropped VM.Monitor
// and added VM.GuestAgent.*), the built-in roles and custom ones, what ACL
// entries give on a path (propagation, deeper entries replacing shallower
// ones, NoAccess), what an entry on /pool/{pool} gives on /vms/{vmid} of the
// pool's guests, a privilege-separated token intersected with its user, and
// the answer of GET /access/permissions. Pure functions of the cluster's
// users, tokens, roles and pools.
//
// The pool rule follows pve-access-control src/PVE/RPCEnvironment.pm
// ($compile_acl_path, with AccessControl.pm `roles`): the roles a user holds
// on /pool/{pool} (propagated from / and /pool too) are added on
// /vms/{vmid} of its guests, not propagated, where the path's own ACL did
// not already set them; a NoAccess on the pool path hides the guest, and a
// NoAccess that applies on /vms/{vmid} itself is never trumped by the pool.
// Every check the simulator makes (the lists' filter, the per-guest calls'
// 403, /access/permissions) goes through Principal::at, so they agree.

#include <functional>
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

// What the checks read besides the ACL entries themselves.
struct AccessContext {
  // Custom roles by name (a built-in role of the same name wins).
  std::map<std::string, std::set<std::string>> roles;
  // The pool of a guest (nullopt: none); unset: no guest is in a pool.
  std::function<std::optional<std::string>(int vmid)> pool_of;
};

// What `acls` give on `path` (RPCEnvironment::permissions for one ACL subject).
Privileges privileges_at(const std::vector<Acl>& acls, const std::string& path, const PveVersion& v,
                         const AccessContext& context = {});

// A user or API token as the permission checks see it.
struct Principal {
  std::string authid;                    // "user@realm" or "user@realm!token"
  std::optional<std::vector<Acl>> user;  // nullopt: every privilege
  // A privilege-separated token's own ACLs (nullopt: not one).
  std::optional<std::vector<Acl>> token;
  AccessContext context;

  Privileges at(const std::string& path, const PveVersion& v) const;
  bool has(const std::string& privilege, const std::string& path, const PveVersion& v) const;
};

// The principal of a user or token id as the cluster defines it (its pool
// lookups ask `cluster`, which must outlive it).
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
