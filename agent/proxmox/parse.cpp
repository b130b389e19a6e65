#include "agent/proxmox/parse.hpp"

#include <arpa/inet.h>
#include <cmath>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"

namespace pha {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxShown = 80;
constexpr double kMaxCpus = 1 << 20;

std::string shown(const json& v) {
  auto s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > kMaxShown ? s.substr(0, kMaxShown) + "..." : s;
}

// The "data" member of the {"data": ...} envelope.
Result<json> envelope(std::string_view body) {
  auto doc = json::parse(body.begin(), body.end(), nullptr, false);
  if (doc.is_discarded()) {
    return Error{ErrorKind::bad_reply, "the body is not JSON"};
  }
  if (!doc.is_object() || !doc.contains("data")) {
    return Error{ErrorKind::bad_reply, "the body has no \"data\" member"};
  }
  return std::move(doc["data"]);
}

// An integer sent as a number or as a numeric string; "" and absence are
// "not set" (older servers send template: "" for non-templates).
Result<std::optional<std::int64_t>> int_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::int64_t>{};
  }
  if (it->is_number_integer()) {
    return std::optional<std::int64_t>{it->get<std::int64_t>()};
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) {
      return std::optional<std::int64_t>{static_cast<std::int64_t>(d)};
    }
  } else if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty()) {
      return std::optional<std::int64_t>{};
    }
    if (auto v = parse_int(s)) {
      return std::optional<std::int64_t>{static_cast<std::int64_t>(*v)};
    }
  }
  return Error{ErrorKind::bad_reply,
               std::string("\"") + key + "\" is not an integer: " + shown(*it)};
}

Result<std::optional<double>> number_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<double>{};
  }
  if (it->is_number()) {
    return std::optional<double>{it->get<double>()};
  }
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty()) {
      return std::optional<double>{};
    }
    if (auto v = parse_decimal(s)) {
      return std::optional<double>{*v};
    }
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not a number: " + shown(*it)};
}

Result<std::optional<std::string>> string_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::string>{};
  }
  if (it->is_string()) {
    return std::optional<std::string>{it->get<std::string>()};
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not a string: " + shown(*it)};
}

// 0/1 (number or string), true/false, "" (not set).
Result<bool> flag_field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return false;
  }
  if (it->is_boolean()) {
    return it->get<bool>();
  }
  auto v = int_field(obj, key);
  if (!v) {
    return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not 0 or 1: " + shown(*it)};
  }
  if (!v->has_value()) {
    return false;
  }
  if (**v == 0 || **v == 1) {
    return **v == 1;
  }
  return Error{ErrorKind::bad_reply, std::string("\"") + key + "\" is not 0 or 1: " + shown(*it)};
}

// Fills `g` from one list entry; `cpus_key` is "cpus" on the node API and
// "maxcpu" in /cluster/resources.
Status fill_guest(const json& e, Guest& g, const char* cpus_key) {
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
  g.cpus = cpus->value_or(0);
  g.cpu = cpu->value_or(0);
  g.maxmem = maxmem->value_or(0);
  g.maxdisk = maxdisk->value_or(0);
  g.uptime = uptime->value_or(0);
  g.is_template = *tmpl;
  g.tags = tags->value_or("");
  g.lock = lock->value_or("");
  if (g.cpus < 0 || g.cpu < 0 || g.maxmem < 0 || g.maxdisk < 0 || !std::isfinite(g.cpu) ||
      !std::isfinite(g.cpus)) {
    return Error{ErrorKind::bad_reply, "negative or non-finite resource values"};
  }
  // No guest has that many cores (Proxmox allows 8192 vCPUs); more would not
  // even fit the integer core count sent to AccountDB.
  if (g.cpus > kMaxCpus) {
    return Error{ErrorKind::bad_reply,
                 "\"" + std::string(cpus_key) + "\" is not a core count: " + shown(e[cpus_key])};
  }
  return {};
}

std::string entry_label(const json& e, std::size_t index) {
  if (e.is_object() && e.contains("vmid")) {
    return "entry " + std::to_string(index) + " (vmid " + shown(e["vmid"]) + ")";
  }
  return "entry " + std::to_string(index);
}

Result<json> data_array(std::string_view body) {
  auto data = envelope(body);
  if (!data) {
    return data;
  }
  if (!data->is_array()) {
    return Error{ErrorKind::bad_reply, "\"data\" is not a list"};
  }
  return data;
}

void reject_duplicates(GuestList& list) {
  std::set<std::int64_t> seen;
  std::vector<Guest> unique;
  for (auto& g : list.guests) {
    if (seen.insert(g.vmid).second) {
      unique.push_back(std::move(g));
    } else {
      list.rejected.push_back("vmid " + std::to_string(g.vmid) + " is listed twice");
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
// an error (the entry is rejected by name: the read is partial), or nothing
// (an entry that is not a guest, skipped).
template <class ParseEntry>
Result<GuestList> parse_entries(std::string_view body, ParseEntry parse_entry) {
  auto data = data_array(body);
  if (!data) {
    return data.error();
  }
  GuestList list;
  for (std::size_t i = 0; i < data->size(); ++i) {
    const auto& e = (*data)[i];
    if (!e.is_object()) {
      list.rejected.push_back(entry_label(e, i) + ": not an object");
      continue;
    }
    Result<std::optional<Guest>> guest = parse_entry(e);
    if (!guest) {
      list.rejected.push_back(entry_label(e, i) + ": " + guest.error().message);
    } else if (guest->has_value()) {
      list.guests.push_back(std::move(**guest));
    }
  }
  reject_duplicates(list);
  return list;
}

}  // namespace

Result<GuestList> parse_guest_list(std::string_view body, GuestType type, std::string_view node) {
  return parse_entries(body, [&](const json& e) -> Result<std::optional<Guest>> {
    Guest g;
    g.type = type;
    g.node = std::string(node);
    if (auto ok = fill_guest(e, g, "cpus"); !ok) {
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
  return parse_entries(body, [](const json& e) -> Result<std::optional<Guest>> {
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
    if (auto ok = fill_guest(e, g, "maxcpu"); !ok) {
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
