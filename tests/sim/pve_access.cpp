#include "tests/sim/pve_access.hpp"

#include <string_view>

namespace pha::sim {

namespace {

using nlohmann::json;

bool is_pve9(const PveVersion& v) {
  return v.at_least(9, 0);
}

// The read-only privileges of every category: what PVEAuditor holds.
std::set<std::string> audit_privileges(const PveVersion& v) {
  std::set<std::string> p = {"VM.Audit",  "Sys.Audit",  "Datastore.Audit",
                             "SDN.Audit", "Pool.Audit", "Mapping.Audit"};
  if (is_pve9(v)) {
    p.insert("VM.GuestAgent.Audit");  // PVE 9: read-only guest agent commands
  }
  return p;
}

// The paths GET /access/permissions lists without `path` whenever they hold
// a privilege (RPCEnvironment::get_effective_permissions).
const std::vector<std::string> kDefaultPaths = {"/",     "/access", "/access/groups", "/nodes",
                                                "/pool", "/sdn",    "/storage",       "/vms"};

// What one ACL entry holds on a version: its role's privileges plus its own,
// without those the version does not know.
std::set<std::string> expand(const Acl& acl, const PveVersion& v, const AccessContext& context) {
  const auto valid = valid_privileges(v);
  std::set<std::string> out;
  if (!acl.role.empty()) {
    if (auto builtin = builtin_role(acl.role, v)) {
      out = std::move(*builtin);
    } else if (const auto custom = context.roles.find(acl.role); custom != context.roles.end()) {
      for (const auto& p : custom->second) {
        if (valid.contains(p)) {
          out.insert(p);
        }
      }
    }
  }
  for (const auto& p : acl.privileges) {
    if (valid.contains(p)) {
      out.insert(p);
    }
  }
  return out;
}

// The roles one ACL subject holds on a path, as privileges
// (AccessControl.pm `roles`): whether some entry applied, and whether the
// entries that decided were a NoAccess.
struct Resolved {
  Privileges privileges;
  bool any = false;
  bool no_access = false;
};

Resolved resolve(const std::vector<Acl>& acls, const std::string& path, const PveVersion& v,
                 const AccessContext& context);

// The vmid of "/vms/{vmid}", when the path is one.
std::optional<int> vm_of(const std::string& path) {
  constexpr std::string_view prefix = "/vms/";
  if (!path.starts_with(prefix) || path.size() == prefix.size() ||
      path.size() > prefix.size() + 9 ||
      path.find_first_not_of("0123456789", prefix.size()) != std::string::npos) {
    return std::nullopt;
  }
  return std::stoi(path.substr(prefix.size()));
}

bool reaches(const std::string& acl_path, const std::string& path) {
  return acl_path == "/" || acl_path == path || path.starts_with(acl_path + "/");
}

// A token's own ACL entries: its `privileges` on / (propagated), then `acls`.
std::vector<Acl> token_acls(const ApiToken& t) {
  std::vector<Acl> out;
  if (!t.privileges.empty()) {
    out.push_back({.path = "/", .privileges = t.privileges});
  }
  out.insert(out.end(), t.acls.begin(), t.acls.end());
  return out;
}

json privileges_json(const Privileges& p) {
  json out = json::object();
  for (const auto& [name, propagate] : p) {
    out[name] = propagate ? 1 : 0;
  }
  return out;
}

// Every path of the cluster's ACL entries, and every pool member's path.
std::set<std::string> listed_paths(const PveCluster& cluster) {
  std::set<std::string> paths(kDefaultPaths.begin(), kDefaultPaths.end());
  for (const auto& t : cluster.tokens()) {
    for (const auto& acl : token_acls(t)) {
      paths.insert(acl.path);
    }
  }
  for (const auto& u : cluster.users()) {
    for (const auto& acl : u.acls.value_or(std::vector<Acl>{})) {
      paths.insert(acl.path);
    }
  }
  for (const auto& g : cluster.guests()) {
    if (!g.pool.empty()) {
      paths.insert("/vms/" + std::to_string(g.vmid));
    }
  }
  return paths;
}

}  // namespace

std::set<std::string> valid_privileges(const PveVersion& v) {
  std::set<std::string> p = {"VM.Allocate",
                             "VM.Audit",
                             "VM.Backup",
                             "VM.Clone",
                             "VM.Config.CDROM",
                             "VM.Config.CPU",
                             "VM.Config.Cloudinit",
                             "VM.Config.Disk",
                             "VM.Config.HWType",
                             "VM.Config.Memory",
                             "VM.Config.Network",
                             "VM.Config.Options",
                             "VM.Console",
                             "VM.Migrate",
                             "VM.PowerMgmt",
                             "VM.Snapshot",
                             "VM.Snapshot.Rollback",
                             "Sys.Audit",
                             "Sys.Console",
                             "Sys.Incoming",
                             "Sys.Modify",
                             "Sys.PowerMgmt",
                             "Sys.Syslog",
                             "Sys.AccessNetwork",
                             "Permissions.Modify",
                             "Datastore.Allocate",
                             "Datastore.AllocateSpace",
                             "Datastore.AllocateTemplate",
                             "Datastore.Audit",
                             "SDN.Allocate",
                             "SDN.Audit",
                             "SDN.Use",
                             "Realm.Allocate",
                             "Realm.AllocateUser",
                             "User.Modify",
                             "Group.Allocate",
                             "Pool.Allocate",
                             "Pool.Audit",
                             "Mapping.Audit",
                             "Mapping.Modify",
                             "Mapping.Use"};
  if (is_pve9(v)) {
    // VM.Monitor is gone: it allowed guest-exec, i.e. any command as root in
    // the guest. PVE 9 splits the guest agent's commands by what they can do.
    p.insert({"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
              "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.Unrestricted", "VM.Replicate"});
  } else {
    p.insert("VM.Monitor");
  }
  return p;
}

std::optional<std::set<std::string>> builtin_role(const std::string& role, const PveVersion& v) {
  if (role == "Administrator") {
    return valid_privileges(v);
  }
  if (role == "NoAccess") {
    return std::set<std::string>{};
  }
  if (role == "PVEAuditor") {
    return audit_privileges(v);
  }
  return std::nullopt;
}

namespace {

Resolved resolve(const std::vector<Acl>& acls, const std::string& path, const PveVersion& v,
                 const AccessContext& context) {
  // Shallowest first: a map orders every ancestor before its descendants.
  std::map<std::string, std::vector<const Acl*>> by_path;
  for (const auto& acl : acls) {
    by_path[acl.path].push_back(&acl);
  }
  Resolved out;
  for (const auto& [acl_path, entries] : by_path) {
    if (!reaches(acl_path, path)) {
      continue;
    }
    // The entries on the path itself apply, above it only propagated ones;
    // those that apply replace what shallower paths gave.
    const bool final = acl_path == path;
    bool applies = false;
    bool no_access = false;
    Privileges here;
    for (const auto* e : entries) {
      if (!final && !e->propagate) {
        continue;
      }
      applies = true;
      no_access = no_access || e->role == "NoAccess";
      for (const auto& p : expand(*e, v, context)) {
        here[p] = here[p] || e->propagate;
      }
    }
    if (applies) {
      out.any = true;
      out.no_access = no_access;
      out.privileges = no_access ? Privileges{} : std::move(here);
    }
  }
  return out;
}

}  // namespace

Privileges privileges_at(const std::vector<Acl>& acls, const std::string& path, const PveVersion& v,
                         const AccessContext& context) {
  auto own = resolve(acls, path, v, context);
  const auto vmid = context.pool_of ? vm_of(path) : std::nullopt;
  const auto pool = vmid ? context.pool_of(*vmid) : std::nullopt;
  if (!pool || own.no_access) {
    return std::move(own.privileges);
  }
  const auto from_pool = resolve(acls, "/pool/" + *pool, v, context);
  if (!from_pool.any) {
    return std::move(own.privileges);
  }
  if (from_pool.no_access) {
    return {};
  }
  for (const auto& [p, propagate] : from_pool.privileges) {
    own.privileges.try_emplace(p, false);  // pool roles never propagate
  }
  return std::move(own.privileges);
}

Privileges Principal::at(const std::string& path, const PveVersion& v) const {
  Privileges base;
  if (user) {
    base = privileges_at(*user, path, v, context);
  } else {
    for (const auto& p : valid_privileges(v)) {
      base[p] = true;
    }
  }
  if (!token) {
    return base;
  }
  // A privilege-separated token: what both it and its user hold; it
  // propagates when it does for both.
  Privileges out;
  for (const auto& [p, propagate] : privileges_at(*token, path, v, context)) {
    const auto u = base.find(p);
    if (u != base.end()) {
      out[p] = propagate && u->second;
    }
  }
  return out;
}

bool Principal::has(const std::string& privilege, const std::string& path,
                    const PveVersion& v) const {
  return at(path, v).contains(privilege);
}

Principal principal_of(const PveCluster& cluster, const std::string& authid) {
  Principal p;
  p.authid = authid;
  p.context.roles = cluster.roles();
  p.context.pool_of = [&cluster](int vmid) { return cluster.pool_of(vmid); };
  const auto bang = authid.find('!');
  const auto userid = authid.substr(0, bang);
  if (const auto user = cluster.user(userid); user && userid != "root@pam") {
    p.user = user->acls;
  }
  if (bang != std::string::npos) {
    const auto token = cluster.token(authid);
    if (!token) {
      p.user = std::vector<Acl>{};  // Proxmox: no such token, no privileges
    } else if (token->privsep) {
      p.token = token_acls(*token);
    }
  }
  return p;
}

json permissions_data(const PveCluster& cluster, const Principal& who,
                      const std::optional<std::string>& path, const PveVersion& v) {
  if (path) {
    return json{{*path, privileges_json(who.at(*path, v))}};
  }
  json out = json::object();
  for (const auto& p : listed_paths(cluster)) {
    auto privileges = who.at(p, v);
    if (!privileges.empty()) {
      out[p] = privileges_json(privileges);
    }
  }
  return out;
}

std::vector<std::string> guest_agent_audit_privileges(const PveVersion& v) {
  if (is_pve9(v)) {
    return {"VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"};
  }
  return {"VM.Monitor"};
}

}  // namespace pha::sim
