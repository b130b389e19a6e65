#include "agent/proxmox/permissions.hpp"

#include <cctype>

#include "agent/core/text.hpp"

namespace pha {

namespace {

// One privilege the agent needs: any of `accepted` on `path`. The guest
// calls check /vms/{vmid}, so there it must propagate from /vms; the
// /cluster/status check is on / itself.
struct Need {
  std::vector<std::string> accepted;  // the first is the one to grant
  std::string path;
  bool must_propagate = false;
  std::string effect;
  std::string fix;
  bool advised = true;
};

// The leading integer of "9.0", "9.0.3", "7.4-16".
std::optional<int> leading_int(const std::string& s) {
  std::size_t digits = 0;
  while (digits < s.size() && digits < 6 && std::isdigit(static_cast<unsigned char>(s[digits]))) {
    ++digits;
  }
  if (digits == 0 || (digits < s.size() && s[digits] != '.' && s[digits] != '-')) {
    return std::nullopt;
  }
  const auto v = parse_int(std::string_view(s).substr(0, digits));
  return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
}

// "--users agent@pve --tokens 'agent@pve!sync'": the token's own ACL counts
// for a privilege-separated token, its user's for both kinds.
std::string grantees(const PermissionNeeds& n) {
  if (n.token_id.empty()) {
    return "--users " + n.user;
  }
  return "--users " + n.token_id.substr(0, n.token_id.find('!')) + " --tokens '" + n.token_id + "'";
}

std::string auditor_fix(const PermissionNeeds& n) {
  return "pveum acl modify / --roles PVEAuditor " + grantees(n);
}

std::string monitor_fix(const PermissionNeeds& n) {
  return "not advised: VM.Monitor also allows guest-exec, i.e. any command as root in every VM; "
         "rather go without QEMU guest IPs, or upgrade to Proxmox VE 9, where PVEAuditor has "
         "VM.GuestAgent.Audit. Accepting that risk: pveum role add PHAGuestAgent --privs "
         "VM.Monitor && pveum acl modify /vms --roles PHAGuestAgent " +
         grantees(n);
}

std::string sys_audit_effect(const PermissionNeeds& n) {
  std::vector<std::string> effects;
  if (n.node_name_auto) {
    effects.emplace_back("the node name is the short host name, not /cluster/status's");
  }
  if (n.discover_hosts) {
    effects.emplace_back("no failover hosts are discovered");
  }
  if (n.watch_tasks) {
    effects.emplace_back(
        "the task list is empty, so changes wait for the status read or the periodic cycle");
  }
  std::string out;
  for (std::size_t i = 0; i < effects.size(); ++i) {
    out += (i == 0 ? "" : (i + 1 == effects.size() ? ", and " : ", ")) + effects[i];
  }
  return out;
}

std::vector<Need> needs_of(int major, const PermissionNeeds& n) {
  std::vector<Need> out;
  out.push_back(
      {{"VM.Audit"}, "/vms", true, "the guest lists are empty: nothing syncs", auditor_fix(n)});
  if (n.node_name_auto || n.discover_hosts || n.watch_tasks) {
    out.push_back({{"Sys.Audit"}, "/", false, sys_audit_effect(n), auditor_fix(n)});
  }
  if (n.vm_details && n.sync_qemu) {
    const std::string effect = "QEMU guest IPs stay empty";
    if (major >= 9) {
      out.push_back({{"VM.GuestAgent.Audit", "VM.GuestAgent.Unrestricted"},
                     "/vms",
                     true,
                     effect,
                     auditor_fix(n)});
    } else {
      out.push_back({{"VM.Monitor"}, "/vms", true, effect, monitor_fix(n), false});
    }
  }
  return out;
}

bool holds(const PermissionMap& granted, const Need& need) {
  const auto at = granted.find(need.path);
  if (at == granted.end()) {
    return false;
  }
  for (const auto& p : need.accepted) {
    const auto it = at->second.find(p);
    if (it != at->second.end() && (it->second || !need.must_propagate)) {
      return true;
    }
  }
  return false;
}

// How a missing privilege is granted after all: on the path without
// propagation, or only on paths below it (single guests).
std::string note_of(const PermissionMap& granted, const Need& need) {
  std::size_t below = 0;
  for (const auto& [path, privileges] : granted) {
    for (const auto& p : need.accepted) {
      if (!privileges.contains(p)) {
        continue;
      }
      if (path == need.path) {
        return "granted on " + path + " without propagation: it does not reach the paths below";
      }
      if (path.starts_with(need.path == "/" ? "/" : need.path + "/")) {
        ++below;
        break;
      }
    }
  }
  return below == 0 ? "" : "granted only on " + std::to_string(below) + " paths below " + need.path;
}

}  // namespace

std::optional<int> pve_major(const VersionInfo& version) {
  if (auto m = leading_int(version.release)) {
    return m;
  }
  return leading_int(version.version);
}

std::vector<MissingPrivilege> missing_privileges(const PermissionMap& granted, int pve_major,
                                                 const PermissionNeeds& needs) {
  std::vector<MissingPrivilege> out;
  for (const auto& need : needs_of(pve_major, needs)) {
    if (!holds(granted, need)) {
      out.push_back({need.accepted.front(), need.path, need.effect, need.fix,
                     note_of(granted, need), need.advised});
    }
  }
  return out;
}

}  // namespace pha
