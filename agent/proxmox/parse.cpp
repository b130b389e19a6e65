#include "agent/proxmox/parse.hpp"

#include <arpa/inet.h>
#include <cmath>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "agent/proxmox/json_fields.hpp"

namespace pha {

namespace {

using nlohmann::json;
using namespace pve_json;

constexpr double kMaxCpus = 1 << 20;

using Clamped = std::map<std::string, std::uint64_t>;

// `v` when it is not below zero; 0, counted under `field`, when it is.
template <class T>
T clamp_negative(T v, const char* field, Clamped& clamped) {
  if (v < 0) {
    ++clamped[field];
    return T{0};
  }
  return v;
}

// Fills `g` from one list entry; `cpus_key` is "cpus" on the node API and
// "maxcpu" in /cluster/resources. A negative amount is clamped to 0 and
// counted in `clamped`: pve-container computes a container's CPU share as a
// delta of two readings, which dips below zero (a real PVE 9.2 list had
// -5.75e-05), and no real reading of the others is worth dropping a guest for.
Status fill_guest(const json& e, Guest& g, const char* cpus_key, Clamped& clamped) {
  auto vmid = int_field(e, "vmid");
  if (!vmid) {
    return vmid.error();
  }
  if (!vmid->has_value() || **vmid <= 0 || **vmid > 999'999'999) {
    return Error{ErrorKind::bad_reply, "no valid \"vmid\""};
  }
  g.vmid = **vmid;
  auto status = string_field(e, "status");
  if (!status) {
    return status.error();
  }
  if (!status->has_value() || (*status)->empty()) {
    return Error{ErrorKind::bad_reply, "no \"status\""};
  }
  g.status = **status;
  g.unknown = g.status == "unknown";
  auto name = string_field(e, "name");
  if (!name) {
    return name.error();
  }
  g.name = name->value_or("");
  auto cpus = number_field(e, cpus_key);
  auto cpu = number_field(e, "cpu");
  auto maxmem = int_field(e, "maxmem");
  auto maxdisk = int_field(e, "maxdisk");
  auto uptime = int_field(e, "uptime");
  auto tmpl = flag_field(e, "template");
  auto tags = string_field(e, "tags");
  auto lock = string_field(e, "lock");
  for (const Error* err : {cpus ? nullptr : &cpus.error(), cpu ? nullptr : &cpu.error(),
                           maxmem ? nullptr : &maxmem.error(), maxdisk ? nullptr : &maxdisk.error(),
                           uptime ? nullptr : &uptime.error(), tmpl ? nullptr : &tmpl.error(),
                           tags ? nullptr : &tags.error(), lock ? nullptr : &lock.error()}) {
    if (err != nullptr) {
      return *err;
    }
  }
  if (!std::isfinite(cpu->value_or(0)) || !std::isfinite(cpus->value_or(0))) {
    return Error{ErrorKind::bad_reply, "non-finite resource values"};
  }
  g.cpus = clamp_negative(cpus->value_or(0), cpus_key, clamped);
  g.cpu = clamp_negative(cpu->value_or(0), "cpu", clamped);
  g.maxmem = clamp_negative(maxmem->value_or(0), "maxmem", clamped);
  g.maxdisk = clamp_negative(maxdisk->value_or(0), "maxdisk", clamped);
  g.uptime = clamp_negative(uptime->value_or(0), "uptime", clamped);
  g.is_template = *tmpl;
  g.tags = tags->value_or("");
  g.lock = lock->value_or("");
  // No guest has that many cores (Proxmox allows 8192 vCPUs); more would not
  // even fit the integer core count sent to AccountDB.
  if (g.cpus > kMaxCpus) {
    return Error{ErrorKind::bad_reply,
                 "\"" + std::string(cpus_key) + "\" is not a core count: " + shown(e[cpus_key])};
  }
  return {};
}

// The VMID of an entry that was rejected, when it can be read at all.
std::optional<std::int64_t> readable_vmid(const json& e) {
  if (!e.is_object()) {
    return std::nullopt;
  }
  auto vmid = int_field(e, "vmid");
  if (!vmid || !vmid->has_value() || **vmid <= 0 || **vmid > 999'999'999) {
    return std::nullopt;
  }
  return **vmid;
}

std::string entry_label(const json& e, std::size_t index) {
  if (e.is_object() && e.contains("vmid")) {
    return "entry " + std::to_string(index) + " (vmid " + shown(e["vmid"]) + ")";
  }
  return "entry " + std::to_string(index);
}

void reject_duplicates(GuestList& list) {
  std::set<std::int64_t> seen;
  std::vector<Guest> unique;
  for (auto& g : list.guests) {
    if (seen.insert(g.vmid).second) {
      unique.push_back(std::move(g));
    } else {
      // Which of the two is true is not known: the VMID is unknown this read.
      list.rejected.push_back("vmid " + std::to_string(g.vmid) + " is listed twice");
      list.rejected_vmids.insert(g.vmid);
    }
  }
  list.guests = std::move(unique);
}

std::optional<std::string> first_ipv4_of(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    const auto ip = std::string(c.substr(0, c.find('/')));
    if (is_reportable_ipv4(ip)) {
      return ip;
    }
  }
  return std::nullopt;
}

}  // namespace

bool is_reportable_ipv4(std::string_view ip) {
  in_addr addr{};
  if (inet_pton(AF_INET, std::string(ip).c_str(), &addr) != 1) {
    return false;
  }
  const auto a = ntohl(addr.s_addr);
  const bool loopback = (a >> 24) == 127;
  const bool link_local = (a >> 16) == 0xA9FE;  // 169.254.0.0/16
  return !loopback && !link_local && a != 0;
}

namespace {

// Runs `parse_entry` on every object of the "data" list. It returns a guest,
// an error (the entry is rejected by name: its VMID, or without one the
// whole read, is partial), or nothing (an entry that is not a guest, skipped).
template <class ParseEntry>
Result<GuestList> parse_entries(std::string_view body, ParseEntry parse_entry) {
  auto data = data_array(body);
  if (!data) {
    return data.error();
  }
  GuestList list;
  const auto reject = [&list](const json& e, std::size_t i, const std::string& why) {
    list.rejected.push_back(entry_label(e, i) + ": " + why);
    if (const auto vmid = readable_vmid(e)) {
      list.rejected_vmids.insert(*vmid);
    } else {
      ++list.unattributed;
    }
  };
  for (std::size_t i = 0; i < data->size(); ++i) {
    const auto& e = (*data)[i];
    if (!e.is_object()) {
      reject(e, i, "not an object");
      continue;
    }
    Result<std::optional<Guest>> guest = parse_entry(e, list.clamped);
    if (!guest) {
      reject(e, i, guest.error().message);
    } else if (guest->has_value()) {
      list.guests.push_back(std::move(**guest));
    }
  }
  reject_duplicates(list);
  return list;
}

}  // namespace

Result<GuestList> parse_guest_list(std::string_view body, GuestType type, std::string_view node) {
  return parse_entries(body, [&](const json& e, Clamped& clamped) -> Result<std::optional<Guest>> {
    Guest g;
    g.type = type;
    g.node = std::string(node);
    if (auto ok = fill_guest(e, g, "cpus", clamped); !ok) {
      return ok.error();
    }
    if (auto t = string_field(e, "type"); t && t->has_value() && **t != to_string(type)) {
      return Error{ErrorKind::bad_reply,
                   "type \"" + **t + "\" in the " + std::string(to_string(type)) + " list"};
    }
    return std::optional<Guest>{std::move(g)};
  });
}

Result<GuestList> parse_cluster_resources(std::string_view body) {
  return parse_entries(body, [](const json& e, Clamped& clamped) -> Result<std::optional<Guest>> {
    auto type = string_field(e, "type");
    if (!type || !type->has_value()) {
      return Error{ErrorKind::bad_reply, "no \"type\""};
    }
    if (**type != "qemu" && **type != "lxc") {
      return std::optional<Guest>{};  // node, storage, sdn, pool...: not guests
    }
    Guest g;
    g.type = **type == "qemu" ? GuestType::qemu : GuestType::lxc;
    auto node = string_field(e, "node");
    if (!node || !node->has_value() || (*node)->empty()) {
      return Error{ErrorKind::bad_reply, "no \"node\""};
    }
    g.node = **node;
    if (auto ok = fill_guest(e, g, "maxcpu", clamped); !ok) {
      return ok.error();
    }
    return std::optional<Guest>{std::move(g)};
  });
}

const ClusterNode* ClusterStatus::local_node() const {
  for (const auto& n : nodes) {
    if (n.local) {
      return &n;
    }
  }
  return nullptr;
}

Result<ClusterStatus> parse_cluster_status(std::string_view body) {
  auto data = data_array(body);
  if (!data) {
    return data.error();
  }
  ClusterStatus status;
  for (const auto& e : *data) {
    if (!e.is_object()) {
      return Error{ErrorKind::bad_reply, "an entry is not an object"};
    }
    auto type = string_field(e, "type");
    auto name = string_field(e, "name");
    if (!type || !name) {
      return type ? name.error() : type.error();
    }
    if (type->value_or("") == "cluster") {
      status.cluster_name = name->value_or("");
      continue;
    }
    if (type->value_or("") != "node") {
      continue;
    }
    ClusterNode n;
    n.name = name->value_or("");
    auto ip = string_field(e, "ip");
    auto online = flag_field(e, "online");
    auto local = flag_field(e, "local");
    auto nodeid = int_field(e, "nodeid");
    if (n.name.empty() || !ip || !online || !local || !nodeid) {
      return Error{ErrorKind::bad_reply, "a node entry is malformed: " + shown(e)};
    }
    n.ip = ip->value_or("");
    n.online = *online;
    n.local = *local;
    n.nodeid = nodeid->value_or(0);
    status.nodes.push_back(std::move(n));
  }
  return status;
}

Result<VersionInfo> parse_version(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  if (!data->is_object()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not an object"};
  }
  auto version = string_field(*data, "version");
  auto release = string_field(*data, "release");
  if (!version || !version->has_value()) {
    return Error{ErrorKind::bad_reply, "no \"version\""};
  }
  return VersionInfo{**version, release ? release->value_or("") : ""};
}

Result<Ticket> parse_ticket(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  if (!data->is_object()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not an object"};
  }
  auto ticket = string_field(*data, "ticket");
  auto csrf = string_field(*data, "CSRFPreventionToken");
  auto user = string_field(*data, "username");
  if (!ticket || !ticket->has_value() || (*ticket)->empty()) {
    return Error{ErrorKind::bad_reply, "no \"ticket\" in the login answer"};
  }
  if (!csrf || !csrf->has_value()) {
    return Error{ErrorKind::bad_reply, "no \"CSRFPreventionToken\" in the login answer"};
  }
  return Ticket{**ticket, **csrf, user ? user->value_or("") : ""};
}

Result<PermissionMap> parse_permissions(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  if (!data->is_object()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not an object of paths: " + shown(*data)};
  }
  PermissionMap out;
  for (const auto& [path, privileges] : data->items()) {
    if (!path.starts_with("/")) {
      return Error{ErrorKind::bad_reply, "a path does not begin with /: " + shown(json(path))};
    }
    if (!privileges.is_object()) {
      return Error{ErrorKind::bad_reply, "the privileges of " + shown(json(path)) +
                                             " are not an object: " + shown(privileges)};
    }
    auto& into = out[path];
    for (const auto& [name, propagate] : privileges.items()) {
      auto flag = flag_field(privileges, name.c_str());
      if (name.empty() || !flag) {
        return Error{ErrorKind::bad_reply,
                     "privilege " + shown(json(name)) + " of " + shown(json(path)) +
                         ": not a propagate flag (0 or 1): " + shown(propagate)};
      }
      into[name] = *flag;
    }
  }
  return out;
}

Result<std::optional<std::string>> parse_config_description(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  if (!data->is_object()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not an object"};
  }
  auto d = string_field(*data, "description");
  if (!d) {
    return d.error();
  }
  return *d;
}

Result<std::optional<std::string>> parse_qemu_agent_ipv4(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  const json* list = &*data;
  if (data->is_object() && data->contains("result")) {
    list = &(*data)["result"];
  }
  if (!list->is_array()) {
    return Error{ErrorKind::bad_reply, "no interface list"};
  }
  std::vector<std::string> candidates;
  for (const auto& iface : *list) {
    if (!iface.is_object() || !iface.contains("ip-addresses") ||
        !iface["ip-addresses"].is_array()) {
      continue;
    }
    for (const auto& a : iface["ip-addresses"]) {
      if (a.is_object() && a.value("ip-address-type", "") == "ipv4" && a.contains("ip-address") &&
          a["ip-address"].is_string()) {
        candidates.push_back(a["ip-address"].get<std::string>());
      }
    }
  }
  return first_ipv4_of(candidates);
}

Result<std::optional<std::string>> parse_lxc_interfaces_ipv4(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data.error();
  }
  if (data->is_null()) {
    return std::optional<std::string>{};  // a stopped container
  }
  if (!data->is_array()) {
    return Error{ErrorKind::bad_reply, "no interface list"};
  }
  std::vector<std::string> candidates;
  for (const auto& iface : *data) {
    if (!iface.is_object()) {
      continue;
    }
    if (iface.contains("inet") && iface["inet"].is_string()) {
      candidates.push_back(iface["inet"].get<std::string>());
    }
    if (iface.contains("ip-addresses") && iface["ip-addresses"].is_array()) {
      for (const auto& a : iface["ip-addresses"]) {
        if (a.is_object() && a.value("ip-address-type", "") == "inet" && a.contains("ip-address") &&
            a["ip-address"].is_string()) {
          candidates.push_back(a["ip-address"].get<std::string>());
        }
      }
    }
  }
  return first_ipv4_of(candidates);
}

}  // namespace pha
