#include "agent/http/api.hpp"

#include <algorithm>
#include <charconv>

#include "agent/core/text.hpp"
#include "agent/http/status_page.hpp"
#include "agent/platform/process_stats.hpp"

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

// Routes: path (exact, or a prefix ending in '/' for /vms/{vmid}) and the methods it has.
struct Route {
  std::string_view path;
  std::string_view methods;  // comma-separated, for the Allow header
};
constexpr Route kRoutes[] = {
    {"/", "GET, HEAD"},
    {"/health", "GET, HEAD"},
    {"/health/proxmox", "GET, HEAD"},
    {"/status", "GET, HEAD"},
    {"/sync/status", "GET, HEAD"},
    {"/sync/trigger", "POST"},
    {"/whitelist/refresh", "POST"},
    {"/vms", "GET, HEAD"},
    {"/vms/", "GET, HEAD"},
    {"/config", "GET, HEAD"},
    {"/metrics", "GET, HEAD"},
    {"/failover/events", "GET, HEAD"},
    {"/failover/proxmox", "POST"},
    {"/failover/accountdb", "POST"},
    {"/failover/reset", "POST"},
};

const Route* find_route(std::string_view path) {
  for (const auto& r : kRoutes) {
    if (r.path == path) {
      return &r;
    }
  }
  if (path.starts_with("/vms/") && path.size() > 5) {
    return &kRoutes[8];
  }
  return nullptr;
}

json target_json(const TargetView& t, bool with_endpoint_fields, bool primary, int bonus) {
  const auto& h = t.health;
  json j = {{"url", t.info.url},
            {"source", t.info.source},
            {"status", to_string(h.status)},
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

double circuit_value(CircuitState s) {
  switch (s) {
    case CircuitState::closed:
      return 0;
    case CircuitState::half_open:
      return 1;
    case CircuitState::open:
      return 2;
  }
  return 0;
}

bool is_digits(std::string_view s) {
  return !s.empty() && s.size() <= 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Liveness evaluate_liveness(const LoopState& loop, const http::ServerStats& server,
                           const Settings& s, Clock::TimePoint now,
                           const ThreadFailures& failures) {
  // What the exception said stays in the log: it may quote upstream data.
  if (const auto failed = failures.first()) {
    return {false, "the " + failed->thread +
                       " thread stopped on an unexpected error (log event thread_failed); "
                       "restart the agent"};
  }
  if (loop.running) {
    // The longest a healthy loop waits between cycles is the larger of the
    // interval and the reconnect cap; two of those without a finished cycle
    // means it is stuck.
    const auto period = std::chrono::seconds(std::max(s.update_interval, s.retry_max_delay));
    if (now - loop.last_progress > 2 * period) {
      return {false, "the sync loop has not finished a cycle for " +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            now - loop.last_progress)
                                            .count()) +
                         " s"};
    }
  }
  // A worker job waits on AccountDB: all its attempts, with some room.
  const auto job_limit = std::chrono::seconds(
      std::max(60, 2 * s.accountdb_timeout * s.retry_max_attempts + s.retry_max_delay));
  if (server.oldest_job_age > job_limit) {
    return {false, "an HTTP worker has been busy for " +
                       std::to_string(server.oldest_job_age.count() / 1000) + " s"};
  }
  return {true, ""};
}

Api::Api(ApiContext context) : ctx_(std::move(context)) {}

std::optional<Response> Api::authorise(const http::Request& r, bool write,
                                       const Settings& s) const {
  const bool needs_token = write || s.agent_read_auth;
  if (!needs_token) {
    return std::nullopt;
  }
  if (s.agent_api_token.empty()) {
    if (write && !r.peer_loopback) {
      return http::error_response(
          403, "forbidden", "POST is allowed from loopback only while AGENT_API_TOKEN is unset");
    }
    return std::nullopt;
  }
  const auto header = r.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() ||
      !std::equal(kBearer.begin(), kBearer.end(), header.begin(),
                  [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
    auto resp = http::error_response(401, "unauthorized", "a bearer token is required");
    resp.headers.emplace_back("WWW-Authenticate", "Bearer");
    return resp;
  }
  if (!constant_time_equals(trim(header.substr(kBearer.size())), s.agent_api_token)) {
    return http::error_response(403, "forbidden", "the bearer token is not valid");
  }
  return std::nullopt;
}

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
  const auto settings = ctx_.settings();
  // /health is always open; the page itself holds no data and asks for the token.
  if (r.path != "/health" && r.path != "/") {
    if (auto denied = authorise(r, post, *settings)) {
      return {std::move(*denied), {}};
    }
  }
  const auto now = ctx_.clock->unix_now();
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
    return {json_response(202, {{"status", "sync_triggered"}, {"timestamp", now}}), {}};
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
            {"connection_health", connection_health_json(ctx_.accountdb->connection_health())}}},
          {"whitelist", whitelist_json()},
          {"webhooks", webhooks_json()}};
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

Response Api::vms() const {
  const auto v = ctx_.store->vms();
  if (!v) {
    return json_response(200, {{"vms", json::array()}, {"count", 0}, {"as_of", nullptr}});
  }
  return json_response(
      200, {{"vms", guests_json(v->guests)}, {"count", v->guests.size()}, {"as_of", v->as_of}});
}

Response Api::vm(const std::string& id) const {
  if (!is_digits(id)) {
    return http::error_response(404, "not_found", "no guest with VMID " + id);
  }
  std::int64_t vmid = 0;
  std::from_chars(id.data(), id.data() + id.size(), vmid);
  const auto v = ctx_.store->vms();
  if (v) {
    for (const auto& g : v->guests) {
      if (g.vmid == vmid) {
        auto one = guests_json({g});
        auto body = one.at(0);
        body["as_of"] = v->as_of;
        return json_response(200, body);
      }
    }
  }
  return http::error_response(404, "not_found",
                              "no guest with VMID " + id + " in the last Proxmox read");
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

std::string Api::metrics_text() const {
  const auto s = ctx_.settings();
  const auto now = ctx_.clock->unix_now();
  const auto sync = ctx_.store->sync();
  MetricsWriter m;

  m.family("build_info", "gauge", "The agent's version.");
  m.sample("build_info", {{"version", ctx_.version}}, 1);
  m.family("start_time_seconds", "gauge", "Unix time the agent started.");
  m.sample("start_time_seconds", static_cast<double>(ctx_.started_at));

  m.family("sync_cycles_total", "counter", "Sync cycles finished, by result.");
  m.sample("sync_cycles_total", {{"result", "ok"}}, static_cast<double>(sync.totals.cycles_ok));
  m.sample("sync_cycles_total", {{"result", "warning"}},
           static_cast<double>(sync.totals.cycles_warning));
  m.sample("sync_cycles_total", {{"result", "error"}},
           static_cast<double>(sync.totals.cycles_error));
  m.family("sync_cycle_duration_seconds", "histogram", "Duration of sync cycles.");
  m.histogram("sync_cycle_duration_seconds", {}, ctx_.store->cycle_durations());
  m.family("sync_consecutive_failures", "gauge", "Sync cycles failed in a row.");
  m.sample("sync_consecutive_failures", static_cast<double>(sync.consecutive_failures));
  m.family("sync_in_progress", "gauge", "1 while a sync cycle runs.");
  m.sample("sync_in_progress", ctx_.loop().syncing ? 1 : 0);
  if (sync.last_sync_time) {
    m.family("sync_last_success_timestamp_seconds", "gauge",
             "Unix time the last successful sync cycle ended.");
    m.sample("sync_last_success_timestamp_seconds", static_cast<double>(*sync.last_sync_time));
  }

  const auto stats = sync.last_stats.value_or(CycleStats{});
  m.family("guests_seen", "gauge", "Guests of this node in the last Proxmox read.");
  m.sample("guests_seen", static_cast<double>(stats.total_proxmox_vms));
  m.family("guests_filtered", "gauge", "Guests the whitelist left out in the last cycle.");
  m.sample("guests_filtered", static_cast<double>(stats.filtered));
  m.family("guests_written_total", "counter", "Guests written to AccountDB, by kind of write.");
  m.sample("guests_written_total", {{"kind", "created"}}, static_cast<double>(sync.totals.created));
  m.sample("guests_written_total", {{"kind", "updated"}}, static_cast<double>(sync.totals.updated));
  m.sample("guests_written_total", {{"kind", "marked_missing"}},
           static_cast<double>(sync.totals.marked_missing));
  m.family("guest_write_errors_total", "counter", "Writes to AccountDB that failed.");
  m.sample("guest_write_errors_total", static_cast<double>(sync.totals.write_errors));

  const auto w = ctx_.whitelist_status();
  m.family("whitelist_size", "gauge", "VMIDs in the whitelist in use.");
  m.sample("whitelist_size", static_cast<double>(w.count));
  m.family("whitelist_enabled", "gauge", "1 when the whitelist filters guests.");
  m.sample("whitelist_enabled", w.enabled ? 1 : 0);
  m.family("whitelist_stale", "gauge", "1 when the whitelist in use could not be refreshed.");
  m.sample("whitelist_stale", w.stale ? 1 : 0);
  if (w.last_updated != 0) {
    m.family("whitelist_age_seconds", "gauge", "Age of the whitelist in use.");
    m.sample("whitelist_age_seconds", static_cast<double>(now - w.last_updated));
  }
  if (sync.last_heartbeat_ok) {
    m.family("heartbeat_age_seconds", "gauge",
             "Seconds since AccountDB last accepted a heartbeat or connection check.");
    m.sample("heartbeat_age_seconds", static_cast<double>(now - *sync.last_heartbeat_ok));
  }

  const UpstreamMonitor* monitors[] = {ctx_.proxmox, ctx_.accountdb};
  m.family(
      "upstream_requests_total", "counter",
      "Requests to each Proxmox host and AccountDB endpoint, by outcome (ok or failure kind).");
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      for (std::size_t k = 0; k < kFailureKinds; ++k) {
        m.sample("upstream_requests_total",
                 {{"upstream", mon->name()},
                  {"target", t.info.url},
                  {"kind", std::string(to_string(static_cast<FailureKind>(k)))}},
                 static_cast<double>(t.by_kind[k]));
      }
    }
  }
  m.family("upstream_request_duration_seconds", "histogram", "Duration of upstream requests.");
  for (const auto* mon : monitors) {
    m.histogram("upstream_request_duration_seconds", {{"upstream", mon->name()}}, mon->latency());
  }
  m.family("upstream_response_time_seconds", "gauge",
           "Moving average of successful response times per target.");
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      if (t.health.response_time_ms) {
        m.sample("upstream_response_time_seconds",
                 {{"upstream", mon->name()}, {"target", t.info.url}},
                 *t.health.response_time_ms / 1000.0);
      }
    }
  }
  m.family("upstream_healthy", "gauge", "1 when the target is healthy.");
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      m.sample("upstream_healthy", {{"upstream", mon->name()}, {"target", t.info.url}},
               t.health.status == HealthStatus::healthy ? 1 : 0);
    }
  }
  m.family("circuit_breaker_state", "gauge", "Breaker per target: 0 closed, 1 half-open, 2 open.");
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      m.sample("circuit_breaker_state", {{"upstream", mon->name()}, {"target", t.info.url}},
               circuit_value(t.health.circuit));
    }
  }
  m.family("upstream_in_use", "gauge", "1 for the Proxmox host and AccountDB endpoint in use.");
  {
    const auto preferred = ctx_.hosts->preferred();
    for (const auto& t : ctx_.proxmox->targets()) {
      m.sample("upstream_in_use", {{"upstream", "proxmox"}, {"target", t.info.url}},
               t.info.url == preferred ? 1 : 0);
    }
    const auto active = ctx_.endpoints->active();
    for (const auto& t : ctx_.accountdb->targets()) {
      m.sample("upstream_in_use", {{"upstream", "accountdb"}, {"target", t.info.url}},
               t.info.url == active ? 1 : 0);
    }
  }
  m.family("failover_events_total", "counter",
           "Changes of the host or endpoint in use since start, by target, kind and status.");
  for (const auto& [key, n] : ctx_.failover_log->counts()) {
    const auto a = key.find('/');
    const auto b = key.find('/', a + 1);
    m.sample("failover_events_total",
             {{"target", key.substr(0, a)},
              {"kind", key.substr(a + 1, b - a - 1)},
              {"status", key.substr(b + 1)}},
             static_cast<double>(n));
  }
  m.family("retry_budget_tokens", "gauge",
           "Retry budget per upstream (10 tokens; retries stop at 5 or fewer).");
  for (const auto& [name, tokens] : ctx_.retry_budgets()) {
    m.sample("retry_budget_tokens", {{"upstream", name}}, tokens);
  }
  m.family("upstream_consecutive_failures", "gauge", "Host failures in a row per target.");
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      m.sample("upstream_consecutive_failures", {{"upstream", mon->name()}, {"target", t.info.url}},
               static_cast<double>(t.health.consecutive_failures));
    }
  }

  if (ctx_.webhooks) {
    const auto hooks = ctx_.webhooks();
    m.family("webhook_events_total", "counter", "Events accepted for the webhook receivers.");
    m.sample("webhook_events_total", static_cast<double>(hooks.published));
    m.family("webhook_deliveries_total", "counter",
             "Webhook deliveries per receiver: delivered, or failed after their retries.");
    for (const auto& r : hooks.receivers) {
      m.sample("webhook_deliveries_total", {{"receiver", r.url}, {"result", "delivered"}},
               static_cast<double>(r.delivered));
      m.sample("webhook_deliveries_total", {{"receiver", r.url}, {"result", "failed"}},
               static_cast<double>(r.failed));
    }
    m.family("webhook_dropped_total", "counter",
             "Webhook events dropped per receiver: queue_full (the oldest, for a newer one) or "
             "rejected (the receiver refused it).");
    for (const auto& r : hooks.receivers) {
      m.sample("webhook_dropped_total", {{"receiver", r.url}, {"reason", "queue_full"}},
               static_cast<double>(r.dropped_queue_full));
      m.sample("webhook_dropped_total", {{"receiver", r.url}, {"reason", "rejected"}},
               static_cast<double>(r.dropped_rejected));
    }
    m.family("webhook_queue_length", "gauge", "Webhook events waiting per receiver.");
    for (const auto& r : hooks.receivers) {
      m.sample("webhook_queue_length", {{"receiver", r.url}}, static_cast<double>(r.queued));
    }
    m.family("webhook_circuit_breaker_state", "gauge",
             "Breaker per webhook receiver: 0 closed, 1 half-open, 2 open.");
    for (const auto& r : hooks.receivers) {
      m.sample("webhook_circuit_breaker_state", {{"receiver", r.url}}, circuit_value(r.circuit));
    }
  }

  const auto current = ctx_.store->current();
  m.family("status", "gauge", "The agent's overall state: 0 ok, 1 warning, 2 error.");
  m.sample("status", current ? static_cast<int>(current->status) : 0);

  const auto server = ctx_.server_stats();
  m.family("http_requests_total", "counter", "Answers of the agent's HTTP API, by status code.");
  for (const auto& [code, n] : ctx_.responses_by_status()) {
    m.sample("http_requests_total", {{"code", std::to_string(code)}}, static_cast<double>(n));
  }
  m.family("http_connections_open", "gauge", "Open connections to the agent's HTTP API.");
  m.sample("http_connections_open", static_cast<double>(server.connections_open));
  m.family("http_connections_rejected_total", "counter",
           "Connections refused, or idle or slow ones closed to make room, at the connection cap.");
  m.sample("http_connections_rejected_total", static_cast<double>(server.connections_rejected));
  m.family("http_bad_requests_total", "counter", "Malformed or oversized requests refused.");
  m.sample("http_bad_requests_total", static_cast<double>(server.bad_requests));

  const auto p = read_process_stats();
  if (p.rss_bytes) {
    m.family("process_resident_memory_bytes", "gauge", "Resident memory of the agent.");
    m.sample("process_resident_memory_bytes", static_cast<double>(*p.rss_bytes));
  }
  if (p.open_fds) {
    m.family("process_open_fds", "gauge", "Open file descriptors of the agent.");
    m.sample("process_open_fds", static_cast<double>(*p.open_fds));
  }
  if (p.max_fds) {
    m.family("process_max_fds", "gauge", "The agent's limit of open file descriptors.");
    m.sample("process_max_fds", static_cast<double>(*p.max_fds));
  }
  if (p.cpu_seconds) {
    m.family("process_cpu_seconds_total", "counter", "CPU time the agent used, user and system.");
    m.sample("process_cpu_seconds_total", *p.cpu_seconds);
  }
  return m.text();
}

}  // namespace pha
