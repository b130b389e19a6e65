// GET /metrics: the Prometheus text of docs/http-api.md "GET /metrics", one
// section per part of the agent. States are state sets (one series per state,
// 1 for the current one, every state always present); times are Unix
// timestamps, 0 before the first event.

#include <array>
#include <span>

#include "agent/http/api.hpp"
#include "agent/platform/process_stats.hpp"

namespace pha {

namespace {

constexpr std::array<std::string_view, 3> kHealthStates = {"healthy", "unhealthy", "unknown"};
constexpr std::array<std::string_view, 3> kCircuitStates = {"closed", "half_open", "open"};
constexpr std::array<std::string_view, 4> kAgentStates = {"starting", "ok", "warning", "error"};

double count(std::integral auto n) {
  return static_cast<double>(n);
}

// One series per state, labelled `state`: 1 for `current`, 0 for the others.
void state_set(MetricsWriter& m, std::string_view name, Labels labels,
               std::span<const std::string_view> states, std::string_view current) {
  labels.emplace_back("state", "");
  for (const auto s : states) {
    labels.back().second = std::string(s);
    m.sample(name, labels, s == current ? 1 : 0);
  }
}

// The target in use of an upstream, as /status shows it.
std::string in_use(const ApiContext& ctx, const UpstreamMonitor& mon) {
  if (&mon == ctx.proxmox) {
    return ctx.hosts->preferred();
  }
  auto active = ctx.endpoints->active();
  const auto s = ctx.settings();
  if (active.empty() && !s->accountdb_endpoints.empty()) {
    active = s->accountdb_endpoints.front().url.str();  // nothing answered yet
  }
  return active;
}

void sync_metrics(MetricsWriter& m, const ApiContext& ctx, const SyncInfo& sync) {
  m.family("sync_cycles_total", "counter", "Sync cycles finished, by result.");
  m.sample("sync_cycles_total", {{"result", "ok"}}, count(sync.totals.cycles_ok));
  m.sample("sync_cycles_total", {{"result", "warning"}}, count(sync.totals.cycles_warning));
  m.sample("sync_cycles_total", {{"result", "error"}}, count(sync.totals.cycles_error));
  m.family("sync_cycle_duration_seconds", "histogram", "Duration of sync cycles.");
  m.histogram("sync_cycle_duration_seconds", {}, ctx.store->cycle_durations());
  m.family("sync_consecutive_failures", "gauge", "Sync cycles failed in a row.");
  m.sample("sync_consecutive_failures", count(sync.consecutive_failures));
  m.family("sync_in_progress", "gauge", "1 while a sync cycle runs.");
  m.sample("sync_in_progress", ctx.loop().syncing ? 1 : 0);
  m.family("sync_interval_seconds", "gauge", "UPDATE_INTERVAL: seconds between sync cycles.");
  m.sample("sync_interval_seconds", count(ctx.settings()->update_interval));
  m.family("sync_last_success_timestamp_seconds", "gauge",
           "Unix time the last successful sync cycle ended; 0 before the first.");
  m.sample("sync_last_success_timestamp_seconds", count(sync.last_sync_time.value_or(0)));
  m.family("sync_last_attempt_timestamp_seconds", "gauge",
           "Unix time the last sync cycle ended, whatever its result; 0 before the first.");
  m.sample("sync_last_attempt_timestamp_seconds", count(sync.last_attempt_time.value_or(0)));

  const auto stats = sync.last_stats.value_or(CycleStats{});
  m.family("guests_seen", "gauge", "Guests of this node in the last Proxmox read.");
  m.sample("guests_seen", count(stats.total_proxmox_vms));
  m.family("guests_filtered", "gauge", "Guests the whitelist left out in the last cycle.");
  m.sample("guests_filtered", count(stats.filtered));
  m.family("guests_written_total", "counter", "Guests written to AccountDB, by kind of write.");
  m.sample("guests_written_total", {{"kind", "created"}}, count(sync.totals.created));
  m.sample("guests_written_total", {{"kind", "updated"}}, count(sync.totals.updated));
  m.sample("guests_written_total", {{"kind", "marked_missing"}}, count(sync.totals.marked_missing));
  m.family("guest_write_errors_total", "counter", "Writes to AccountDB that failed.");
  m.sample("guest_write_errors_total", count(sync.totals.write_errors));
}

// Change-driven sync (docs/sync.md "Changes seen between cycles").
void change_metrics(MetricsWriter& m, const ApiContext& ctx) {
  const auto c = ctx.changes ? ctx.changes() : ChangeStatus{};
  m.family("sync_behind_seconds", "gauge",
           "How far AccountDB is believed to be behind Proxmox: the age of the oldest change "
           "seen and not yet synced (0 when none is pending).");
  m.sample("sync_behind_seconds", c.behind_seconds);
  m.family("changes_seen_total", "counter",
           "Guest changes seen between cycles, by signal: a task that ended, or a status or "
           "name in /cluster/resources.");
  m.sample("changes_seen_total", {{"signal", "task"}}, count(c.task_changes));
  m.sample("changes_seen_total", {{"signal", "status"}}, count(c.status_changes));
  m.family("change_cycles_total", "counter", "Cycles started by a change seen.");
  m.sample("change_cycles_total", count(c.cycles));
  m.family("change_polls_total", "counter",
           "Reads of /cluster/tasks and /cluster/resources for changes, by result.");
  m.sample("change_polls_total", {{"result", "ok"}}, count(c.polls - c.poll_errors));
  m.sample("change_polls_total", {{"result", "error"}}, count(c.poll_errors));
}

// What the agent believes of its answers (docs/sync.md "Evidence"): whether
// the last read counted towards gone guests, the guests hidden from the
// user or token, what the change brake holds, and values clamped.
void trust_metrics(MetricsWriter& m, const ApiContext& ctx, const SyncInfo& sync) {
  m.family("sync_read_complete", "gauge",
           "1 when the last read of the node showed every guest (a guest missing from it counts "
           "as gone), 0 when it did not (see /status sync.read.reason).");
  m.sample("sync_read_complete", sync.read_counts_for_missing ? 1 : 0);
  m.family("sync_hidden_guests", "gauge",
           "Rows whose guest is gone from the read but hidden from the Proxmox user or token: "
           "never marked.");
  m.sample("sync_hidden_guests", count(sync.hidden.size()));
  std::int64_t creates = 0;
  std::int64_t marks = 0;
  for (const auto& h : sync.held.holds) {
    (h.kind == RequestKind::create ? creates : marks) += static_cast<std::int64_t>(h.vmids.size());
  }
  m.family("sync_held_changes", "gauge",
           "Creates and deleted marks the change brake holds after the last cycle, by kind.");
  m.sample("sync_held_changes", {{"kind", "create"}}, count(creates));
  m.sample("sync_held_changes", {{"kind", "mark_deleted"}}, count(marks));
  m.family("sync_held_cycles_total", "counter",
           "Sync cycles whose changes the brake held in part.");
  m.sample("sync_held_cycles_total", count(sync.held_cycles));
  m.family("proxmox_values_clamped_total", "counter",
           "Proxmox list entries with an out-of-range value clamped (a container's CPU share "
           "dips below zero), by field.");
  const auto clamped =
      ctx.proxmox_clamped ? ctx.proxmox_clamped() : std::map<std::string, std::uint64_t>{};
  for (const auto* field : {"cpu", "cpus", "maxcpu", "maxmem", "maxdisk", "uptime"}) {
    const auto it = clamped.find(field);
    m.sample("proxmox_values_clamped_total", {{"field", field}},
             count(it == clamped.end() ? std::uint64_t{0} : it->second));
  }
}

void whitelist_metrics(MetricsWriter& m, const ApiContext& ctx, const SyncInfo& sync) {
  const auto w = ctx.whitelist_status();
  m.family("whitelist_size", "gauge", "VMIDs in the whitelist in use.");
  m.sample("whitelist_size", count(w.count));
  m.family("whitelist_enabled", "gauge", "1 when the whitelist filters guests.");
  m.sample("whitelist_enabled", w.enabled ? 1 : 0);
  m.family("whitelist_stale", "gauge", "1 when the whitelist in use could not be refreshed.");
  m.sample("whitelist_stale", w.stale ? 1 : 0);
  m.family("whitelist_last_update_timestamp_seconds", "gauge",
           "Unix time the whitelist in use was fetched; 0 before the first.");
  m.sample("whitelist_last_update_timestamp_seconds", count(w.last_updated));
  m.family("heartbeat_last_success_timestamp_seconds", "gauge",
           "Unix time AccountDB last accepted a heartbeat or connection check; 0 before the "
           "first.");
  m.sample("heartbeat_last_success_timestamp_seconds", count(sync.last_heartbeat_ok.value_or(0)));
}

// One gauge with a sample per target of both upstreams.
template <class Value>
void per_target(MetricsWriter& m, const std::vector<const UpstreamMonitor*>& monitors,
                const char* name, const char* help, Value value) {
  m.family(name, "gauge", help);
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      if (const std::optional<double> v = value(*mon, t)) {
        m.sample(name, {{"upstream", mon->name()}, {"target", t.info.url}}, *v);
      }
    }
  }
}

// One state set per target of both upstreams.
template <class State>
void per_target_state(MetricsWriter& m, const std::vector<const UpstreamMonitor*>& monitors,
                      const char* name, const char* help, std::span<const std::string_view> states,
                      State state) {
  m.family(name, "gauge", help);
  for (const auto* mon : monitors) {
    for (const auto& t : mon->targets()) {
      state_set(m, name, {{"upstream", mon->name()}, {"target", t.info.url}}, states,
                state(*mon, t));
    }
  }
}

void upstream_metrics(MetricsWriter& m, const ApiContext& ctx) {
  const std::vector<const UpstreamMonitor*> monitors = {ctx.proxmox, ctx.accountdb};
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
                 count(t.by_kind[k]));
      }
    }
  }
  m.family("upstream_request_duration_seconds", "histogram", "Duration of upstream requests.");
  for (const auto* mon : monitors) {
    m.histogram("upstream_request_duration_seconds", {{"upstream", mon->name()}}, mon->latency());
  }
  per_target(m, monitors, "upstream_response_time_seconds",
             "Moving average of successful response times per target.",
             [](const UpstreamMonitor&, const TargetView& t) -> std::optional<double> {
               if (!t.health.response_time_ms) {
                 return std::nullopt;
               }
               return *t.health.response_time_ms / 1000.0;
             });
  per_target_state(m, monitors, "upstream_health",
                   "Health of each target: 1 for its state (healthy, unhealthy, unknown), "
                   "probed, seen in requests or reported by the cluster, as /status shows it.",
                   kHealthStates,
                   [](const UpstreamMonitor&, const TargetView& t) { return to_string(t.state); });
  per_target_state(
      m, monitors, "circuit_breaker_state",
      "Breaker of each target: 1 for its state (closed, half_open, open).", kCircuitStates,
      [](const UpstreamMonitor&, const TargetView& t) { return to_string(t.health.circuit); });
  const std::vector<std::string> used = {in_use(ctx, *ctx.proxmox), in_use(ctx, *ctx.accountdb)};
  per_target(m, monitors, "upstream_in_use",
             "1 for the Proxmox host and AccountDB endpoint in use.",
             [&](const UpstreamMonitor& mon, const TargetView& t) -> std::optional<double> {
               return t.info.url == used[&mon == ctx.proxmox ? 0 : 1] ? 1 : 0;
             });
  per_target(m, monitors, "upstream_consecutive_failures", "Host failures in a row per target.",
             [](const UpstreamMonitor&, const TargetView& t) -> std::optional<double> {
               return count(t.health.consecutive_failures);
             });
}

void redundancy_metrics(MetricsWriter& m, const ApiContext& ctx) {
  const std::vector<const UpstreamMonitor*> monitors = {ctx.proxmox, ctx.accountdb};
  m.family("upstream_targets", "gauge", "Targets known per upstream.");
  for (const auto* mon : monitors) {
    m.sample("upstream_targets", {{"upstream", mon->name()}}, count(mon->targets().size()));
  }
  m.family("upstream_degraded", "gauge",
           "1 when an upstream's redundancy is degraded: fewer than half of its targets "
           "healthy, the one in use unhealthy, or no healthy backup.");
  for (const auto* mon : monitors) {
    const bool degraded = redundancy_of(mon->targets(), in_use(ctx, *mon)).degraded;
    m.sample("upstream_degraded", {{"upstream", mon->name()}}, degraded ? 1 : 0);
  }
}

void failover_metrics(MetricsWriter& m, const ApiContext& ctx) {
  m.family("proxmox_failover_active", "gauge",
           "1 while the Proxmox host in use is not the primary (PROXMOX_HOST).");
  m.sample("proxmox_failover_active", ctx.hosts->preferred() != ctx.hosts->primary() ? 1 : 0);
  m.family("failover_events_total", "counter",
           "Changes of the host or endpoint in use since start, by target, kind and status.");
  for (const auto& [key, n] : ctx.failover_log->counts()) {
    const auto a = key.find('/');
    const auto b = key.find('/', a + 1);
    m.sample("failover_events_total",
             {{"target", key.substr(0, a)},
              {"kind", key.substr(a + 1, b - a - 1)},
              {"status", key.substr(b + 1)}},
             count(n));
  }
  m.family("retry_budget_tokens", "gauge",
           "Retry budget per upstream (10 tokens; retries stop at 5 or fewer).");
  for (const auto& [name, tokens] : ctx.retry_budgets()) {
    m.sample("retry_budget_tokens", {{"upstream", name}}, tokens);
  }
  if (!ctx.hedges) {
    return;
  }
  m.family("hedges_total", "counter",
           "Hedged requests per upstream: sent, won (their answer was used), refused (the "
           "budget was spent).");
  for (const auto& [name, h] : ctx.hedges()) {
    m.sample("hedges_total", {{"upstream", name}, {"result", "sent"}}, count(h.sent));
    m.sample("hedges_total", {{"upstream", name}, {"result", "won"}}, count(h.won));
    m.sample("hedges_total", {{"upstream", name}, {"result", "refused"}}, count(h.refused));
  }
}

void webhook_metrics(MetricsWriter& m, const WebhookStats& hooks) {
  m.family("webhook_events_total", "counter", "Events accepted for the webhook receivers.");
  m.sample("webhook_events_total", count(hooks.published));
  m.family("webhook_deliveries_total", "counter",
           "Webhook deliveries per receiver: delivered, or failed after their retries.");
  for (const auto& r : hooks.receivers) {
    m.sample("webhook_deliveries_total", {{"receiver", r.url}, {"result", "delivered"}},
             count(r.delivered));
    m.sample("webhook_deliveries_total", {{"receiver", r.url}, {"result", "failed"}},
             count(r.failed));
  }
  m.family("webhook_dropped_total", "counter",
           "Webhook events dropped per receiver: queue_full (the oldest, for a newer one) or "
           "rejected (the receiver refused it).");
  for (const auto& r : hooks.receivers) {
    m.sample("webhook_dropped_total", {{"receiver", r.url}, {"reason", "queue_full"}},
             count(r.dropped_queue_full));
    m.sample("webhook_dropped_total", {{"receiver", r.url}, {"reason", "rejected"}},
             count(r.dropped_rejected));
  }
  m.family("webhook_queue_length", "gauge", "Webhook events waiting per receiver.");
  for (const auto& r : hooks.receivers) {
    m.sample("webhook_queue_length", {{"receiver", r.url}}, count(r.queued));
  }
  m.family("webhook_circuit_breaker_state", "gauge",
           "Breaker of each webhook receiver: 1 for its state (closed, half_open, open).");
  for (const auto& r : hooks.receivers) {
    state_set(m, "webhook_circuit_breaker_state", {{"receiver", r.url}}, kCircuitStates,
              to_string(r.circuit));
  }
}

void server_metrics(MetricsWriter& m, const ApiContext& ctx) {
  const auto server = ctx.server_stats();
  m.family("http_requests_total", "counter", "Answers of the agent's HTTP API, by status code.");
  for (const auto& [code, n] : ctx.responses_by_status()) {
    m.sample("http_requests_total", {{"code", std::to_string(code)}}, count(n));
  }
  m.family("http_connections_open", "gauge", "Open connections to the agent's HTTP API.");
  m.sample("http_connections_open", count(server.connections_open));
  m.family("http_connections_rejected_total", "counter",
           "Connections refused, or idle or slow ones closed to make room, at the connection cap.");
  m.sample("http_connections_rejected_total", count(server.connections_rejected));
  m.family("http_bad_requests_total", "counter", "Malformed or oversized requests refused.");
  m.sample("http_bad_requests_total", count(server.bad_requests));
  m.family("http_tls_reload_failures_total", "counter",
           "Reloads whose TLS certificate and key did not load; the old ones stay in use.");
  m.sample("http_tls_reload_failures_total", count(server.tls_reload_failures));
}

// The standard process families, unprefixed (`m` has no prefix).
void process_metrics(MetricsWriter& m, const ApiContext& ctx) {
  m.family("process_start_time_seconds", "gauge", "Unix time the agent started.");
  m.sample("process_start_time_seconds", count(ctx.started_at));
  const auto p = read_process_stats();
  if (p.rss_bytes) {
    m.family("process_resident_memory_bytes", "gauge", "Resident memory of the agent.");
    m.sample("process_resident_memory_bytes", count(*p.rss_bytes));
  }
  if (p.virtual_bytes) {
    m.family("process_virtual_memory_bytes", "gauge", "Virtual memory of the agent.");
    m.sample("process_virtual_memory_bytes", count(*p.virtual_bytes));
  }
  if (p.open_fds) {
    m.family("process_open_fds", "gauge", "Open file descriptors of the agent.");
    m.sample("process_open_fds", count(*p.open_fds));
  }
  if (p.max_fds) {
    m.family("process_max_fds", "gauge", "The agent's limit of open file descriptors.");
    m.sample("process_max_fds", count(*p.max_fds));
  }
  if (p.cpu_seconds) {
    m.family("process_cpu_seconds_total", "counter", "CPU time the agent used, user and system.");
    m.sample("process_cpu_seconds_total", *p.cpu_seconds);
  }
}

}  // namespace

std::string Api::metrics_text() const {
  const auto sync = ctx_.store->sync();
  MetricsWriter m;
  m.family("build_info", "gauge", "The agent's version.");
  m.sample("build_info", {{"version", ctx_.version}}, 1);
  // The same verdict as GET /health.
  const auto live =
      evaluate_liveness(ctx_.loop(), ctx_.server_stats(), *ctx_.settings(), ctx_.clock->now());
  m.family("live", "gauge", "1 while GET /health answers 200, 0 while it answers 503.");
  m.sample("live", live.ok ? 1 : 0);
  sync_metrics(m, ctx_, sync);
  trust_metrics(m, ctx_, sync);
  change_metrics(m, ctx_);
  whitelist_metrics(m, ctx_, sync);
  upstream_metrics(m, ctx_);
  redundancy_metrics(m, ctx_);
  failover_metrics(m, ctx_);
  if (ctx_.webhooks) {
    webhook_metrics(m, ctx_.webhooks());
  }
  const auto current = ctx_.store->current();
  m.family("status", "gauge",
           "The agent's overall state: 1 for the current one (starting, ok, warning, error).");
  state_set(m, "status", {}, kAgentStates, current ? to_string(current->status) : "starting");
  server_metrics(m, ctx_);
  MetricsWriter process("");
  process_metrics(process, ctx_);
  return m.text() + process.text();
}

}  // namespace pha
