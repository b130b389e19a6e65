#include "agent/proxmox/client.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include "agent/core/text.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

constexpr auto kTicketRenewAfter = std::chrono::hours(1);  // tickets live 2 h
constexpr std::string_view kApiPrefix = "/api2/json";

std::string type_path(GuestType t) {
  return std::string(to_string(t));
}

// The privileges that let the guest agent's address call through (PVE 9, PVE 8).
bool is_guest_agent_privilege(const std::string& p) {
  return p == "VM.GuestAgent.Audit" || p == "VM.Monitor";
}

void log_missing(const MissingPrivilege& m, const std::string& who, const std::string& version) {
  log::Fields fields = {{"privilege", m.privilege}, {"path", m.path},
                        {"effect", m.effect},       {"fix", m.fix},
                        {"version", version},       {"user", who}};
  if (!m.note.empty()) {
    fields.push_back({"note", m.note});
  }
  const auto message = who + " lacks " + m.privilege + " on " + m.path + ": " + m.effect;
  // Going without VM.Monitor is what the README advises on PVE 8: no warning.
  if (m.advised) {
    log::warn("proxmox_privilege_missing", message, fields);
  } else {
    log::info("proxmox_privilege_missing", message, fields);
  }
}

}  // namespace

ProxmoxClient::ProxmoxClient(ProxmoxClientOptions options, Transport transport, Clock& clock)
    : options_(std::move(options)), transport_(std::move(transport)), clock_(clock) {}

std::string ProxmoxClient::url(const std::string& path, const std::string& host) const {
  return (host.empty() ? options_.host.str() : host) + std::string(kApiPrefix) + path;
}

void ProxmoxClient::set_failover(ProxmoxFailover failover) {
  std::lock_guard lock(ticket_mutex_);
  failover_ = std::move(failover);
}

void ProxmoxClient::set_credentials(ProxmoxCredentials credentials) {
  std::lock_guard lock(ticket_mutex_);
  auto& c = options_.credentials;
  if (c.token_id == credentials.token_id && c.token_secret == credentials.token_secret &&
      c.user == credentials.user && c.password == credentials.password) {
    return;
  }
  c = std::move(credentials);
  ticket_.reset();
  log::info("proxmox_credentials_changed", "the Proxmox credentials were reloaded",
            {{"auth", c.uses_token() ? "token" : "ticket"}});
  std::lock_guard check(permissions_mutex_);
  permissions_due_ = CheckDue::now;  // other credentials, other privileges
  unknown_logged_ = false;
}

PermissionNeeds ProxmoxClient::permission_needs() const {
  const auto c = credentials();
  return {.vm_details = options_.vm_details,
          .sync_qemu = options_.sync_qemu,
          .node_name_auto = options_.node_name.empty(),
          .discover_hosts = options_.discover_hosts,
          .token_id = c.token_id,
          .user = c.user};
}

ProxmoxClient::PermissionsRead ProxmoxClient::read_permissions() {
  PermissionsRead out;
  // Cluster-wide answers: the host in use; one attempt each, outside the
  // retry budget (a failure here is never worth a retry). The body, or the
  // error in `out`.
  const auto ask = [&](const std::string& path) -> std::optional<std::string> {
    auto r = call("GET", path, "", {.retry = false, .any_target = true});
    out.reached = r.status != 0;
    if (!r.ok()) {
      out.granted = Error{r.message};
      return std::nullopt;
    }
    return std::move(r.body);
  };
  const auto version_body = ask("/version");
  if (!version_body) {
    return out;
  }
  auto version = parse_version(*version_body);
  if (!version) {
    out.granted = Error{"GET /version: the answer is not understood: " + version.error()};
    return out;
  }
  out.version = *version;
  const auto body = ask("/access/permissions");
  if (!body) {
    return out;
  }
  auto granted = parse_permissions(*body);
  out.granted =
      granted ? std::move(granted)
              : Error{"GET /access/permissions: the answer is not understood: " + granted.error()};
  return out;
}

void ProxmoxClient::check_permissions() {
  {
    std::lock_guard lock(permissions_mutex_);
    if (permissions_due_ != CheckDue::now) {
      return;
    }
    permissions_due_ = CheckDue::no;
  }
  record_permissions(read_permissions());
}

void ProxmoxClient::record_permissions(const PermissionsRead& read) {
  const auto needs = permission_needs();
  const auto who = needs.token_id.empty() ? needs.user : needs.token_id;
  const auto& version = read.version.version;
  const auto major = read.granted ? pve_major(read.version) : std::nullopt;
  if (!major) {
    const auto error = read.granted ? "the Proxmox VE version is not understood: " + version
                                    : read.granted.error();
    bool log_it = false;
    {
      std::lock_guard lock(permissions_mutex_);
      permissions_ = {std::nullopt, version, {}, error};
      // No answer at all: ask again once Proxmox answers a read.
      if (!read.reached) {
        permissions_due_ = CheckDue::after_good_read;
      }
      log_it = !std::exchange(unknown_logged_, true);
    }
    if (log_it) {
      log::warn("proxmox_permissions_unknown",
                "cannot read the privileges of " + who + ": missing ones are not reported",
                {{"user", who}, {"error", error}});
    }
    return;
  }
  const auto missing = missing_privileges(*read.granted, *major, needs);
  for (const auto& m : missing) {
    log_missing(m, who, version);
  }
  if (missing.empty()) {
    log::info("proxmox_permissions", who + " has every privilege the agent needs",
              {{"user", who}, {"version", version}});
  }
  // Said already: a refused guest agent call need not be logged again.
  agent_denied_logged_ = std::any_of(missing.begin(), missing.end(), [](const auto& m) {
    return is_guest_agent_privilege(m.privilege);
  });
  std::lock_guard lock(permissions_mutex_);
  permissions_ = {clock_.unix_now(), version, missing, std::nullopt};
}

void ProxmoxClient::answered_read() {
  std::lock_guard lock(permissions_mutex_);
  if (permissions_due_ == CheckDue::after_good_read) {
    permissions_due_ = CheckDue::now;
  }
}

PermissionStatus ProxmoxClient::permissions() const {
  std::lock_guard lock(permissions_mutex_);
  return permissions_;
}

std::string ProxmoxClient::empty_node_hint(const std::string& node) const {
  std::optional<bool> lacks_audit;
  {
    std::lock_guard lock(permissions_mutex_);
    if (permissions_.checked) {
      lacks_audit = std::any_of(permissions_.missing.begin(), permissions_.missing.end(),
                                [](const auto& m) { return m.privilege == "VM.Audit"; });
    }
  }
  const std::string none = "Proxmox shows no guests on node " + node;
  if (lacks_audit.has_value()) {
    // Known: either the node has no guests, or the privilege is missing.
    return *lacks_audit ? none +
                              ": the API user or token lacks VM.Audit on /vms "
                              "(proxmox_privilege_missing says how to grant it)"
                        : "";
  }
  if (!credentials().uses_token()) {
    return "";
  }
  return none +
         "; if it has some, the API token may lack VM.Audit (a privilege-separated token needs "
         "its own permissions, e.g. the PVEAuditor role on /vms)";
}

ProxmoxCredentials ProxmoxClient::credentials() const {
  std::lock_guard lock(ticket_mutex_);
  return options_.credentials;
}

HttpOutcome ProxmoxClient::send(HttpRequest request) {
  if (!request.health_check) {
    ++requests_;  // the calls of the sync; health checks are counted by the monitor
  }
  return transport_(request);
}

ApiResult ProxmoxClient::failure(const std::string& method, const std::string& path,
                                 const HttpOutcome& o, const ProxmoxCredentials& c) const {
  ApiResult r{o.kind, o.status, o.body, ""};
  const std::string what = method + " " + path + " on " + options_.host.str();
  const std::string reason = o.reason.empty() ? "" : " " + o.reason;
  if (o.kind == FailureKind::auth && o.status == 401) {
    r.message = c.uses_token() ? "Proxmox rejected the API token (401" + reason +
                                     "): check PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET"
                               : "Proxmox rejected the login of " + c.user + " (401" + reason +
                                     "): check PROXMOX_USER and PROXMOX_PASSWORD";
  } else if (o.kind == FailureKind::auth) {
    r.message = "permission denied for " + method + " " + path + " (" + std::to_string(o.status) +
                reason +
                "): give the API user or token the PVEAuditor role (VM.Audit, Sys.Audit) on /";
  } else if (o.status >= 300 || (o.status != 0 && o.error.empty())) {
    // (A 2xx head whose body then failed - cut, too large - says why below,
    // never "200 OK".)
    r.message = what + ": " + std::to_string(o.status) + reason;
  } else if (o.error.starts_with(method + " ")) {
    r.message = o.error;  // the HTTP layer's message already names the request
  } else {
    r.message = what + ": " + (o.error.empty() ? std::string(to_string(o.kind)) : o.error);
  }
  return r;
}

// With ticket_mutex_ held.
ApiResult ProxmoxClient::login(bool renew) {
  const auto& c = options_.credentials;
  HttpRequest req;
  req.method = "POST";
  req.url = url("/access/ticket");
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  // Renewal posts the current ticket as the password.
  req.body = "username=" + url_encode(c.user) +
             "&password=" + url_encode(renew ? ticket_->ticket : c.password);
  req.idempotent = true;  // a login has no side effect worth guarding
  req.any_target = true;  // a ticket is valid on every node of the cluster
  auto o = send(req);
  if (!o.ok()) {
    return failure("POST", "/access/ticket", o, c);
  }
  auto t = parse_ticket(o.body);
  if (!t) {
    return ApiResult{FailureKind::server, o.status, "",
                     "POST /access/ticket: the answer is not understood: " + t.error()};
  }
  ticket_ = std::move(t.value());
  ticket_at_ = clock_.now();
  log::debug("proxmox_login", renew ? "ticket renewed" : "logged in", {{"user", c.user}});
  return ApiResult{FailureKind::ok, o.status, "", ""};
}

bool ProxmoxClient::ensure_ticket(ApiResult& fail) {
  if (ticket_ && clock_.now() - ticket_at_ < kTicketRenewAfter) {
    return true;
  }
  if (ticket_) {
    auto renewed = login(true);
    if (renewed.ok()) {
      return true;
    }
    ticket_.reset();  // expired or revoked: log in with the password
  }
  auto fresh = login(false);
  if (!fresh.ok()) {
    fail = fresh;
    return false;
  }
  return true;
}

ApiResult ProxmoxClient::call(const std::string& method, const std::string& path,
                              const std::string& form_body, const CallOptions& how) {
  const auto c = credentials();
  for (int attempt = 0;; ++attempt) {
    HttpRequest req;
    req.method = method;
    req.url = url(path, how.host);
    req.idempotent = method == "GET";
    req.retry = how.retry;
    req.health_check = how.health_check;
    req.any_target = how.any_target;
    if (c.uses_token()) {
      req.headers.emplace_back("Authorization", "PVEAPIToken=" + c.token_id + "=" + c.token_secret);
    } else {
      std::lock_guard lock(ticket_mutex_);
      ApiResult fail;
      if (!ensure_ticket(fail)) {
        return fail;
      }
      req.headers.emplace_back("Cookie", "PVEAuthCookie=" + ticket_->ticket);
      if (method != "GET") {
        req.headers.emplace_back("CSRFPreventionToken", ticket_->csrf_token);
      }
    }
    if (!form_body.empty()) {
      req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
      req.body = form_body;
    }
    auto o = send(req);
    // A ticket can be refused before it expires (a restarted cluster, a
    // changed password): log in again, once.
    if (o.status == 401 && !c.uses_token() && attempt == 0) {
      log::info("proxmox_relogin", "the ticket was refused; logging in again",
                {{"path", path}, {"reason", o.reason}});
      std::lock_guard lock(ticket_mutex_);
      ticket_.reset();
      continue;
    }
    if (!o.ok()) {
      return failure(method, path, o, c);
    }
    return ApiResult{FailureKind::ok, o.status, std::move(o.body), ""};
  }
}

ApiResult ProxmoxClient::get(const std::string& path) {
  return call("GET", path, "", {});
}

ApiResult ProxmoxClient::check_health(const std::string& host) {
  return call("GET", "/version", "", {.health_check = true, .host = host});
}

ApiResult ProxmoxClient::get_once(const std::string& path) {
  return call("GET", path, "", {.retry = false});
}

Result<ClusterStatus> ProxmoxClient::cluster_status() {
  auto r = call("GET", "/cluster/status", "", {.any_target = true});
  if (!r.ok()) {
    return Error{r.message};
  }
  return parse_cluster_status(r.body);
}

std::string ProxmoxClient::node_name() {
  if (!options_.node_name.empty()) {
    return options_.node_name;
  }
  if (node_name_) {
    return *node_name_;
  }
  auto r = get("/cluster/status");
  if (r.ok()) {
    auto status = parse_cluster_status(r.body);
    if (status && status->local_node() != nullptr) {
      node_name_ = status->local_node()->name;
      log::info("proxmox_node", "node name from /cluster/status", {{"node", *node_name_}});
      return *node_name_;
    }
    r.message = status ? "/cluster/status has no local node" : "/cluster/status: " + status.error();
  }
  const auto host = options_.short_hostname ? options_.short_hostname() : std::string();
  log::warn("proxmox_node", "cannot learn the node name from /cluster/status; using the host name",
            {{"node", host}, {"error", r.message}});
  // A permanent answer (no Sys.Audit, an API error) will not change: keep the
  // host name. A transient failure is asked again next time.
  if (r.kind == FailureKind::auth || r.kind == FailureKind::client || r.kind == FailureKind::ok) {
    node_name_ = host;
  }
  return host;
}

void ProxmoxClient::read_details(Guest& g, GuestRead& read) {
  const GuestKey key{g.type, g.vmid};
  const auto now = clock_.now();
  const auto it = details_.find(key);
  if (it != details_.end() && it->second.status == g.status &&
      now - it->second.read_at < options_.details_ttl) {
    g.notes = it->second.notes;
    g.ip_address = it->second.ip;
    return;
  }
  const auto before = requests_.load();
  const std::string base =
      "/nodes/" + g.node + "/" + type_path(g.type) + "/" + std::to_string(g.vmid);
  Details d{g.status, now, std::nullopt, std::nullopt};
  bool complete = true;
  auto conf = get_once(base + "/config");
  if (conf.ok()) {
    if (auto notes = parse_config_description(conf.body)) {
      d.notes = *notes;
    } else {
      complete = false;
      log::debug("proxmox_details", "config not understood",
                 {{"vmid", g.vmid}, {"error", notes.error()}});
    }
  } else {
    complete = false;
    log::debug("proxmox_details", "config not read", {{"vmid", g.vmid}, {"error", conf.message}});
  }
  if (g.running()) {
    const bool qemu = g.type == GuestType::qemu;
    auto ifs = get_once(base + (qemu ? "/agent/network-get-interfaces" : "/interfaces"));
    if (ifs.ok()) {
      auto ip = qemu ? parse_qemu_agent_ipv4(ifs.body) : parse_lxc_interfaces_ipv4(ifs.body);
      if (ip) {
        d.ip = *ip;
      }
    } else if (qemu && ifs.status == 403) {
      // The guest agent call needs VM.GuestAgent.Audit (PVE 9, in
      // PVEAuditor) or VM.Monitor (PVE 8, not in PVEAuditor): a permanent
      // answer, cached, so that each running VM does not cost a refused call
      // every cycle. Said once per run, unless the permission check did.
      if (!agent_denied_logged_.exchange(true)) {
        log::warn("proxmox_agent_denied",
                  "the QEMU guest agent call is not permitted: guest IP addresses stay empty "
                  "(the reason names the privilege it needs)",
                  {{"vmid", g.vmid}, {"reason", ifs.message}});
      }
    } else if (!(qemu && ifs.kind == FailureKind::server && ifs.status == 500)) {
      // A 500 from the guest agent call means no agent runs: that is an
      // answer, cached like any other. Anything else is tried again.
      complete = false;
    }
  }
  read.detail_requests += requests_ - before;
  if (!complete && it != details_.end()) {
    // Keep what we knew rather than forgetting it on a passing failure.
    d.notes = d.notes ? d.notes : it->second.notes;
    d.ip = d.ip ? d.ip : it->second.ip;
  }
  g.notes = d.notes;
  g.ip_address = d.ip;
  if (complete) {
    details_[key] = std::move(d);
  }
}

ProxmoxClient::ClusterRead ProxmoxClient::read_cluster_guests() {
  ClusterRead r;
  auto res = call("GET", "/cluster/resources?type=vm", "", {.any_target = true});
  if (!res.ok()) {
    r.kind = res.kind;
    r.error = res.message;
    return r;
  }
  auto list = parse_cluster_resources(res.body);
  if (!list) {
    r.kind = FailureKind::server;
    r.error = "GET /cluster/resources on " + options_.host.str() +
              ": the answer is not understood: " + list.error();
    return r;
  }
  r.ok = true;
  r.list = std::move(list.value());
  return r;
}

void ProxmoxClient::remember(const std::vector<Guest>& guests) {
  last_known_.clear();
  for (const auto& g : guests) {
    last_known_[{g.type, g.vmid}] = g;
  }
}

GuestRead ProxmoxClient::read_from_cluster(GuestRead r, const std::string& local_error) {
  const auto with_local = [&local_error](const std::string& e) {
    return local_error.empty() ? e : local_error + "; the cluster-wide fallback failed too: " + e;
  };
  auto cluster = read_cluster_guests();
  if (!cluster.ok) {
    r.ok = false;
    r.kind = cluster.kind;
    r.error = with_local(cluster.error);
    return r;
  }
  r.source = "cluster";
  r.kind = FailureKind::ok;
  r.error.clear();
  r.guests.clear();
  r.rejected = cluster.list.rejected;
  std::size_t unknown_without_values = 0;
  for (auto& g : cluster.list.guests) {
    if (g.node != r.node || (g.type == GuestType::qemu && !options_.sync_qemu) ||
        (g.type == GuestType::lxc && !options_.sync_lxc)) {
      continue;
    }
    const GuestKey key{g.type, g.vmid};
    if (g.unknown) {
      // The node is offline for the cluster: nothing about the guest is
      // known now, so it is reported as it was last seen, or not at all.
      const auto known = last_known_.find(key);
      if (known == last_known_.end()) {
        ++unknown_without_values;
        continue;
      }
      r.guests.push_back(known->second);
      continue;
    }
    // Details are node-local calls: keep the cached ones.
    if (const auto d = details_.find(key); d != details_.end()) {
      g.notes = d->second.notes;
      g.ip_address = d->second.ip;
    }
    r.guests.push_back(std::move(g));
  }
  remember(r.guests);
  if (unknown_without_values > 0) {
    r.rejected.push_back(std::to_string(unknown_without_values) +
                         " guests in state unknown that were never read before");
  }
  // A fallback read never makes a guest look deleted (plan.hpp), whatever it holds.
  r.complete = r.rejected.empty();
  r.ok = true;
  answered_read();
  return r;
}

GuestRead ProxmoxClient::read_guests() {
  GuestRead r;
  const auto start = clock_.now();
  const auto before = requests_.load();
  ProxmoxFailover failover;
  {
    std::lock_guard lock(ticket_mutex_);
    failover = failover_;
  }
  r.node = node_name();
  r.source = "node";
  auto finish = [&](GuestRead out) -> GuestRead {
    out.requests = requests_ - before;
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - start);
    return out;
  };
  if (failover.use_local && !failover.use_local()) {
    return finish(read_from_cluster(std::move(r), ""));
  }
  std::vector<GuestType> types;
  if (options_.sync_qemu) {
    types.push_back(GuestType::qemu);
  }
  if (options_.sync_lxc) {
    types.push_back(GuestType::lxc);
  }
  for (auto type : types) {
    const std::string path = "/nodes/" + r.node + "/" + type_path(type);
    auto res = get(path);
    if (res.ok()) {
      auto list = parse_guest_list(res.body, type, r.node);
      if (list) {
        for (const auto& rejected : list->rejected) {
          r.rejected.push_back(std::string(to_string(type)) + " " + rejected);
        }
        r.guests.insert(r.guests.end(), list->guests.begin(), list->guests.end());
        continue;
      }
      res.kind = FailureKind::server;
      res.message = "GET " + path + " on " + options_.host.str() +
                    ": the answer is not understood: " + list.error();
    }
    r.kind = res.kind;
    r.error = res.message;
    if (is_host_failure(res.kind) && failover.can_fall_back && failover.can_fall_back()) {
      failover.local_failed(std::string(to_string(res.kind)) + ": " + res.message);
      return finish(read_from_cluster(std::move(r), res.message));
    }
    return finish(std::move(r));
  }
  r.complete = r.rejected.empty();
  if (options_.vm_details) {
    std::set<GuestKey> present;
    for (auto& g : r.guests) {
      present.insert({g.type, g.vmid});
      read_details(g, r);
    }
    std::erase_if(details_, [&](const auto& entry) { return !present.contains(entry.first); });
  }
  remember(r.guests);
  if (r.guests.empty()) {
    r.hint = empty_node_hint(r.node);
  }
  r.ok = true;
  answered_read();
  return finish(std::move(r));
}

}  // namespace pha
