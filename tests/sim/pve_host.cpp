#include "tests/sim/pve_host.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "tests/sim/common/http_reason.hpp"
#include "tests/sim/common/percent.hpp"
#include "tests/sim/common/query.hpp"
#include "tests/sim/pve_access.hpp"
#include "tests/sim/pve_auth.hpp"
#include "tests/sim/pve_render.hpp"
#include "tests/sim/pve_tasks.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;

constexpr const char* kJsonType = "application/json;charset=UTF-8";
// The challenge of a user with one TOTP entry (proxmox-tfa's TfaChallenge).
constexpr const char* kTotpChallenge = R"({"totp":true})";

// The result of an API call before it is put on the wire.
struct ApiResult {
  int status = 200;
  json data;            // success
  std::string message;  // error, as raised (usually ending in "\n")
  json errors;          // parameter errors
  json attributes;      // result attributes beside `data` on success ({"total": n})
  bool empty_body = false;
  std::chrono::milliseconds delay{0};
};

ApiResult ok(json data) {
  ApiResult r;
  r.data = std::move(data);
  return r;
}

ApiResult fail(int status, std::string message) {
  ApiResult r;
  r.status = status;
  r.message = std::move(message);
  return r;
}

ApiResult fail_empty(int status, std::string reason) {
  ApiResult r = fail(status, std::move(reason));
  r.empty_body = true;
  return r;
}

ApiResult param_fail(json errors) {
  ApiResult r = fail(400, "Parameter verification failed.\n");
  r.errors = std::move(errors);
  return r;
}

// The reason phrase is the message's first line.
std::string reason_of(const std::string& message) {
  return message.substr(0, message.find('\n'));
}

WireResponse to_wire(const ApiResult& r, bool message_member) {
  WireResponse w;
  w.status = r.status;
  w.delay = r.delay;
  if (r.status == 200) {
    w.reason = "OK";
    json body = {{"data", r.data}};
    if (r.attributes.is_object()) {
      body.update(r.attributes);
    }
    w.body = body.dump();
    w.headers.emplace_back("Content-Type", kJsonType);
    return w;
  }
  w.reason = reason_of(r.message);
  if (w.reason.empty()) {
    w.reason = reason_phrase(r.status);
  }
  if (!r.empty_body) {
    json body = {{"data", nullptr}};
    if (!r.errors.is_null()) {
      body["errors"] = r.errors;
    }
    if (message_member) {
      body["message"] = r.message;
    }
    w.body = body.dump();
    w.headers.emplace_back("Content-Type", kJsonType);
  }
  return w;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    const auto j = path.find('/', i);
    const auto piece = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (!piece.empty()) {
      out.push_back(percent_decode(piece, false));
    }
    if (j == std::string::npos) {
      break;
    }
    i = j + 1;
  }
  return out;
}

// pveproxy reads parameters from the query string and a form body alike;
// the last of a repeated one wins.
void parse_form(const std::string& text, std::map<std::string, std::string>& into) {
  for (auto& [k, v] : parse_query(text)) {
    into[k] = std::move(v);
  }
}

std::optional<std::string> cookie_value(const std::string& header, const std::string& name) {
  for (const auto& part : split_list(header, ';')) {
    if (part.starts_with(name + "=")) {
      return percent_decode(part.substr(name.size() + 1), false);
    }
  }
  return std::nullopt;
}

// A deterministic scramble: lists are in no particular order on a real
// cluster, and a client must not depend on one.
template <typename T, typename Key>
void scramble(std::vector<T>& v, Key key) {
  std::sort(v.begin(), v.end(), [&](const T& a, const T& b) {
    return (static_cast<std::uint32_t>(key(a)) * 2654435761U) <
           (static_cast<std::uint32_t>(key(b)) * 2654435761U);
  });
}

std::string html_page() {
  std::string page =
      "<!DOCTYPE html>\n<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; "
      "charset=utf-8\" />\n<title>Proxmox Virtual Environment</title>\n"
      "<link rel=\"stylesheet\" type=\"text/css\" href=\"/pve2/ext6/theme-crisp/resources/"
      "theme-crisp-all.css\" />\n</head>\n<body>\n<noscript>Please enable JavaScript</noscript>\n"
      "<script type=\"text/javascript\">\nif (typeof(PVE) === 'undefined') PVE = {};\n"
      "PVE.UserName = '';\nPVE.CSRFPreventionToken = null;\n</script>\n";
  for (int i = 0; i < 20; ++i) {
    page += "<!-- padding line " + std::to_string(i) + " of the login page -->\n";
  }
  return page + "</body>\n</html>\n";
}

enum class RouteKind {
  root,
  version,
  cluster_index,
  cluster_status,
  cluster_resources,
  cluster_tasks,
  nodes,
  node_index,
  node_status,
  node_tasks,
  guest_list,
  guest_index,
  guest_config,
  guest_status_index,
  status_current,
  status_action,
  agent_interfaces,
  lxc_interfaces,
  access_index,
  access_permissions,
  ticket,
};

struct Route {
  RouteKind kind = RouteKind::root;
  std::string node;  // the {node} of a call that runs on that node ("" = anywhere)
  GuestType type = GuestType::qemu;
  std::string vmid;
  std::string action;
  std::set<std::string> params;  // allowed parameters
  bool any_params = false;
};

bool is_guest_type(const std::string& s) {
  return s == "qemu" || s == "lxc";
}

std::optional<Route> resolve(const std::string& method, const std::vector<std::string>& s) {
  Route r;
  const bool get = method == "GET";
  const auto n = s.size();
  if (n == 0) {
    if (!get) {
      return std::nullopt;
    }
    r.kind = RouteKind::root;
    return r;
  }
  if (n == 1 && s[0] == "version" && get) {
    r.kind = RouteKind::version;
    return r;
  }
  if (s[0] == "cluster" && get) {
    if (n == 1) {
      r.kind = RouteKind::cluster_index;
      return r;
    }
    if (n == 2 && s[1] == "status") {
      r.kind = RouteKind::cluster_status;
      return r;
    }
    if (n == 2 && s[1] == "tasks") {
      r.kind = RouteKind::cluster_tasks;  // no parameters (PVE/API2/Cluster.pm tasks)
      return r;
    }
    if (n == 2 && s[1] == "resources") {
      r.kind = RouteKind::cluster_resources;
      r.params = {"type"};
      return r;
    }
    return std::nullopt;
  }
  if (s[0] == "access") {
    if (n == 1 && get) {
      r.kind = RouteKind::access_index;
      return r;
    }
    if (n == 2 && s[1] == "permissions" && get) {
      r.kind = RouteKind::access_permissions;
      r.params = {"path", "userid"};
      return r;
    }
    if (n == 2 && s[1] == "ticket" && (get || method == "POST")) {
      r.kind = RouteKind::ticket;
      r.params = {"username", "password", "realm",      "otp",
                  "path",     "privs",    "new-format", "tfa-challenge"};
      return r;
    }
    return std::nullopt;
  }
  if (s[0] != "nodes") {
    return std::nullopt;
  }
  if (n == 1) {
    if (!get) {
      return std::nullopt;
    }
    r.kind = RouteKind::nodes;
    return r;
  }
  r.node = s[1];
  if (n == 2 && get) {
    r.kind = RouteKind::node_index;
    return r;
  }
  if (n == 3 && s[2] == "status" && get) {
    r.kind = RouteKind::node_status;
    return r;
  }
  if (n == 3 && s[2] == "tasks" && get) {
    r.kind = RouteKind::node_tasks;  // PVE/API2/Tasks.pm node_tasks
    r.params = {"start",  "limit",  "userfilter", "typefilter", "vmid",
                "errors", "source", "since",      "until",      "statusfilter"};
    return r;
  }
  if (n < 3 || !is_guest_type(s[2])) {
    return std::nullopt;
  }
  r.type = *parse_guest_type(s[2]);
  if (n == 3 && get) {
    r.kind = RouteKind::guest_list;
    if (r.type == GuestType::qemu) {
      r.params = {"full"};
    }
    return r;
  }
  r.vmid = s[3];
  if (n == 4 && get) {
    r.kind = RouteKind::guest_index;
    return r;
  }
  if (n == 5 && s[4] == "config" && get) {
    r.kind = RouteKind::guest_config;
    r.params = {"current", "snapshot"};
    return r;
  }
  if (n >= 5 && s[4] == "status") {
    if (n == 5 && get) {
      r.kind = RouteKind::guest_status_index;
      return r;
    }
    if (n == 6 && s[5] == "current" && get) {
      r.kind = RouteKind::status_current;
      return r;
    }
    static const std::set<std::string> kActions = {"start",   "stop",   "shutdown",
                                                   "suspend", "resume", "reboot"};
    if (n == 6 && kActions.count(s[5]) != 0 && method == "POST") {
      r.kind = RouteKind::status_action;
      r.action = s[5];
      r.any_params = true;
      return r;
    }
    return std::nullopt;
  }
  if (r.type == GuestType::qemu && n == 6 && s[4] == "agent" && s[5] == "network-get-interfaces" &&
      get) {
    r.kind = RouteKind::agent_interfaces;
    return r;
  }
  if (r.type == GuestType::lxc && n == 5 && s[4] == "interfaces" && get) {
    r.kind = RouteKind::lxc_interfaces;
    return r;
  }
  return std::nullopt;
}

json subdirs(std::initializer_list<const char*> names, const char* key = "subdir") {
  json out = json::array();
  for (const auto* n : names) {
    out.push_back({{key, n}});
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : separator) + p;
  }
  return out;
}

// GET /access/permissions: a user or token may read its own permissions and
// those of its tokens; anyone else's need Sys.Audit on /access.
ApiResult access_permissions(const PveCluster& cluster, const Principal& who,
                             const std::map<std::string, std::string>& params,
                             const PveVersion& v) {
  const auto userid_param = params.find("userid");
  const auto userid = userid_param == params.end() ? who.authid : userid_param->second;
  std::optional<std::string> path;
  if (const auto it = params.find("path"); it != params.end()) {
    if (!it->second.starts_with("/") ||
        it->second.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789.-_/") != std::string::npos) {
      return param_fail({{"path", "invalid ACL path '" + it->second + "'"}});
    }
    path = it->second;
  }
  const bool self = userid == who.authid;
  if (!self && !userid.starts_with(who.authid + "!") && !who.has("Sys.Audit", "/access", v)) {
    return fail(403, "Permission check failed (/access, Sys.Audit)\n");
  }
  return ok(permissions_data(cluster, self ? who : principal_of(cluster, userid), path, v));
}

bool is_lie(FaultKind k) {
  return k == FaultKind::empty_list || k == FaultKind::drop_entries;
}

// GET /nodes/{node}/qemu, /nodes/{node}/lxc or /cluster/resources: the
// requests a lie can meet.
bool is_guest_list(const WireRequest& req) {
  if (req.method != "GET" || !req.path.starts_with("/api2/json/")) {
    return false;
  }
  const auto s = split_path(req.path.substr(10));
  return (s.size() == 3 && s[0] == "nodes" && is_guest_type(s[2])) ||
         (s.size() == 2 && s[0] == "cluster" && s[1] == "resources");
}

// The guests a list tells when `lie` is an empty_list or drop_entries fault.
void tell(const Fault* lie, std::vector<Guest>& listed) {
  if (lie == nullptr || !is_lie(lie->kind)) {
    return;
  }
  if (lie->kind == FaultKind::empty_list) {
    listed.clear();
    return;
  }
  std::set<int> left_out = lie->drop_vmids;
  if (left_out.empty()) {
    std::vector<int> vmids;
    for (const auto& g : listed) {
      vmids.push_back(g.vmid);
    }
    std::sort(vmids.begin(), vmids.end());
    vmids.resize(std::min(vmids.size(), lie->drop));
    left_out.insert(vmids.begin(), vmids.end());
  }
  std::erase_if(listed, [&](const Guest& g) { return left_out.contains(g.vmid); });
}

// The permission check pveproxy makes before it runs or proxies a call
// (pve-manager PVE/HTTPServer.pm rest_handler, check_api2_permissions), for
// the calls whose check names a path; on the receiving node.
std::optional<ApiResult> permission_denied(const Route& r, const Principal& who,
                                           const PveVersion& v) {
  const auto need = [&](const std::string& path,
                        const std::vector<std::string>& any) -> std::optional<ApiResult> {
    if (std::any_of(any.begin(), any.end(),
                    [&](const std::string& p) { return who.has(p, path, v); })) {
      return std::nullopt;
    }
    return fail(403, "Permission check failed (" + path + ", " + join(any, "|") + ")\n");
  };
  const auto vms = "/vms/" + r.vmid;
  switch (r.kind) {
    case RouteKind::guest_index:
    case RouteKind::guest_status_index:
    case RouteKind::guest_config:
    case RouteKind::status_current:
    case RouteKind::lxc_interfaces:
      return need(vms, {"VM.Audit"});
    case RouteKind::agent_interfaces:
      return need(vms, guest_agent_audit_privileges(v));
    case RouteKind::status_action:
      return need(vms, {"VM.PowerMgmt"});
    case RouteKind::node_status:
      return need("/nodes/" + r.node, {"Sys.Audit"});
    case RouteKind::cluster_status:
      return need("/", {"Sys.Audit"});
    default:
      return std::nullopt;
  }
}

// POST .../status/{action} on a guest: the change and the task it leaves
// (pve_cluster.hpp), answered with the task's UPID. The checks made before
// the worker is forked: qemu-server src/PVE/API2/Qemu.pm vm_reboot,
// vm_suspend, vm_resume; pve-container src/PVE/API2/LXC/Status.pm.
ApiResult power_action(PveCluster& cluster, const Guest& g, const std::string& action,
                       const std::string& user) {
  const bool qemu = g.type == GuestType::qemu;
  const auto vmid = g.vmid;
  const auto not_running = "VM " + std::to_string(vmid) + " not running\n";
  std::string type = (qemu ? "qm" : "vz") + action;
  if (action == "start") {
    cluster.start(vmid, user);
  } else if (action == "stop") {
    cluster.stop(vmid, user);
  } else if (action == "shutdown") {
    cluster.shutdown(vmid, user);
  } else if (action == "suspend") {
    type = qemu ? "qmpause" : "vzsuspend";
    if (!cluster.pause(vmid, user)) {
      return fail(500, not_running);
    }
  } else if (action == "resume") {
    if (g.status == GuestStatus::stopped) {
      return fail(500, not_running);
    }
    if (g.status == GuestStatus::running) {
      // Resuming a running VM is a task that changes nothing.
      return ok(cluster.add_task({.node = g.node,
                                  .type = type,
                                  .id = std::to_string(vmid),
                                  .user = user,
                                  .endtime = cluster.now(),
                                  .status = "OK"}));
    }
    cluster.resume(vmid, user);
  } else if (action == "reboot") {
    if (g.status == GuestStatus::paused && qemu) {
      return fail(500, "VM is paused - cannot shutdown\n");
    }
    if (!cluster.reboot(vmid, user)) {
      return fail(500, not_running);
    }
  }
  for (const auto& t : cluster.archived_tasks(g.node)) {
    if (t.type == type && t.id == std::to_string(vmid) && t.user == user) {
      return ok(upid_of(t));
    }
  }
  return fail(500, "task of " + type + " not found\n");
}

}  // namespace

std::string to_string(FaultKind k) {
  switch (k) {
    case FaultKind::down:
      return "down";
    case FaultKind::hang:
      return "hang";
    case FaultKind::slow:
      return "slow";
    case FaultKind::reset:
      return "reset";
    case FaultKind::truncated:
      return "truncated";
    case FaultKind::non_json:
      return "non_json";
    case FaultKind::oversized:
      return "oversized";
    case FaultKind::status:
      return "status";
    case FaultKind::flap:
      return "flap";
    case FaultKind::empty_list:
      return "empty_list";
    case FaultKind::drop_entries:
      break;
  }
  return "drop_entries";
}

std::optional<FaultKind> parse_fault_kind(const std::string& s) {
  for (const auto k :
       {FaultKind::down, FaultKind::hang, FaultKind::slow, FaultKind::reset, FaultKind::truncated,
        FaultKind::non_json, FaultKind::oversized, FaultKind::status, FaultKind::flap,
        FaultKind::empty_list, FaultKind::drop_entries}) {
    if (to_string(k) == s) {
      return k;
    }
  }
  return std::nullopt;
}

struct PveHost::Identity {
  std::string userid;  // for a token: "user@realm!name"
  Principal principal;
  // Of the node that runs the call: which privileges exist and what the
  // built-in roles hold.
  PveVersion version;
  bool has(const std::string& privilege, const std::string& path) const {
    return principal.has(privilege, path, version);
  }
};

PveHost::PveHost(PveCluster& cluster, std::string node, PveHostOptions options)
    : cluster_(cluster),
      node_(std::move(node)),
      options_(std::move(options)),
      server_(WireServerOptions{.name = "pveproxy " + node_,
                                .bind_address = options_.bind_address,
                                .port = options_.port,
                                .also_ipv6_loopback = options_.also_ipv6_loopback,
                                .cert_pem_path = options_.cert_pem_path,
                                .key_pem_path = options_.key_pem_path},
              [this](const WireRequest& req) { return handle(req); }) {
  if (!cluster_.node(node_)) {
    throw std::invalid_argument("no such node in the cluster: " + node_);
  }
}

PveHost::~PveHost() {
  stop();
}

void PveHost::start() {
  server_.start();
  if (!options_.fingerprint.empty()) {
    cluster_.set_node_fingerprint(node_, options_.fingerprint);
  }
  cluster_.attach_host(node_, this);
  if (down()) {
    server_.set_accepting(false);
  }
}

void PveHost::stop() {
  cluster_.detach_host(node_, this);
  fault_.end_hangs();
  server_.stop();
}

std::string PveHost::url() const {
  return server_.url();
}

void PveHost::set_fault(const Fault& fault) {
  auto f = fault;
  f.every = std::max<std::size_t>(f.every, 1);
  fault_.set(f);
}

void PveHost::clear_fault() {
  fault_.clear();
}

std::optional<Fault> PveHost::fault() const {
  return fault_.get();
}

bool PveHost::down() const {
  return fault_.down();
}

std::map<std::string, std::size_t> PveHost::counts() const {
  return log_.tally().counts();
}

std::size_t PveHost::count(const std::string& method_and_path) const {
  return log_.tally().count(method_and_path);
}

std::size_t PveHost::total_requests() const {
  return log_.tally().total();
}

std::vector<RecordedRequest> PveHost::requests() const {
  return log_.entries();
}

void PveHost::reset_counts() {
  log_.clear();
}

void PveHost::record(RecordedRequest r) {
  auto key = r.method + " " + r.path;
  log_.record(std::move(r), {std::move(key)});
}

void PveHost::record_proxied(const std::string& method, const std::string& path,
                             const std::string& query, const std::string& from, int status) {
  record({method, path, query, status, from});
}

WireResponse PveHost::handle(const WireRequest& req) {
  const auto hit = fault_.take([&](const Fault& f) {
    const auto& prefix = f.path_prefix;
    const bool path_matches =
        prefix.empty() || req.path.starts_with(prefix) ||
        (!prefix.starts_with("/api2/") && req.path.starts_with("/api2/json" + prefix));
    return path_matches && (!is_lie(f.kind) || is_guest_list(req));
  });
  if (!hit) {
    return answered(req, answer(req));
  }
  auto action = hit->fault.kind;
  if (action == FaultKind::flap) {
    // `every` requests answered, then `every` failed, and so on.
    if ((hit->index / hit->fault.every) % 2 == 0) {
      return answered(req, answer(req));
    }
    action = FaultKind::status;
  }
  return answered(req, fault_response(hit->fault, action, req, hit->epoch));
}

WireResponse PveHost::answered(const WireRequest& req, WireResponse res) {
  record({req.method, req.path, req.query, res.fault == WireFault::hang ? 0 : res.status, ""});
  return res;
}

WireResponse PveHost::fault_response(const Fault& f, FaultKind action, const WireRequest& req,
                                     std::uint64_t epoch) {
  WireResponse res;
  switch (action) {
    case FaultKind::hang:
      return fault_.hang(epoch);
    case FaultKind::slow:
      res = answer(req);
      res.delay += f.delay;
      return res;
    case FaultKind::reset:
    case FaultKind::truncated:
      res = answer(req);
      res.compressible = false;
      res.fault = action == FaultKind::reset ? WireFault::reset : WireFault::truncate;
      res.cut_after = res.body.size() / 2;
      return res;
    case FaultKind::non_json:
      res.status = 200;
      res.reason = "OK";
      res.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
      res.body = html_page();
      return res;
    case FaultKind::oversized: {
      const std::string head = "{\"data\":[";
      const std::string tail = "]}";
      const std::string entry_head =
          "{\"cpu\":0.0123,\"cpus\":2,\"disk\":0,\"diskread\":0,\"diskwrite\":0,"
          "\"maxdisk\":34359738368,\"maxmem\":4294967296,\"mem\":1073741824,"
          "\"name\":\"padding-guest\",\"netin\":0,\"netout\":0,\"status\":\"running\","
          "\"uptime\":1234,\"vmid\":";
      const std::size_t entry_len = entry_head.size() + 9 + 1;  // 9-digit vmid and '}'
      const std::size_t total = std::max(f.oversized_bytes, head.size() + tail.size() + entry_len);
      const std::size_t room = total - head.size() - tail.size();
      const std::size_t entries = (room + 1) / (entry_len + 1);
      const std::size_t used = entries * entry_len + (entries - 1);
      res.status = 200;
      res.headers.emplace_back("Content-Type", kJsonType);
      res.stream_length = total;
      res.stream = [=](const std::function<bool(std::string_view)>& write) {
        if (!write(head)) {
          return;
        }
        std::string piece;
        for (std::size_t i = 0; i < entries; ++i) {
          if (i > 0) {
            piece += ',';
          }
          piece += entry_head + std::to_string(100000000 + i) + "}";
          if (piece.size() > 65536) {
            if (!write(piece)) {
              return;
            }
            piece.clear();
          }
        }
        piece += std::string(room - used, ' ');
        piece += tail;
        write(piece);
      };
      return res;
    }
    case FaultKind::empty_list:
    case FaultKind::drop_entries:
      return answer(req, &f);
    case FaultKind::status:
    case FaultKind::flap:
    case FaultKind::down:
      break;
  }
  const auto reason = f.reason.empty() ? reason_phrase(f.status) : f.reason;
  ApiResult r = fail(f.status, reason + "\n");
  r.empty_body = f.status == 595 || f.status == 596;
  const auto version = cluster_.node(node_)->version;
  return to_wire(r, PveVersion::parse(version).at_least(8, 4));
}

WireResponse PveHost::answer(const WireRequest& req, const Fault* lie) {
  const auto self = cluster_.node(node_);
  const auto version = PveVersion::parse(self ? self->version : "8.4.14");
  const bool message_member = version.at_least(8, 4);
  const bool unified_auth = version.at_least(9, 1, 5);
  const auto& m = req.method;

  if (m != "GET" && m != "POST" && m != "PUT" && m != "DELETE") {
    return to_wire(fail_empty(501, "method '" + m + "' not available"), false);
  }
  if (req.path == "/") {
    WireResponse w;
    w.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
    w.body = html_page();
    return w;
  }
  if (req.path != "/api2/json" && !req.path.starts_with("/api2/json/")) {
    return to_wire(fail_empty(404, "Not Found"), false);
  }
  const std::string rel = req.path.size() > 10 ? req.path.substr(10) : "/";
  const auto segments = split_path(rel);

  std::map<std::string, std::string> params;
  parse_form(req.query, params);
  if (m != "GET" && !req.body.empty()) {
    if (req.header("content-type").starts_with("application/json")) {
      const auto body = json::parse(req.body, nullptr, false);
      if (body.is_object()) {
        for (const auto& [k, v] : body.items()) {
          params[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
      }
    } else {
      parse_form(req.body, params);
    }
  }
  params.erase("_dc");  // the GUI's cache buster

  const auto key = cluster_.ticket_key();
  const auto now = cluster_.now();
  const auto auth_failed = [&](int status, const std::string& reason) {
    ApiResult r = fail_empty(status, reason);
    r.delay = cluster_.auth_failure_delay();
    return to_wire(r, false);
  };

  // --- authentication (pveproxy's auth_handler) ---
  Identity who;
  const bool open_call = (rel == "/access/ticket" && (m == "GET" || m == "POST")) ||
                         (rel == "/access/domains" && m == "GET");
  if (!open_call) {
    const auto authorization = req.header("authorization");
    const auto cookie = cookie_value(req.header("cookie"), "PVEAuthCookie");
    if (authorization.starts_with("PVEAPIToken=")) {
      const auto value = authorization.substr(12);
      const auto eq = value.rfind('=');
      if (eq == std::string::npos) {
        return auth_failed(401, unified_auth ? "Authentication failed!" : "no tokenid specified");
      }
      const auto tokenid = value.substr(0, eq);
      const auto secret = value.substr(eq + 1);
      const auto bang = tokenid.find('!');
      if (bang == std::string::npos || tokenid.find('@') > bang) {
        return auth_failed(401, unified_auth ? "Authentication failed!"
                                             : "'" + tokenid + "' is not an API token ID");
      }
      const auto user = tokenid.substr(0, bang);
      const auto name = tokenid.substr(bang + 1);
      const auto token = cluster_.token(tokenid);
      std::string error;
      if (!token) {
        error = "no such token '" + name + "' for user '" + user + "'";
      } else if (!token->user_enabled) {
        error = "user '" + user + "' is disabled";
      } else if (token->expired) {
        error = "token '" + name + "' access expired";
      } else if (!constant_time_equals(secret, token->secret)) {
        error = "invalid token value!";
      }
      if (!error.empty()) {
        return auth_failed(401, unified_auth ? "Authentication failed!" : error);
      }
      who.userid = tokenid;
      who.principal = principal_of(cluster_, tokenid);
    } else if (cookie && !cookie->empty()) {
      const auto userid = verify_ticket(key, *cookie, now);
      const auto user = userid ? cluster_.user(*userid) : std::nullopt;
      if (!userid) {
        return auth_failed(401, unified_auth ? "Authentication failed!"
                                             : "permission denied - invalid PVE ticket");
      }
      if (!user || !user->enabled) {
        return auth_failed(
            401, unified_auth ? "Authentication failed!" : "user '" + *userid + "' is disabled");
      }
      if (m != "GET" && !verify_csrf_token(key, *userid, req.header("csrfpreventiontoken"), now)) {
        return auth_failed(401, "Permission denied - invalid csrf token");
      }
      who.userid = *userid;
      who.principal = principal_of(cluster_, *userid);
    } else {
      return auth_failed(401, "No ticket");
    }
  }

  // --- the handler ---
  const auto route = resolve(m, segments);
  if (!route) {
    std::string shown = rel;
    if (shown.size() > 1 && shown.back() == '/') {
      shown.pop_back();
    }
    ApiResult r = fail(501, "Method '" + m + " " + shown + "' not implemented");
    return to_wire(r, message_member);
  }

  // --- the call's permission check, here, before any proxying ---
  who.version = version;
  if (const auto denial = permission_denied(*route, who.principal, version)) {
    return to_wire(*denial, message_member);
  }

  // --- proxying to the node the call runs on ---
  std::string target = node_;
  PveHost* target_host = this;
  if (!route->node.empty() && route->node != node_ && route->node != "localhost") {
    const auto n = cluster_.node(route->node);
    if (!n) {
      return to_wire(fail(500, "hostname lookup '" + route->node +
                                   "' failed - failed to get address info for: " + route->node +
                                   ": Name or service not known\n"),
                     message_member);
    }
    if (!n->online) {
      return to_wire(fail_empty(595, "No route to host"), false);
    }
    target_host = cluster_.host(route->node);
    if (target_host == nullptr || target_host->down()) {
      return to_wire(fail_empty(595, "Connection refused"), false);
    }
    target = route->node;
  }
  const auto target_node = cluster_.node(target);
  const auto typing = Typing::for_version(target_node ? target_node->version : "8.4.14");
  who.version = PveVersion::parse(target_node ? target_node->version : "8.4.14");

  const auto run = [&]() -> ApiResult {
    // Parameter verification.
    json errors = json::object();
    if (!route->any_params) {
      for (const auto& [k, v] : params) {
        if (route->params.count(k) == 0) {
          errors[k] =
              "property is not defined in schema and the schema does not allow "
              "additional properties";
        }
      }
    }
    for (const auto* flag : {"full", "current"}) {
      const auto it = params.find(flag);
      if (it != params.end() && route->params.count(flag) != 0 && !parse_bool(it->second)) {
        errors[flag] = "type check ('boolean') failed - got '" + it->second + "'";
      }
    }
    if (route->kind == RouteKind::cluster_resources) {
      const auto it = params.find("type");
      static const std::set<std::string> kTypes = {"vm", "storage", "node", "sdn"};
      if (it != params.end() && kTypes.count(it->second) == 0) {
        errors["type"] = "value '" + it->second +
                         "' does not have a value in the enumeration 'vm, storage, node, sdn'";
      }
    }
    int vmid = 0;
    if (!route->vmid.empty()) {
      const auto v = parse_int(route->vmid);
      if (!v) {
        errors["vmid"] = "type check ('integer') failed - got '" + route->vmid + "'";
      } else if (*v < 100) {
        errors["vmid"] = "value must have a minimum value of 100";
      } else if (*v > 999999999) {
        errors["vmid"] = "value must have a maximum value of 999999999";
      } else {
        vmid = static_cast<int>(*v);
      }
    }
    if (route->kind == RouteKind::node_tasks) {
      errors.update(node_task_param_errors(params));
    }
    if (route->kind == RouteKind::ticket && m == "POST") {
      for (const auto* required : {"username", "password"}) {
        if (params.count(required) == 0) {
          errors[required] = "property is missing and it is not optional";
        }
      }
    }
    if (!errors.empty()) {
      return param_fail(errors);
    }

    const auto nodes = cluster_.nodes();
    // Copied only by the calls that list guests: a copy per request would make
    // each detail call cost O(guests) and a big node's first sync O(guests²).
    std::optional<std::vector<Guest>> all_guests;
    const auto guests = [&]() -> const std::vector<Guest>& {
      if (!all_guests) {
        all_guests = cluster_.guests();
      }
      return *all_guests;
    };
    const auto type_name = to_string(route->type);
    const auto vms_path = "/vms/" + std::to_string(vmid);
    const auto denied = [](const std::string& path, const std::string& priv) {
      return fail(403, "Permission check failed (" + path + ", " + priv + ")\n");
    };
    // The guest a call under /nodes/{node}/{type}/{vmid} is about, on the target node.
    const auto find_guest = [&]() -> std::optional<Guest> {
      auto g = cluster_.guest(vmid);
      if (g && g->node == target && g->type == route->type) {
        return g;
      }
      return std::nullopt;
    };
    const auto no_config = [&] {
      const auto dir = route->type == GuestType::qemu ? "qemu-server" : "lxc";
      return fail(500, "Configuration file 'nodes/" + target + "/" + dir + "/" +
                           std::to_string(vmid) + ".conf' does not exist\n");
    };

    switch (route->kind) {
      case RouteKind::root:
        return ok(subdirs({"version", "cluster", "nodes", "storage", "access", "pools"}));
      case RouteKind::version:
        return ok(version_data(target_node->version));
      case RouteKind::cluster_index:
        return ok(subdirs({"log", "options", "resources", "status", "tasks", "nextid"}, "name"));
      case RouteKind::access_index:
        return ok(subdirs({"users", "groups", "roles", "acl", "domains", "ticket", "password"}));
      case RouteKind::access_permissions:
        return access_permissions(cluster_, who.principal, params, who.version);
      case RouteKind::cluster_status:
        if (!who.has("Sys.Audit", "/")) {
          return denied("/", "Sys.Audit");
        }
        return ok(cluster_status_data(cluster_.name(), nodes, node_));
      case RouteKind::cluster_resources: {
        const auto it = params.find("type");
        const std::string type = it == params.end() ? "" : it->second;
        json out = json::array();
        if (type.empty() || type == "vm") {
          std::vector<Guest> listed;
          for (const auto& g : guests()) {
            if (who.has("VM.Audit", "/vms/" + std::to_string(g.vmid))) {
              listed.push_back(g);
            }
          }
          tell(lie, listed);
          scramble(listed, [](const Guest& g) { return g.vmid; });
          for (auto& g : listed) {
            const auto n = std::find_if(nodes.begin(), nodes.end(),
                                        [&](const Node& x) { return x.name == g.node; });
            const bool unknown =
                n != nodes.end() && !n->online && now - n->offline_since > kUnknownAfter;
            // The pool shows only to who may audit it (PVE/API2/Cluster.pm resources).
            if (!g.pool.empty() && !who.has("Pool.Audit", "/pool/" + g.pool)) {
              g.pool.clear();
            }
            out.push_back(vm_resource(g, now, unknown));
          }
        }
        for (const auto& n : nodes) {
          if (type.empty() || type == "node") {
            out.push_back(
                node_resource(n, guests(), now, who.has("Sys.Audit", "/nodes/" + n.name)));
          }
        }
        for (const auto& n : nodes) {
          if (type.empty() || type == "storage") {
            for (auto& s : storage_resources(n)) {
              if (who.has("Datastore.Audit", "/storage/" + s.value("storage", ""))) {
                out.push_back(std::move(s));
              }
            }
          }
          if ((type.empty() || type == "sdn") && who.has("SDN.Audit", "/sdn/zones/localnetwork")) {
            out.push_back(sdn_resource(n));
          }
        }
        return ok(out);
      }
      case RouteKind::cluster_tasks:
        return ok(cluster_tasks_data(cluster_.task_broadcasts(),
                                     {who.userid, who.has("Sys.Audit", "/")}));
      case RouteKind::node_tasks: {
        const auto list = node_tasks_data(cluster_.active_tasks(target),
                                          cluster_.archived_tasks(target), node_task_query(params),
                                          {who.userid, who.has("Sys.Audit", "/nodes/" + target)});
        ApiResult r = ok(list.data);
        r.attributes = {{"total", list.total}};
        return r;
      }
      case RouteKind::nodes:
        return ok(nodes_data(nodes, guests(), now));
      case RouteKind::node_index:
        return ok(
            subdirs({"qemu", "lxc", "status", "version", "tasks", "network", "storage"}, "name"));
      case RouteKind::node_status:
        if (!who.has("Sys.Audit", "/nodes/" + target)) {
          return denied("/nodes/" + target, "Sys.Audit");
        }
        return ok(node_status_data(*target_node, guests(), now));
      case RouteKind::guest_list: {
        json out = json::array();
        std::vector<Guest> listed;
        for (const auto& g : guests()) {
          if (g.node == target && g.type == route->type &&
              who.has("VM.Audit", "/vms/" + std::to_string(g.vmid))) {
            listed.push_back(g);
          }
        }
        tell(lie, listed);
        scramble(listed, [](const Guest& g) { return g.vmid; });
        for (const auto& g : listed) {
          out.push_back(route->type == GuestType::qemu ? qemu_list_entry(g, now, typing)
                                                       : lxc_list_entry(g, now, typing));
        }
        return ok(out);
      }
      case RouteKind::guest_index:
        if (!who.has("VM.Audit", vms_path)) {
          return denied(vms_path, "VM.Audit");
        }
        if (!find_guest()) {
          return no_config();
        }
        return ok(route->type == GuestType::qemu
                      ? subdirs({"config", "status", "agent", "rrd", "snapshot"})
                      : subdirs({"config", "status", "interfaces", "rrd", "snapshot"}));
      case RouteKind::guest_status_index:
        if (!who.has("VM.Audit", vms_path)) {
          return denied(vms_path, "VM.Audit");
        }
        if (!find_guest()) {
          return no_config();
        }
        return ok(subdirs({"current", "start", "stop", "shutdown", "suspend", "resume"}));
      case RouteKind::guest_config: {
        if (!who.has("VM.Audit", vms_path)) {
          return denied(vms_path, "VM.Audit");
        }
        const auto g = find_guest();
        if (!g) {
          return no_config();
        }
        return ok(guest_config(*g, typing));
      }
      case RouteKind::status_current: {
        if (!who.has("VM.Audit", vms_path)) {
          return denied(vms_path, "VM.Audit");
        }
        const auto g = find_guest();
        if (!g) {
          return no_config();
        }
        return ok(status_current(*g, now, typing));
      }
      case RouteKind::agent_interfaces: {
        // PVE 8: VM.Monitor (which also allows guest-exec); PVE 9: any of
        // the privileges of read-only guest agent commands.
        const auto privileges = guest_agent_audit_privileges(who.version);
        if (std::none_of(privileges.begin(), privileges.end(),
                         [&](const std::string& p) { return who.has(p, vms_path); })) {
          return denied(vms_path, join(privileges, "|"));
        }
        const auto g = find_guest();
        if (!g) {
          return no_config();
        }
        if (g->status == GuestStatus::stopped) {
          return fail(500, "VM " + std::to_string(vmid) + " not running\n");
        }
        if (!g->agent_configured) {
          return fail(500, "No QEMU guest agent configured\n");
        }
        if (!g->agent_running || g->status == GuestStatus::paused) {
          return fail(500, "QEMU guest agent is not running\n");
        }
        return ok(agent_network_interfaces(*g));
      }
      case RouteKind::lxc_interfaces: {
        if (!who.has("VM.Audit", vms_path)) {
          return denied(vms_path, "VM.Audit");
        }
        const auto g = find_guest();
        if (!g) {
          return no_config();
        }
        if (g->status == GuestStatus::stopped) {
          return ok(nullptr);
        }
        return ok(lxc_interfaces(*g, typing));
      }
      case RouteKind::status_action: {
        if (!who.has("VM.PowerMgmt", vms_path)) {
          return denied(vms_path, "VM.PowerMgmt");
        }
        const auto g = find_guest();
        if (!g) {
          return no_config();
        }
        if (route->action == "start") {
          if (g->template_) {
            return fail(500, "you can't start a vm if it's a template\n");
          }
          if (g->status != GuestStatus::stopped) {
            return fail(500, "VM " + std::to_string(vmid) + " already running\n");
          }
        }
        return power_action(cluster_, *g, route->action, who.userid);
      }
      case RouteKind::ticket: {
        if (m == "GET") {
          return ok(nullptr);  // the login form's dummy call
        }
        std::string userid = params["username"];
        const auto realm = params.find("realm");
        if (userid.find('@') == std::string::npos && realm != params.end()) {
          userid += "@" + realm->second;
        }
        const auto& password = params["password"];
        const auto user = cluster_.user(userid);
        // Every failure reads the same (pve-access-control
        // src/PVE/API2/AccessControl.pm create_ticket).
        const auto refused = [&] {
          ApiResult r = fail(401, "authentication failure\n");
          r.delay = cluster_.auth_failure_delay();
          return r;
        };
        const auto totp_answer = [&](const std::string& response) {
          return user && user->totp && constant_time_equals(response, "totp:" + *user->totp);
        };
        const auto challenge = params.find("tfa-challenge");
        const auto otp = params.find("otp");
        if (challenge != params.end()) {
          // The second step (create_ticket_do): the partial ticket, and the
          // answer to its challenge as the password.
          if (otp != params.end() || !user || !user->enabled ||
              !verify_tfa_ticket(key, challenge->second, userid, now) || !totp_answer(password)) {
            return refused();
          }
        } else if (password.starts_with("PVE:")) {
          // Renewal: a still valid full ticket of the same user is a password.
          const auto ticket_user = verify_ticket(key, password, now);
          if (!ticket_user || *ticket_user != userid) {
            return refused();
          }
        } else {
          // A user without a password (one that only owns tokens) cannot log in.
          if (!user || !user->enabled || user->password.empty() ||
              !constant_time_equals(password, user->password)) {
            return refused();
          }
          if (user->totp && otp != params.end() && !totp_answer(otp->second)) {
            return refused();
          }
          if (user->totp && otp == params.end()) {
            // The first factor passed: a partial ticket, good for nothing
            // but the second step (AccessControl.pm authenticate_2nd_new).
            json partial = {{"username", userid},
                            {"ticket", make_tfa_ticket(key, userid, kTotpChallenge, now)},
                            {"CSRFPreventionToken", make_csrf_token(key, userid, now)},
                            {"NeedTFA", 1}};
            if (nodes.size() > 1 &&
                principal_of(cluster_, userid).has("Sys.Audit", "/", who.version)) {
              partial["clustername"] = cluster_.name();
            }
            return ok(partial);
          }
        }
        return ok(ticket_data(
            userid, make_ticket(key, userid, now), make_csrf_token(key, userid, now),
            cluster_.name(),
            nodes.size() > 1 && principal_of(cluster_, userid).has("Sys.Audit", "/", who.version)));
      }
    }
    return fail(501, "Method '" + m + " " + rel + "' not implemented");
  };

  const ApiResult result = run();
  if (target_host != this) {
    target_host->record_proxied(m, req.path, req.query, node_, result.status);
  }
  return to_wire(result, message_member);
}

}  // namespace pha::sim
