#include "agent/app/components.hpp"

#include <algorithm>
#include <optional>

#include "agent/app/peer_ask.hpp"
#include "agent/config/docs.hpp"
#include "agent/core/version.hpp"
#include "agent/notify/webhook_options.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/memory.hpp"
#include "agent/platform/systemd.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

namespace {

LoopTimings loop_timings(const Settings& s) {
  return {std::chrono::seconds(s.update_interval), std::chrono::seconds(s.heartbeat_interval),
          std::chrono::seconds(s.retry_max_delay)};
}

ChangeTimings change_timings(const Settings& s) {
  const auto seconds = [](double v) {
    return std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(v));
  };
  ChangeTimings t;
  t.poll = seconds(s.change_poll_interval);
  t.settle = seconds(s.change_settle);
  t.min_interval = seconds(s.change_min_interval);
  return t;
}

std::string state_path_of(const Settings& s, const std::string& name) {
  return s.state_dir.empty() ? std::string() : s.state_dir + "/" + name;
}

http::ServerOptions server_options(const Settings& s) {
  http::ServerOptions o;
  o.bind_address = s.bind_address;
  o.port = s.port;
  o.tls_cert_file = s.tls_cert_file;
  o.tls_key_file = s.tls_key_file;
  return o;
}

void log_cycle(const CycleReport& r) {
  const log::Fields fields = {{"status", r.status},
                              {"created", r.stats.created},
                              {"updated", r.stats.updated},
                              {"unchanged", r.stats.unchanged},
                              {"marked_missing", r.stats.marked_missing},
                              {"filtered", r.stats.filtered},
                              {"errors", r.stats.errors},
                              {"guests", r.stats.total_proxmox_vms},
                              {"duration_ms", r.stats.duration_ms},
                              {"accountdb_requests", r.stats.accountdb_requests},
                              {"proxmox_requests", r.stats.proxmox_requests}};
  if (r.status == Severity::error) {
    log::error("sync_failed", r.message, fields);
  } else if (r.status == Severity::warning) {
    log::warn("sync_cycle", r.message, fields);
  } else {
    log::info("sync_cycle", r.message, fields);
  }
}

// What the overall state still waits for at start (docs/http-api.md "GET
// /status"): a finished cycle, and a known state of each Proxmox host the
// health round probes and of each AccountDB endpoint.
std::optional<std::string> waiting_for(bool cycled, const std::vector<TargetView>& hosts,
                                       const std::vector<TargetView>& endpoints) {
  if (!cycled) {
    return "the first sync cycle";
  }
  for (const auto& h : hosts) {
    if (h.probed && h.state == HealthStatus::unknown) {
      return "the health checks of Proxmox host " + h.info.url;
    }
  }
  for (const auto& e : endpoints) {
    if (e.state == HealthStatus::unknown) {
      return "the checks of AccountDB endpoint " + e.info.url;
    }
  }
  return std::nullopt;
}

// A side with more than one target whose redundancy is degraded
// (redundancy_of) makes the overall state a warning; a single host or
// endpoint has no redundancy to lose (its failure is an error of its own).
std::string degraded_text(const std::vector<TargetView>& hosts, const std::string& host_in_use,
                          const std::vector<TargetView>& endpoints,
                          const std::string& endpoint_in_use) {
  const auto side = [](const std::vector<TargetView>& targets, const std::string& in_use,
                       const std::string& what) -> std::string {
    if (targets.size() < 2 || !redundancy_of(targets, in_use).degraded) {
      return "";
    }
    const auto healthy = std::count_if(targets.begin(), targets.end(), [](const TargetView& t) {
      return t.state == HealthStatus::healthy;
    });
    return what + " redundancy degraded: " + std::to_string(healthy) + " of " +
           std::to_string(targets.size()) + " healthy";
  };
  auto text = side(hosts, host_in_use, "Proxmox");
  const auto accountdb = side(endpoints, endpoint_in_use, "AccountDB");
  if (!accountdb.empty()) {
    text += (text.empty() ? "" : "; ") + accountdb;
  }
  return text;
}

// A target's health or breaker changed: the log, and the status history.
// The target in use failing is an error; a backup failing is a warning
// (redundancy is lost, the work goes on).
void on_target_change(StatusStore& store, StatusComponent component, const TargetChange& c,
                      const std::string& in_use) {
  const bool proxmox = component == StatusComponent::proxmox;
  const std::string what = (proxmox ? "Proxmox host " : "AccountDB endpoint ") + c.url;
  const auto& a = c.after;
  const auto error = a.last_error.value_or("no answer");
  const auto severity = c.url == in_use ? Severity::error : Severity::warning;
  if (a.circuit == CircuitState::open && c.before.circuit != CircuitState::open) {
    log::warn("circuit_opened", what + ": circuit open after repeated failures",
              {{"upstream", c.upstream}, {"target", c.url}, {"error", error}});
    store.set_state(component, severity, what + ": circuit open: " + error);
  } else if (a.status == HealthStatus::unhealthy && c.before.status != HealthStatus::unhealthy) {
    log::warn("target_unhealthy", what + " is unhealthy",
              {{"upstream", c.upstream}, {"target", c.url}, {"error", error}});
    store.set_state(component, severity, what + " is unhealthy: " + error);
  } else if (a.status == HealthStatus::healthy && c.before.status == HealthStatus::unhealthy) {
    log::info("target_healthy", what + " is healthy",
              {{"upstream", c.upstream}, {"target", c.url}});
    store.set_state(component, Severity::ok, what + " is healthy");
  }
}

// The failure kind an automatic failover's reason starts with ("timeout on
// https://...: ..."), for ERROR_KIND in the journal.
std::optional<std::string> failure_kind_of(const std::string& reason) {
  const auto word = reason.substr(0, reason.find(' '));
  for (const auto k :
       {FailureKind::network, FailureKind::timeout, FailureKind::tls, FailureKind::server,
        FailureKind::rate_limited, FailureKind::auth, FailureKind::client}) {
    if (word == to_string(k)) {
      return word;
    }
  }
  return std::nullopt;
}

// A change of the host or endpoint in use: persisted, logged, and in the
// status history. Returns it as stored (with its id).
FailoverEvent on_failover(FailoverLog& events, StatusStore& store, const FailoverEvent& e) {
  auto stored = events.record(e);
  const bool proxmox = e.target == FailoverTarget::proxmox;
  const auto component = proxmox ? StatusComponent::proxmox : StatusComponent::accountdb;
  const std::string what = proxmox ? "Proxmox host" : "AccountDB endpoint";
  log::Fields fields = {
      {"upstream", to_string(e.target)},    {"target", e.to},     {"from", e.from}, {"to", e.to},
      {"failover_kind", to_string(e.kind)}, {"reason", e.reason}, {"id", stored.id}};
  if (const auto kind = failure_kind_of(e.reason)) {
    fields.push_back({"kind", *kind});
  }
  if (e.kind == FailoverKind::automatic) {
    log::warn("failover", what + " failover to " + e.to, fields);
    store.set_state(component, Severity::warning,
                    "failed over to " + what + " " + e.to + ": " + e.reason);
  } else if (e.kind == FailoverKind::recovery) {
    log::info("failover", what + " back to " + e.to, fields);
    store.set_state(component, Severity::ok, "back on " + what + " " + e.to);
  } else {
    log::info("failover", what + " changed by an operator to " + e.to, fields);
    store.set_state(component, Severity::ok, what + " " + e.to + " chosen by an operator");
  }
  return stored;
}

}  // namespace

Components::Components(const LiveSettings& live, Clock& clock_in, Interrupt& interrupt,
                       RunOptions run_in)
    : settings(live),
      clock(clock_in),
      run(run_in),
      store(clock, live.read([](const Settings& s) {
        return static_cast<std::size_t>(s.status_history_size);
      })),
      failover_log(state_path_of(*live.get(), "failover-events.json")),
      webhooks(live.read(webhook_options), webhook_http_client(*live.get()), clock,
               [this] { return node_name(); }, {}),
      notifier(webhooks, live.read([](const Settings& s) { return s.webhook_sync_failures; })),
      proxmox(live, clock, interrupt, [this](const FailoverEvent& e) { failover(e); }),
      accountdb(live, clock, interrupt, [this](const FailoverEvent& e) { failover(e); }),
      engine(live, proxmox.client(), accountdb.client(), clock),
      loop(engine, accountdb.client(), clock, live.read(loop_timings), run.dry_run,
           [this](const CycleReport& r) { on_cycle(r); }),
      changes(proxmox.client(), loop, clock, live.read(change_timings)),
      checker(
          clock,
          [this] {
            proxmox.health_round();
            accountdb.recovery_round();
            check_redundancy();  // discovery may have changed the hosts
          },
          live.read(
              [](const Settings& s) { return std::chrono::seconds(s.health_check_interval); })),
      reload_(live.on_replace([this] {
        // An operator who reloads has usually just fixed something: sync now
        // (after a running cycle, which began with the old settings).
        loop.reload();
        checker.reschedule();
      })) {
  engine.set_peer_ask(make_peer_ask(live));
  engine.set_gone_by_task([this] { return changes.gone_by_task(); });
  proxmox.monitor().set_change_observer([this](const TargetChange& c) {
    on_target_change(store, StatusComponent::proxmox, c, proxmox.hosts().preferred());
    check_redundancy();
  });
  accountdb.monitor().set_change_observer([this](const TargetChange& c) {
    on_target_change(store, StatusComponent::accountdb, c, accountdb.pool().active());
    check_redundancy();
  });
  for (auto* m : {&proxmox.monitor(), &accountdb.monitor()}) {
    m->set_outcome_observer([this, m](const std::string& target, const Observation& o) {
      notifier.outcome(m->name(), target, o);
    });
  }
  loop.set_cycle_start_observer([this] { changes.cycle_started(); });
  loop.set_heartbeat_observer([this](bool ok) {
    if (ok) {
      store.record_heartbeat();
    }
  });
}

void Components::failover(const FailoverEvent& e) {
  notifier.failover(on_failover(failover_log, store, e));
}

void Components::load_state() {
  for (const auto& note : failover_log.load()) {
    log::warn("state_loaded", note);
  }
  for (const auto& note : engine.load_state()) {
    log::info("state_loaded", note);
  }
}

CycleReport Components::run_once() {
  auto report = engine.run_cycle(run.dry_run);
  log_cycle(report);
  return report;
}

std::string Components::node_name() const {
  if (auto configured = settings.get()->node_name; !configured.empty()) {
    return configured;
  }
  const auto v = store.vms();
  return v ? v->node : std::string();
}

std::string Components::accountdb_in_use() {
  auto active = accountdb.pool().active();
  return active.empty() ? settings.get()->accountdb_endpoints.front().url.str() : active;
}

void Components::check_redundancy() {
  const auto hosts = proxmox.monitor().targets();
  const auto host_in_use = proxmox.hosts().preferred();
  const auto endpoints = accountdb.monitor().targets();
  const auto endpoint_in_use = accountdb_in_use();
  notifier.redundancy("proxmox", hosts, host_in_use);
  notifier.redundancy("accountdb", endpoints, endpoint_in_use);
  const bool cycled = store.sync().last_attempt_time.has_value();
  if (const auto waiting = waiting_for(cycled, hosts, endpoints)) {
    store.set_state(StatusComponent::startup, Severity::starting, "waiting for " + *waiting);
  } else {
    store.clear_state(StatusComponent::startup);
  }
  const auto degraded = degraded_text(hosts, host_in_use, endpoints, endpoint_in_use);
  if (!degraded.empty()) {
    store.set_state(StatusComponent::redundancy, Severity::warning, degraded);
  } else {
    store.clear_state(StatusComponent::redundancy);
  }
  publish_status(false);
}

void Components::publish_status(bool after_cycle) {
  const auto current = store.current();
  const auto sync = store.sync();
  const auto stats = sync.last_stats.value_or(CycleStats{});
  const systemd::CycleSummary summary{
      .status = current ? current->status : Severity::starting,
      .message = current ? current->message : "waiting for the first sync cycle",
      .dry_run = run.dry_run,
      .guests = stats.total_proxmox_vms,
      .changes = stats.created + stats.updated + stats.marked_missing,
      .next_in_s = loop.next_cycle_at() - clock.unix_now()};
  const auto state = std::string(to_string(summary.status)) + summary.message;
  std::lock_guard lock(status_mutex_);
  // Between cycles only a change of the state is worth a line.
  if (!after_cycle && state == published_state_) {
    return;
  }
  published_state_ = state;
  systemd::notify_status(systemd::status_line(summary, settings.get()->secrets()));
}

// On the loop's thread, after each cycle.
void Components::on_cycle(const CycleReport& r) {
  changes.cycle_ended(r.success);
  log_cycle(r);
  // Before the cycle shows in /status: its events are queued by then.
  notifier.cycle(r.success, r.message, r.finished_at);
  if (r.accounts && !r.dry_run) {  // a cycle that planned
    auto fields = to_json(r.held);
    notifier.hold(r.held.id, fields.is_null() ? nlohmann::json::object() : fields);
  }
  for (const auto& n : r.not_handed_over) {
    notifier.not_handed_over(
        {{"vmid", n.vmid},
         {"from", n.failure.from},
         {"to", r.node},
         {"row_id", n.failure.row_id ? nlohmann::json(*n.failure.row_id) : nlohmann::json(nullptr)},
         {"reason", n.failure.why}});
  }
  store.record_cycle(r);
  if (r.owner_id) {
    owner_id_ = *r.owner_id;
  }
  check_redundancy();  // the first cycle may end the start
  publish_status(true);
  const auto heap = release_free_memory();
  log::debug("heap_trimmed", "free heap pages handed back after the cycle",
             {{"in_use_bytes", heap.in_use}, {"free_bytes", heap.free}});
}

LoopState Components::loop_state() const {
  return {loop.running(), loop.syncing(), loop.next_cycle_at(), loop.last_progress()};
}

ApiContext Components::api_context(const http::Server& server) {
  ApiContext ctx;
  ctx.clock = &clock;
  ctx.store = &store;
  ctx.proxmox = &proxmox.monitor();
  ctx.accountdb = &accountdb.monitor();
  ctx.hosts = &proxmox.hosts();
  ctx.endpoints = &accountdb.pool();
  ctx.failover_log = &failover_log;
  ctx.retry_budgets = [this] {
    return std::vector<std::pair<std::string, double>>{{"proxmox", proxmox.budget().tokens()},
                                                       {"accountdb", accountdb.budget().tokens()}};
  };
  ctx.changes = [this] { return changes.status(); };
  ctx.hedges = [this] {
    return std::vector<std::pair<std::string, HedgeStats>>{
        {"proxmox", proxmox.hedging().stats()}, {"accountdb", accountdb.hedging().stats()}};
  };
  ctx.version = kVersion;
  ctx.started_at = clock.unix_now();
  ctx.dry_run = run.dry_run;
  ctx.settings = [this] { return settings.get(); };
  ctx.config_json = [this] { return print_config_json(*settings.config()); };
  ctx.loop = [this] { return loop_state(); };
  ctx.trigger_sync = [this] { loop.trigger(); };
  ctx.whitelist_status = [this] { return engine.whitelist_status(); };
  ctx.whitelist_vmids = [this] { return engine.whitelist_vmids(); };
  ctx.refresh_whitelist = [this] { return engine.refresh_whitelist(); };
  ctx.confirm_held = [this](const std::string& id) { return engine.confirm(id); };
  ctx.proxmox_clamped = [this] { return proxmox.client().clamped(); };
  ctx.owner_id = [this]() -> std::optional<std::int64_t> {
    const auto v = owner_id_.load();
    return v < 0 ? std::nullopt : std::optional<std::int64_t>(v);
  };
  ctx.node_name = [this] { return node_name(); };
  ctx.proxmox_permissions = [this] { return proxmox.client().permissions(); };
  ctx.webhooks = [this] { return webhooks.stats(); };
  ctx.server_stats = [&server] { return server.stats(); };
  ctx.responses_by_status = [&server] { return server.responses_by_status(); };
  return ctx;
}

HttpService::HttpService(Components& c)
    : api_(c.api_context(server_)),
      server_(server_options(*c.settings.get()),
              [this](const http::Request& r) { return api_.dispatch(r); }) {}

}  // namespace pha
