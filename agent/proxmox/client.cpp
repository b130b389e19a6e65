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
  // Going without VM.Monitor is what docs/proxmox.md "Privileges" advises on PVE 8: no warning.
  if (m.advised) {
    log::warn("proxmox_privilege_missing", message, fields);
  } else {
    log::info("proxmox_privilege_missing", message, fields);
  }
}

}  // namespace

bool is_unknown_node_answer(const HttpOutcome& o) {
  return o.status == 500 && o.reason.starts_with("hostname lookup '");
}

ProxmoxClient::ProxmoxClient(Live<ProxmoxClientOptions> options, Transport transport, Clock& clock,
                             ProxmoxFailover failover)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      clock_(clock),
      in_use_(options_().credentials()),
      failover_(std::move(failover)) {}

std::string ProxmoxClient::url(const std::string& path, const std::string& host) const {
  return (host.empty() ? options().host.str() : host) + std::string(kApiPrefix) + path;
}

ProxmoxCredentials ProxmoxClient::current_credentials() {
  auto next = options().credentials();
  std::lock_guard lock(ticket_mutex_);
  if (next == in_use_) {
    return in_use_;
  }
  in_use_ = std::move(next);
  const auto& c = in_use_;
  ticket_.reset();
  log::info("proxmox_credentials_changed", "the Proxmox credentials were reloaded",
            {{"auth", c.uses_token() ? "token" : "ticket"}});
  std::lock_guard check(permissions_mutex_);
  permissions_due_ = CheckDue::now;  // other credentials, other privileges
  unknown_logged_ = false;
  return in_use_;
}

PermissionNeeds ProxmoxClient::permission_needs() const {
  const auto c = credentials();
  const auto o = options();
  return {.vm_details = o.vm_details,
          .sync_qemu = o.sync_qemu,
          .node_name_auto = o.node_name.empty(),
          .discover_hosts = o.discover_hosts,
          .watch_tasks = o.watch_tasks,
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
  static_cast<void>(current_credentials());  // changed ones make the check due
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

ProxmoxCredentials ProxmoxClient::credentials() const {
  std::lock_guard lock(ticket_mutex_);
  return in_use_;
}

HttpOutcome ProxmoxClient::send(const HttpRequest& request) {
  if (!request.health_check) {
    ++requests_;  // the calls of the sync; health checks are counted by the monitor
  }
  return transport_(request);
}

Error ProxmoxClient::failure(const std::string& method, const std::string& path,
                             const HttpOutcome& o, const ProxmoxCredentials& c) const {
  const auto host = options().host.str();
  Error r{error_kind(o.kind), "", method, host + path_only(path), o.status};
  const std::string what = method + " " + path + " on " + host;
  const std::string reason = o.reason.empty() ? "" : " " + o.reason;
  if (o.kind == FailureKind::auth && o.status == 401) {
    r.message = c.uses_token() ? "Proxmox rejected the API token (401" + reason +
                                     "): check PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET"
                               : "Proxmox rejected the login of " + c.user + " (401" + reason +
                                     "): check PROXMOX_USER and PROXMOX_PASSWORD";
  } else if (is_unknown_node_answer(o)) {
    r.message = "Proxmox does not know the node of " + method + " " + path_only(path) + " (500 " +
                o.reason + "): check PROXMOX_NODE_NAME";
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
  const auto& c = in_use_;
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
  const auto c = current_credentials();
  for (int attempt = 0;; ++attempt) {
    HttpRequest req;
    req.method = method;
    req.url = url(path, how.host);
    req.idempotent = method == "GET";
    req.retry = how.retry;
    req.health_check = how.health_check;
    req.any_target = how.any_target;
    req.hedge_of = how.hedge_of;
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

Result<TaskList> ProxmoxClient::cluster_tasks() {
  auto r = call("GET", "/cluster/tasks", "", {.retry = false, .any_target = true});
  if (!r.ok()) {
    return r.error();
  }
  return parse_task_list(*r);
}

std::string ProxmoxClient::node_name() {
  const auto o = options();
  if (!o.node_name.empty()) {
    return o.node_name;
  }
  if (node_name_ && node_name_host_ == o.host.str()) {
    return *node_name_;
  }
  node_name_.reset();  // learnt from another PROXMOX_HOST, which may be another node
  node_name_host_ = o.host.str();
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
  auto host = o.short_hostname ? o.short_hostname() : std::string();
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

}  // namespace pha
