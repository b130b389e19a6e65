// GET /metrics: the Prometheus text of docs/http-api.md "GET /metrics", one
// section per part of the agent.

#include "agent/http/api.hpp"
#include "agent/platform/process_stats.hpp"

namespace pha {

namespace {

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

double count(std::integral auto n) {
  return static_cast<double>(n);
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
  if (sync.last_sync_time) {
    m.family("sync_last_success_timestamp_seconds", "gauge",
             "Unix time the last successful sync cycle ended.");
    m.sample("sync_last_success_timestamp_seconds", count(*sync.last_sync_time));
  }

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

void whitelist_metrics(MetricsWriter& m, const ApiContext& ctx, const SyncInfo& sync,
                       std::int64_t now) {
  const auto w = ctx.whitelist_status();
  m.family("whitelist_size", "gauge", "VMIDs in the whitelist in use.");
  m.sample("whitelist_size", count(w.count));
  m.family("whitelist_enabled", "gauge", "1 when the whitelist filters guests.");
  m.sample("whitelist_enabled", w.enabled ? 1 : 0);
  m.family("whitelist_stale", "gauge", "1 when the whitelist in use could not be refreshed.");
  m.sample("whitelist_stale", w.stale ? 1 : 0);
  if (w.last_updated != 0) {
    m.family("whitelist_age_seconds", "gauge", "Age of the whitelist in use.");
    m.sample("whitelist_age_seconds", count(now - w.last_updated));
  }
  if (sync.last_heartbeat_ok) {
    m.family("heartbeat_age_seconds", "gauge",
             "Seconds since AccountDB last accepted a heartbeat or connection check.");
    m.sample("heartbeat_age_seconds", count(now - *sync.last_heartbeat_ok));
  }
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
  per_target(m, monitors, "upstream_healthy", "1 when the target is healthy.",
             [](const UpstreamMonitor&, const TargetView& t) -> std::optional<double> {
               return t.health.status == HealthStatus::healthy ? 1 : 0;
             });
  per_target(m, monitors, "circuit_breaker_state",
             "Breaker per target: 0 closed, 1 half-open, 2 open.",
             [](const UpstreamMonitor&, const TargetView& t) -> std::optional<double> {
               return circuit_value(t.health.circuit);
             });
  const auto preferred = ctx.hosts->preferred();
  const auto active = ctx.endpoints->active();
  per_target(m, monitors, "upstream_in_use",
             "1 for the Proxmox host and AccountDB endpoint in use.",
             [&](const UpstreamMonitor& mon, const TargetView& t) -> std::optional<double> {
               return t.info.url == (&mon == ctx.proxmox ? preferred : active) ? 1 : 0;
             });
  per_target(m, monitors, "upstream_consecutive_failures", "Host failures in a row per target.",
             [](const UpstreamMonitor&, const TargetView& t) -> std::optional<double> {
               return count(t.health.consecutive_failures);
             });
}

void failover_metrics(MetricsWriter& m, const ApiContext& ctx) {
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
           "Breaker per webhook receiver: 0 closed, 1 half-open, 2 open.");
  for (const auto& r : hooks.receivers) {
    m.sample("webhook_circuit_breaker_state", {{"receiver", r.url}}, circuit_value(r.circuit));
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
}

void process_metrics(MetricsWriter& m) {
  const auto p = read_process_stats();
  if (p.rss_bytes) {
    m.family("process_resident_memory_bytes", "gauge", "Resident memory of the agent.");
    m.sample("process_resident_memory_bytes", count(*p.rss_bytes));
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
  m.family("start_time_seconds", "gauge", "Unix time the agent started.");
  m.sample("start_time_seconds", count(ctx_.started_at));
  sync_metrics(m, ctx_, sync);
  whitelist_metrics(m, ctx_, sync, ctx_.clock->unix_now());
  upstream_metrics(m, ctx_);
  failover_metrics(m, ctx_);
  if (ctx_.webhooks) {
    webhook_metrics(m, ctx_.webhooks());
  }
  const auto current = ctx_.store->current();
  m.family("status", "gauge", "The agent's overall state: 0 ok, 1 warning, 2 error.");
  m.sample("status", current ? static_cast<int>(current->status) : 0);
  server_metrics(m, ctx_);
  process_metrics(m);
  return m.text();
}

}  // namespace pha
