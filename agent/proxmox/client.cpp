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

// A request's path without its query, for Error::url.
std::string path_only(const std::string& path) {
  return path.substr(0, path.find('?'));
}

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

std::string_view to_string(GuestSource s) {
  return s == GuestSource::node ? "node" : "cluster";
}

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
    out.reached = r.ok() || r.error().status != 0;
    if (!r.ok()) {
      out.granted = r.error();
      return std::nullopt;
    }
    return std::move(r.value());
  };
  const auto version_body = ask("/version");
  if (!version_body) {
    return out;
  }
  auto version = parse_version(*version_body);
  if (!version) {
    out.granted = Error{ErrorKind::bad_reply,
                        "GET /version: the answer is not understood: " + version.error().message};
    return out;
  }
  out.version = *version;
  const auto body = ask("/access/permissions");
  if (!body) {
    return out;
  }
  auto granted = parse_permissions(*body);
  out.granted = granted ? std::move(granted)
                        : Error{ErrorKind::bad_reply,
                                "GET /access/permissions: the answer is not understood: " +
                                    granted.error().message};
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
                                    : read.granted.error().message;
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

Error ProxmoxClient::failure(const std::string& method, const std::string& path,
                             const HttpOutcome& o, const ProxmoxCredentials& c) const {
  Error r{error_kind(o.kind), "", method, options_.host.str() + path_only(path), o.status};
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
Status ProxmoxClient::login(bool renew) {
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
    return Error{ErrorKind::bad_reply,
                 "POST /access/ticket: the answer is not understood: " + t.error().message, "POST",
                 req.url, o.status};
  }
  ticket_ = std::move(t.value());
  ticket_at_ = clock_.now();
  log::debug("proxmox_login", renew ? "ticket renewed" : "logged in", {{"user", c.user}});
  return {};
}

Status ProxmoxClient::ensure_ticket() {
  if (ticket_ && clock_.now() - ticket_at_ < kTicketRenewAfter) {
    return {};
  }
  if (ticket_) {
    if (login(true)) {
      return {};
    }
    ticket_.reset();  // expired or revoked: log in with the password
  }
  return login(false);
}

Result<std::string> ProxmoxClient::call(const std::string& method, const std::string& path,
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
      if (auto ticket = ensure_ticket(); !ticket) {
        return ticket.error();
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
    return std::move(o.body);
  }
}

Result<std::string> ProxmoxClient::get(const std::string& path) {
  return call("GET", path, "", {});
}

Status ProxmoxClient::check_health(const std::string& host) {
  if (auto r = call("GET", "/version", "", {.health_check = true, .host = host}); !r) {
    return r.error();
  }
  return {};
}

Result<std::string> ProxmoxClient::get_once(const std::string& path) {
  return call("GET", path, "", {.retry = false});
}

Result<ClusterStatus> ProxmoxClient::cluster_status() {
  auto r = call("GET", "/cluster/status", "", {.any_target = true});
  if (!r.ok()) {
    return r.error();
  }
  return parse_cluster_status(*r);
}

std::string ProxmoxClient::node_name() {
  if (!options_.node_name.empty()) {
    return options_.node_name;
  }
  if (node_name_) {
    return *node_name_;
  }
  auto r = get("/cluster/status");
  Error why{ErrorKind::bad_reply, "/cluster/status has no local node"};
  if (r.ok()) {
    auto status = parse_cluster_status(*r);
    if (status && status->local_node() != nullptr) {
      node_name_ = status->local_node()->name;
      log::info("proxmox_node", "node name from /cluster/status", {{"node", *node_name_}});
      return *node_name_;
    }
    if (!status) {
      why.message = "/cluster/status: " + status.error().message;
    }
  } else {
    why = r.error();
  }
  const auto host = options_.short_hostname ? options_.short_hostname() : std::string();
  log::warn("proxmox_node", "cannot learn the node name from /cluster/status; using the host name",
            {{"node", host}, {"error", why.message}});
  // A permanent answer (no Sys.Audit, an API error, an answer without this
  // node) will not change: keep the host name. A transient failure is asked
  // again next time.
  if (why.kind == ErrorKind::auth || why.kind == ErrorKind::client ||
      why.kind == ErrorKind::bad_reply) {
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
    if (auto notes = parse_config_description(*conf)) {
      d.notes = *notes;
    } else {
      complete = false;
      log::debug("proxmox_details", "config not understood",
                 {{"vmid", g.vmid}, {"error", notes.error().message}});
    }
  } else {
    complete = false;
    log::debug("proxmox_details", "config not read",
               {{"vmid", g.vmid}, {"error", conf.error().message}});
  }
  if (g.running()) {
    const bool qemu = g.type == GuestType::qemu;
    auto ifs = get_once(base + (qemu ? "/agent/network-get-interfaces" : "/interfaces"));
    if (ifs.ok()) {
      auto ip = qemu ? parse_qemu_agent_ipv4(*ifs) : parse_lxc_interfaces_ipv4(*ifs);
      if (ip) {
        d.ip = *ip;
      }
    } else if (qemu && ifs.error().status == 403) {
      // The guest agent call needs VM.GuestAgent.Audit (PVE 9, in
      // PVEAuditor) or VM.Monitor (PVE 8, not in PVEAuditor): a permanent
      // answer, cached, so that each running VM does not cost a refused call
      // every cycle. Said once per run, unless the permission check did.
      if (!agent_denied_logged_.exchange(true)) {
        log::warn("proxmox_agent_denied",
                  "the QEMU guest agent call is not permitted: guest IP addresses stay empty "
                  "(the reason names the privilege it needs)",
                  {{"vmid", g.vmid}, {"reason", ifs.error().message}});
      }
    } else if (!(qemu && ifs.error().kind == ErrorKind::server && ifs.error().status == 500)) {
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

Result<GuestList> ProxmoxClient::read_cluster_guests() {
  auto res = call("GET", "/cluster/resources?type=vm", "", {.any_target = true});
  if (!res.ok()) {
    return res.error();
  }
  auto list = parse_cluster_resources(*res);
  if (!list) {
    return Error{ErrorKind::bad_reply,
                 "GET /cluster/resources on " + options_.host.str() +
                     ": the answer is not understood: " + list.error().message,
                 "GET", options_.host.str() + "/cluster/resources"};
  }
  return list;
}

void ProxmoxClient::remember(const std::vector<Guest>& guests) {
  last_known_.clear();
  for (const auto& g : guests) {
    last_known_[{g.type, g.vmid}] = g;
  }
}

Result<GuestRead> ProxmoxClient::read_from_cluster(GuestRead r, const std::string& local_error) {
  auto cluster = read_cluster_guests();
  if (!cluster.ok()) {
    auto e = cluster.error();
    if (!local_error.empty()) {
      e.message = local_error + "; the cluster-wide fallback failed too: " + e.message;
    }
    return e;
  }
  r.source = GuestSource::cluster;
  r.guests.clear();
  r.rejected = cluster->rejected;
  std::size_t unknown_without_values = 0;
  for (auto& g : cluster->guests) {
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
  answered_read();
  return r;
}

Result<GuestRead> ProxmoxClient::read_guests() {
  GuestRead r;
  const auto start = clock_.now();
  const auto before = requests_.load();
  ProxmoxFailover failover;
  {
    std::lock_guard lock(ticket_mutex_);
    failover = failover_;
  }
  r.node = node_name();
  auto finish = [&](Result<GuestRead> out) -> Result<GuestRead> {
    if (out) {
      out->requests = requests_ - before;
      out->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - start);
    }
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
      auto list = parse_guest_list(*res, type, r.node);
      if (list) {
        for (const auto& rejected : list->rejected) {
          r.rejected.push_back(std::string(to_string(type)) + " " + rejected);
        }
        r.guests.insert(r.guests.end(), list->guests.begin(), list->guests.end());
        continue;
      }
      res = Error{ErrorKind::bad_reply,
                  "GET " + path + " on " + options_.host.str() +
                      ": the answer is not understood: " + list.error().message,
                  "GET", options_.host.str() + path};
    }
    const auto& e = res.error();
    if (is_host_failure(e.kind) && failover.can_fall_back && failover.can_fall_back()) {
      failover.local_failed(std::string(to_string(e.kind)) + ": " + e.message);
      return finish(read_from_cluster(std::move(r), e.message));
    }
    return e;
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
  answered_read();
  return finish(std::move(r));
}

}  // namespace pha
