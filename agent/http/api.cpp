#include "agent/http/api.hpp"

#include <algorithm>

#include "agent/core/text.hpp"
#include "agent/http/access.hpp"
#include "agent/http/status_page.hpp"

namespace pha {

namespace {

using http::Response;
using nlohmann::json;

json opt(const std::optional<std::int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

json opt(const std::optional<double>& v) {
  return v ? json(*v) : json(nullptr);
}

json opt(const std::optional<std::string>& v) {
  return v ? json(*v) : json(nullptr);
}

json since_epoch(std::int64_t t) {
  return t == 0 ? json(nullptr) : json(t);
}

Response json_response(int status, const json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// Routes: path (exact, or a prefix ending in '/' for /vms/{vmid}), the methods
// it has and who may call it (access.hpp).
struct Route {
  std::string_view path;
  std::string_view methods;  // comma-separated, for the Allow header
  http::Access access;
};
using http::Access;
constexpr Route kRoutes[] = {
    {"/", "GET, HEAD", Access::open},  // holds no data; asks for a token when a read needs one
    {"/health", "GET, HEAD", Access::open},
    {"/health/proxmox", "GET, HEAD", Access::monitoring},
    {"/status", "GET, HEAD", Access::monitoring},
    {"/sync/status", "GET, HEAD", Access::monitoring},
    {"/sync/trigger", "POST", Access::control},
    {"/sync/confirm", "POST", Access::control},
    {"/whitelist/refresh", "POST", Access::control},
    {"/vms", "GET, HEAD", Access::customer_data},
    {"/vms/", "GET, HEAD", Access::customer_data},
    {"/config", "GET, HEAD", Access::customer_data},
    {"/metrics", "GET, HEAD", Access::monitoring},
    {"/failover/events", "GET, HEAD", Access::monitoring},
    {"/failover/proxmox", "POST", Access::control},
    {"/failover/accountdb", "POST", Access::control},
    {"/failover/reset", "POST", Access::control},
};

const Route* find_route(std::string_view path) {
  for (const auto& r : kRoutes) {
    if (r.path == path) {
      return &r;
    }
  }
  if (path.starts_with("/vms/") && path.size() > 5) {
    return find_route("/vms/");
  }
  return nullptr;
}

json target_json(const TargetView& t, bool with_endpoint_fields, bool primary, int bonus) {
  const auto& h = t.health;
  json j = {{"url", t.info.url},
            {"source", t.info.source},
            {"status", to_string(t.state)},
            {"state_source", to_string(t.source)},
            {"probed", t.probed},
            {"circuit", to_string(h.circuit)},
            {"response_time_ms", opt(h.response_time_ms)},
            {"failure_count", h.failure_count},
            {"consecutive_failures", h.consecutive_failures},
            {"last_seen", opt(h.last_seen)},
            {"last_error", opt(h.last_error)},
            {"score", opt(host_score(h, primary, bonus))}};
  if (with_endpoint_fields) {
    j["priority"] = t.info.priority;
    j["weight"] = t.info.weight;
    j["in_flight"] = t.in_flight;
  } else {
    j["node_name"] = t.info.node_name.empty() ? json(nullptr) : json(t.info.node_name);
    j["cluster"] =
        !t.reported_online ? json(nullptr) : json(*t.reported_online ? "online" : "offline");
  }
  return j;
}

json connection_health_json(const ConnectionHealth& c) {
  return {{"last_successful_call", opt(c.last_successful_call)},
          {"consecutive_failures", c.consecutive_failures},
          {"total_calls", c.total_calls},
          {"total_failures", c.total_failures},
          {"average_response_time_ms", opt(c.average_response_time_ms)}};
}

}  // namespace

Api::Api(ApiContext context) : ctx_(std::move(context)) {}

http::Dispatch Api::dispatch(const http::Request& r) {
  const auto* route = find_route(r.path);
  if (route == nullptr) {
    return {http::error_response(404, "not_found", "no such endpoint: " + r.path), {}};
  }
  const bool post = route->methods == "POST";
  const bool method_ok = post ? r.method == "POST" : (r.method == "GET" || r.method == "HEAD");
  if (!method_ok) {
    auto resp = http::error_response(405, "method_not_allowed",
                                     r.method + " is not allowed on " + std::string(route->path));
    resp.headers.emplace_back("Allow", std::string(route->methods));
    return {std::move(resp), {}};
  }
  if (auto denied = http::check_access(route->access, r, *ctx_.settings())) {
    return {std::move(*denied), {}};
  }
  return answer(r);
}

// The answer of a route, once its method and the client's right to it are checked.
http::Dispatch Api::answer(const http::Request& r) {
  if (r.path == "/") {
    Response resp;
    resp.content_type = "text/html; charset=utf-8";
    resp.headers.emplace_back("Content-Security-Policy",
                              "default-src 'none'; script-src 'unsafe-inline'; style-src "
                              "'unsafe-inline'; connect-src 'self'; img-src data:");
    resp.body = std::string(http::status_page_html());
    return {std::move(resp), {}};
  }
  if (r.path == "/health") {
    return {health(), {}};
  }
  if (r.path == "/health/proxmox") {
    return {health_proxmox(), {}};
  }
  if (r.path == "/status") {
    return {json_response(200, status_json()), {}};
  }
  if (r.path == "/sync/status") {
    return {json_response(200, sync_status_json()), {}};
  }
  if (r.path == "/sync/trigger") {
    ctx_.trigger_sync();
    return {
        json_response(202, {{"status", "sync_triggered"}, {"timestamp", ctx_.clock->unix_now()}}),
        {}};
  }
  if (r.path == "/sync/confirm") {
    return {sync_confirm(r), {}};
  }
  if (r.path == "/whitelist/refresh") {
    return {std::nullopt, [this] { return whitelist_refresh(); }};
  }
  if (r.path == "/vms") {
    return {vms(), {}};
  }
  if (r.path.starts_with("/vms/")) {
    return {vm(r.path.substr(5)), {}};
  }
  if (r.path == "/config") {
    return {json_response(200, ctx_.config_json()), {}};
  }
  if (r.path == "/failover/events") {
    return {failover_events(), {}};
  }
  if (r.path.starts_with("/failover/")) {
    return {failover(r), {}};
  }
  // /metrics
  Response resp;
  resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
  resp.body = metrics_text();
  return {std::move(resp), {}};
}

Response Api::health() const {
  const auto live =
      evaluate_liveness(ctx_.loop(), ctx_.server_stats(), *ctx_.settings(), ctx_.clock->now());
  json body = {{"status", live.ok ? "ok" : "error"}, {"timestamp", ctx_.clock->unix_now()}};
  if (!live.ok) {
    body["message"] = live.message;
  }
  return json_response(live.ok ? 200 : 503, body);
}

Response Api::health_proxmox() const {
  const auto s = ctx_.settings();
  const auto host = s->proxmox_host.str();
  const auto t = ctx_.proxmox->target(host);
  const auto now = ctx_.clock->unix_now();
  json body = {{"status", "error"}, {"message", "not checked yet"}, {"timestamp", now},
               {"host", host},      {"response_time_ms", nullptr},  {"checked_at", nullptr}};
  bool ok = false;
  if (t && t->health.last_checked) {
    const auto& h = t->health;
    body["checked_at"] = *h.last_checked;
    body["response_time_ms"] = opt(h.last_response_ms);
    // A check older than two intervals means the checks stopped: do not vouch for it.
    const bool fresh =
        now - *h.last_checked <= 2 * static_cast<std::int64_t>(s->health_check_interval);
    ok = h.last_ok && fresh;
    body["message"] = ok ? "the Proxmox API answers"
                      : !fresh
                          ? "no health check for " + std::to_string(now - *h.last_checked) + " s"
                          : h.last_error.value_or("the last call failed");
    body["status"] = ok ? "ok" : "error";
  }
  return json_response(ok ? 200 : 503, body);
}

Response Api::failover_events() const {
  json events = json::array();
  for (const auto& e : ctx_.failover_log->events()) {
    events.push_back(to_json(e));
  }
  return json_response(200, {{"events", std::move(events)}});
}

Response Api::failover(const http::Request& r) {
  const auto now = ctx_.clock->unix_now();
  if (r.path == "/failover/reset") {
    ctx_.hosts->reset();
    ctx_.endpoints->reset();
    return json_response(200, {{"status", "failover_reset"},
                               {"timestamp", now},
                               {"proxmox_host", ctx_.hosts->preferred()}});
  }
  const bool proxmox = r.path == "/failover/proxmox";
  const char* field = proxmox ? "host" : "url";
  const auto body = json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains(field) ||
      !body[field].is_string()) {
    return http::error_response(
        400, "bad_request",
        std::string("the body must be a JSON object with a string \"") + field + "\"");
  }
  const auto target = body[field].get<std::string>();
  const auto refused = proxmox ? ctx_.hosts->prefer(target) : ctx_.endpoints->prefer(target);
  if (refused) {
    return http::error_response(409, "conflict", *refused);
  }
  return json_response(200, {{"status", "failover_done"},
                             {"timestamp", now},
                             {"target", proxmox ? "proxmox" : "accountdb"},
                             {field, target}});
}

Response Api::sync_confirm(const http::Request& r) {
  const auto body = json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("hold") ||
      !body["hold"].is_string()) {
    return http::error_response(
        400, "bad_request",
        "the body must be a JSON object with a string \"hold\": the id of the held changes "
        "(GET /status, sync.held.id)");
  }
  auto confirmed = ctx_.confirm_held(body["hold"].get<std::string>());
  if (!confirmed) {
    const auto& e = confirmed.error();
    return e.kind == ErrorKind::not_found ? http::error_response(404, "not_found", e.message)
                                          : http::error_response(409, "conflict", e.message);
  }
  ctx_.trigger_sync();
  return json_response(200, {{"status", "confirmed"},
                             {"hold", confirmed->id},
                             {"changes", confirmed->requests.size()},
                             {"timestamp", ctx_.clock->unix_now()}});
}

json Api::read_json(const SyncInfo& sync) const {
  return {{"counts_for_missing", sync.read_counts_for_missing},
          {"reason",
           sync.read_incomplete_reason.empty() ? json(nullptr) : json(sync.read_incomplete_reason)},
          {"hidden", sync.hidden}};
}

json Api::proxmox_json(const Settings& s) const {
  const auto primary = ctx_.hosts->primary();
  const auto preferred = ctx_.hosts->preferred();
  const auto targets = ctx_.proxmox->targets();
  json hosts = json::array();
  bool connected = false;
  for (const auto& t : targets) {
    hosts.push_back(target_json(t, false, t.info.url == primary, s.primary_bonus));
    if (t.info.url == preferred) {
      connected = t.health.last_ok;
    }
  }
  const auto red = redundancy_of(targets, preferred);
  const auto node = ctx_.node_name();
  return {{"host", preferred},
          {"node", node.empty() ? json(nullptr) : json(node)},
          {"connected", connected},
          {"primary", primary},
          {"preferred", preferred},
          {"manual", ctx_.hosts->manual()},
          {"auto_failover", s.auto_failover},
          {"auto_recovery", s.auto_recovery},
          {"redundancy", red.level},
          {"degraded", red.degraded},
          {"hosts", std::move(hosts)},
          {"permissions", permissions_json()}};
}

json Api::permissions_json() const {
  const auto p = ctx_.proxmox_permissions ? ctx_.proxmox_permissions() : PermissionStatus{};
  json missing = json::array();
  for (const auto& m : p.missing) {
    missing.push_back({{"privilege", m.privilege}, {"path", m.path}, {"effect", m.effect}});
  }
  return {{"checked", opt(p.checked)},
          {"version", p.version.empty() ? json(nullptr) : json(p.version)},
          {"missing", std::move(missing)},
          {"error", opt(p.error)}};
}

json Api::accountdb_json(const Settings& s) const {
  auto active = ctx_.endpoints->active();
  if (active.empty()) {
    active = s.accountdb_endpoints.front().url.str();  // nothing answered yet
  }
  const auto targets = ctx_.accountdb->targets();
  json endpoints = json::array();
  bool connected = false;
  for (const auto& t : targets) {
    endpoints.push_back(target_json(t, true, false, 0));
    if (t.info.url == active) {
      connected = t.health.last_ok;
    }
  }
  const auto red = redundancy_of(targets, active);
  return {{"url", active},
          {"node_id", s.accountdb_node_id},
          {"connected", connected},
          {"owner_id", opt(ctx_.owner_id())},
          {"strategy", to_string(s.accountdb_strategy)},
          {"auto_failover", s.auto_failover},
          {"auto_recovery", s.auto_recovery},
          {"redundancy", red.level},
          {"degraded", red.degraded},
          {"endpoints", std::move(endpoints)}};
}

json Api::whitelist_json() const {
  const auto w = ctx_.whitelist_status();
  const auto now = ctx_.clock->unix_now();
  return {{"count", w.count},
          {"enabled", w.enabled},
          {"known", w.known},
          {"last_updated", since_epoch(w.last_updated)},
          {"age_seconds", w.last_updated == 0 ? json(nullptr) : json(now - w.last_updated)},
          {"stale", w.stale},
          {"source", w.source}};
}

json Api::status_json() const {
  const auto s = ctx_.settings();
  const auto now = ctx_.clock->unix_now();
  const auto current = ctx_.store->current();
  json history = json::array();
  for (const auto& e : ctx_.store->history()) {
    history.push_back(to_json(e));
  }
  const auto sync = ctx_.store->sync();
  const auto loop = ctx_.loop();
  json last_result = nullptr;
  if (sync.last_stats) {
    last_result = to_json(*sync.last_stats);
    last_result["status"] = sync.last_status;
    last_result["message"] = sync.last_message;
  }
  return {{"timestamp", now},
          {"agent",
           {{"version", ctx_.version},
            {"node", ctx_.node_name()},
            {"started_at", ctx_.started_at},
            {"uptime_seconds", now - ctx_.started_at},
            {"dry_run", ctx_.dry_run}}},
          {"current", current ? to_json(*current) : json(nullptr)},
          {"history", std::move(history)},
          {"proxmox", proxmox_json(*s)},
          {"accountdb", accountdb_json(*s)},
          {"sync",
           {{"last_sync_time", opt(sync.last_sync_time)},
            {"next_sync_time", since_epoch(loop.next_sync_time)},
            {"update_interval", s->update_interval},
            {"last_attempt_time", opt(sync.last_attempt_time)},
            {"cycle_count", sync.cycle_count},
            {"consecutive_failures", sync.consecutive_failures},
            {"is_syncing", loop.syncing},
            {"last_result", std::move(last_result)},
            {"read", read_json(sync)},
            {"changes", changes_json()},
            {"held", to_json(sync.held)},
            {"held_cycles", sync.held_cycles},
            {"connection_health", connection_health_json(ctx_.accountdb->connection_health())}}},
          {"whitelist", whitelist_json()},
          {"webhooks", webhooks_json()}};
}

// docs/http-api.md "GET /status" sync.changes; docs/sync.md "Changes seen between cycles".
json Api::changes_json() const {
  const auto c = ctx_.changes ? ctx_.changes() : ChangeStatus{};
  return {{"watching", c.watching},
          {"last_seen", opt(c.last_seen)},
          {"last_change", c.last_change.empty() ? json(nullptr) : json(c.last_change)},
          {"pending_since", opt(c.pending_since)},
          {"due_in_seconds", opt(c.due_in_seconds)},
          {"behind_seconds", c.behind_seconds},
          {"seen", c.changes},
          {"cycles", c.cycles}};
}

json Api::webhooks_json() const {
  const auto w = ctx_.webhooks ? ctx_.webhooks() : WebhookStats{};
  json receivers = json::array();
  for (const auto& r : w.receivers) {
    receivers.push_back({{"url", r.url},
                         {"delivered", r.delivered},
                         {"failed", r.failed},
                         {"dropped_queue_full", r.dropped_queue_full},
                         {"dropped_rejected", r.dropped_rejected},
                         {"queued", r.queued},
                         {"circuit", to_string(r.circuit)},
                         {"last_delivery", opt(r.last_delivery)},
                         {"last_error", opt(r.last_error)}});
  }
  return {{"enabled", w.enabled},
          {"events", w.events},
          {"published", w.published},
          {"receivers", std::move(receivers)}};
}

json Api::sync_status_json() const {
  const auto s = ctx_.settings();
  const auto sync = ctx_.store->sync();
  const auto w = ctx_.whitelist_status();
  return {{"last_sync_time", opt(sync.last_sync_time)},
          {"last_sync_stats", sync.last_stats ? to_json(*sync.last_stats) : json(nullptr)},
          {"is_syncing", ctx_.loop().syncing},
          {"update_interval", s->update_interval},
          {"whitelist", ctx_.whitelist_vmids()},
          {"whitelist_enabled", w.enabled},
          {"whitelist_last_updated", since_epoch(w.last_updated)}};
}

Response Api::whitelist_refresh() const {
  auto r = ctx_.refresh_whitelist();
  const auto now = ctx_.clock->unix_now();
  if (!r) {
    return json_response(502, {{"error", "whitelist_refresh_failed"},
                               {"message", r.error().message},
                               {"timestamp", now}});
  }
  return json_response(200, {{"status", "whitelist_refreshed"},
                             {"timestamp", now},
                             {"whitelist_count", r->count},
                             {"whitelist_enabled", r->enabled}});
}

}  // namespace pha
