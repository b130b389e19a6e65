#include "agent/app/agent.hpp"

#include <atomic>
#include <cstdio>

#include "agent/config/docs.hpp"
#include "agent/core/version.hpp"
#include "agent/http/api.hpp"
#include "agent/http/server.hpp"
#include "agent/notify/notifier.hpp"
#include "agent/notify/webhook_options.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/memory.hpp"
#include "agent/platform/systemd.hpp"
#include "agent/status/store.hpp"
#include "agent/sync/engine.hpp"
#include "agent/sync/loop.hpp"
#include "agent/upstream/accountdb_upstream.hpp"
#include "agent/upstream/failover_log.hpp"
#include "agent/upstream/health_checker.hpp"
#include "agent/upstream/proxmox_upstream.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

namespace {

LoopTimings loop_timings(const Settings& s) {
  return {std::chrono::seconds(s.update_interval), std::chrono::seconds(s.heartbeat_interval),
          std::chrono::seconds(s.retry_max_delay)};
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
  for (const auto& e : r.errors) {
    log::warn("sync_request_failed", e);
  }
}

http::ServerOptions server_options(const Settings& s) {
  http::ServerOptions o;
  o.bind_address = s.bind_address;
  o.port = s.port;
  o.tls_cert_file = s.tls_cert_file;
  o.tls_key_file = s.tls_key_file;
  return o;
}

// A target's health or breaker changed: the log, and the status history.
// The target in use failing is an error; a backup failing is a warning
// (redundancy is lost, the work goes on).
void on_target_change(StatusStore& store, const TargetChange& c, const std::string& in_use) {
  const bool proxmox = c.upstream == "proxmox";
  const auto component = proxmox ? StatusComponent::proxmox : StatusComponent::accountdb;
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

// A change of the host or endpoint in use: persisted, logged, and in the
// status history. Returns it as stored (with its id).
FailoverEvent on_failover(FailoverLog& events, StatusStore& store, const FailoverEvent& e) {
  auto stored = events.record(e);
  const bool proxmox = e.target == "proxmox";
  const auto component = proxmox ? StatusComponent::proxmox : StatusComponent::accountdb;
  const std::string what = proxmox ? "Proxmox host" : "AccountDB endpoint";
  const log::Fields fields = {{"target", e.target},        {"from", e.from},     {"to", e.to},
                              {"kind", to_string(e.kind)}, {"reason", e.reason}, {"id", stored.id}};
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

std::string state_path_of(const Settings& s, const std::string& name) {
  return s.state_dir.empty() ? std::string() : s.state_dir + "/" + name;
}

systemd::CycleSummary summary_of(const CycleReport& r, std::int64_t next_in_s) {
  const auto& st = r.stats;
  return {.status = r.status,
          .message = r.message,
          .dry_run = r.dry_run,
          .guests = st.total_proxmox_vms,
          .changes = st.created + st.updated + st.marked_missing,
          .next_in_s = next_in_s};
}

// One watchdog round: a ping while the loop is live. The log says when the
// pings stop (systemd restarts the agent soon after) and when they resume.
bool watchdog_round(const Liveness& live, bool withheld) {
  if (live.ok) {
    systemd::notify_watchdog();
    if (withheld) {
      log::info("watchdog_resumed", "the sync loop moves again; pinging the systemd watchdog");
    }
    return false;
  }
  if (!withheld) {
    log::error("watchdog_withheld", "not pinging the systemd watchdog: " + live.message +
                                        "; systemd restarts the agent when its watchdog runs out");
  }
  return true;
}

}  // namespace

Agent::Agent(LoadedConfig config, Clock& clock, RunOptions options)
    : config_(std::move(config)),
      settings_(std::make_shared<const Settings>(config_.settings)),
      clock_(clock),
      options_(options) {}

Settings Agent::settings() const {
  std::lock_guard lock(mutex_);
  return config_.settings;
}

int Agent::run_once(SyncEngine& engine) {
  const auto report = engine.run_cycle(options_.dry_run);
  log_cycle(report);
  std::puts(to_json(report).dump(2).c_str());
  return report.success ? 0 : 1;
}

int Agent::run() {
  const auto s = settings();
  StatusStore store(clock_, static_cast<std::size_t>(s.status_history_size));
  FailoverLog failover_log(state_path_of(s, "failover-events.json"));
  for (const auto& note : failover_log.load()) {
    log::warn("state_loaded", note);
  }
  const auto node_name = [this, &store] {
    {
      std::lock_guard lock(mutex_);
      if (!settings_->node_name.empty()) {
        return settings_->node_name;
      }
    }
    const auto v = store.vms();
    return v ? v->node : std::string();
  };
  Webhooks webhooks(webhook_options(s), webhook_http_client(s), clock_, node_name, {});
  Notifier notifier(webhooks, s.webhook_sync_failures);
  const auto sink = [&failover_log, &store, &notifier](const FailoverEvent& e) {
    notifier.failover(on_failover(failover_log, store, e));
  };
  ProxmoxUpstream proxmox(s, clock_, interrupt_, sink);
  AccountDbUpstream accountdb(s, clock_, interrupt_, sink);
  SyncEngine engine(s, proxmox.client(), accountdb.client(), clock_);
  for (const auto& note : engine.load_state()) {
    log::info("state_loaded", note);
  }
  if (options_.once) {
    return run_once(engine);
  }

  const auto accountdb_in_use = [&accountdb, &s] {
    auto active = accountdb.pool().active();
    return active.empty() ? s.accountdb_endpoints.front().url.str() : active;
  };
  const auto check_redundancy = [&notifier, &proxmox, &accountdb, &accountdb_in_use] {
    notifier.redundancy("proxmox", proxmox.monitor().targets(), proxmox.hosts().preferred());
    notifier.redundancy("accountdb", accountdb.monitor().targets(), accountdb_in_use());
  };
  proxmox.monitor().set_change_observer(
      [&store, &proxmox, &check_redundancy](const TargetChange& c) {
        on_target_change(store, c, proxmox.hosts().preferred());
        check_redundancy();
      });
  accountdb.monitor().set_change_observer(
      [&store, &accountdb, &check_redundancy](const TargetChange& c) {
        on_target_change(store, c, accountdb.pool().active());
        check_redundancy();
      });
  for (auto* m : {&proxmox.monitor(), &accountdb.monitor()}) {
    m->set_outcome_observer([&notifier, m](const std::string& target, const Observation& o) {
      notifier.outcome(m->name(), target, o);
    });
  }
  std::atomic<std::int64_t> owner_id{-1};
  // The observer runs on the loop's thread after start(), when `loop` exists.
  SyncLoop loop(engine, accountdb.client(), clock_, loop_timings(s), options_.dry_run,
                [this, &store, &owner_id, &loop, &notifier](const CycleReport& r) {
                  log_cycle(r);
                  // Before the cycle shows in /status: its events are queued by then.
                  notifier.cycle(r.success, r.message, r.finished_at);
                  store.record_cycle(r);
                  if (r.owner_id) {
                    owner_id = *r.owner_id;
                  }
                  notify_cycle(r, loop.next_cycle_at());
                  const auto heap = release_free_memory();
                  log::debug("heap_trimmed", "free heap pages handed back after the cycle",
                             {{"in_use_bytes", heap.in_use}, {"free_bytes", heap.free}});
                });
  loop.set_heartbeat_observer([&store](bool ok) {
    if (ok) {
      store.record_heartbeat();
    }
  });
  HealthChecker checker(
      clock_,
      [&proxmox, &accountdb, &check_redundancy] {
        proxmox.health_round();
        accountdb.recovery_round();
        check_redundancy();  // discovery may have changed the hosts
      },
      std::chrono::seconds(s.health_check_interval));

  std::unique_ptr<http::Server> server;
  ApiContext ctx;
  ctx.clock = &clock_;
  ctx.store = &store;
  ctx.proxmox = &proxmox.monitor();
  ctx.accountdb = &accountdb.monitor();
  ctx.hosts = &proxmox.hosts();
  ctx.endpoints = &accountdb.pool();
  ctx.failover_log = &failover_log;
  ctx.retry_budgets = [&proxmox, &accountdb] {
    return std::vector<std::pair<std::string, double>>{{"proxmox", proxmox.budget().tokens()},
                                                       {"accountdb", accountdb.budget().tokens()}};
  };
  ctx.version = kVersion;
  ctx.started_at = clock_.unix_now();
  ctx.dry_run = options_.dry_run;
  ctx.settings = [this] { return live_settings(); };
  ctx.config_json = [this] {
    std::lock_guard lock(mutex_);
    return print_config_json(config_);
  };
  const auto loop_state = [&loop] {
    return LoopState{loop.running(), loop.syncing(), loop.next_cycle_at(), loop.last_progress()};
  };
  ctx.loop = loop_state;
  ctx.trigger_sync = [&loop] { loop.trigger(); };
  ctx.whitelist_status = [&engine] { return engine.whitelist_status(); };
  ctx.whitelist_vmids = [&engine] { return engine.whitelist_vmids(); };
  ctx.refresh_whitelist = [&engine] { return engine.refresh_whitelist(); };
  ctx.owner_id = [&owner_id]() -> std::optional<std::int64_t> {
    const auto v = owner_id.load();
    return v < 0 ? std::nullopt : std::optional<std::int64_t>(v);
  };
  ctx.node_name = node_name;
  ctx.proxmox_permissions = [&proxmox] { return proxmox.client().permissions(); };
  ctx.webhooks = [&webhooks] { return webhooks.stats(); };
  ctx.server_stats = [&server] { return server->stats(); };
  ctx.responses_by_status = [&server] { return server->responses_by_status(); };
  Api api(std::move(ctx));
  server = std::make_unique<http::Server>(
      server_options(s), [&api](const http::Request& r) { return api.dispatch(r); });
  if (auto started = server->start(); !started) {
    log::error("http_failed", "cannot start the HTTP API: " + started.error().message);
    return 1;
  }
  log::info("http_listening", "the HTTP API is listening",
            {{"address", s.bind_address}, {"port", server->port()}, {"tls", server->tls()}});

  log::info("agent_started", "proxmox-host-agent is running",
            {{"version", kVersion},
             {"node_id", s.accountdb_node_id},
             {"proxmox_host", s.proxmox_host.str()},
             {"accountdb", s.accountdb_endpoints.front().url.str()},
             {"accountdb_endpoints", s.accountdb_endpoints.size()},
             {"update_interval", s.update_interval},
             {"dry_run", options_.dry_run},
             {"state_dir", s.state_dir}});
  {
    std::lock_guard lock(mutex_);
    engine_ = &engine;
    loop_ = &loop;
    checker_ = &checker;
    store_ = &store;
    proxmox_ = &proxmox;
    accountdb_ = &accountdb;
    webhooks_ = &webhooks;
    notifier_ = &notifier;
  }
  systemd::notify_ready("listening on " + s.bind_address + ":" + std::to_string(server->port()) +
                        "; first sync running");
  webhooks.start();
  loop.start();
  checker.start();
  // /health's rule: the watchdog and /health never disagree on "stuck".
  wait_for_stop([this, &loop_state, &server] {
    return evaluate_liveness(loop_state(), server->stats(), *live_settings(), clock_.now());
  });
  systemd::notify_stopping();
  server->stop();  // no new requests; a running job ends with the interrupt
  checker.stop();
  loop.stop();
  webhooks.stop();
  {
    std::lock_guard lock(mutex_);
    engine_ = nullptr;
    loop_ = nullptr;
    checker_ = nullptr;
    store_ = nullptr;
    proxmox_ = nullptr;
    accountdb_ = nullptr;
    webhooks_ = nullptr;
    notifier_ = nullptr;
  }
  log::info("agent_stopped", "stopped");
  return 0;
}

std::shared_ptr<const Settings> Agent::live_settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

void Agent::notify_cycle(const CycleReport& report, std::int64_t next_cycle_at) const {
  const auto next_in = next_cycle_at - clock_.unix_now();
  systemd::notify_status(
      systemd::status_line(summary_of(report, next_in), live_settings()->secrets()));
}

void Agent::wait_for_stop(const std::function<Liveness()>& liveness) {
  const auto every = systemd::watchdog_ping_interval();
  if (!every) {
    while (clock_.wait_for(interrupt_, std::chrono::hours(24)) != WakeReason::stopped) {
    }
    return;
  }
  log::info("watchdog_enabled", "pinging the systemd watchdog while the sync loop moves",
            {{"ping_interval_ms",
              std::chrono::duration_cast<std::chrono::milliseconds>(*every).count()}});
  bool withheld = false;
  for (;;) {
    const auto next_ping = clock_.now() + *every;
    WakeReason reason = WakeReason::woken;
    while (reason == WakeReason::woken) {  // a wake-up passed on by a router is not ours
      reason = clock_.wait_until(interrupt_, next_ping);
    }
    if (reason == WakeReason::stopped) {
      return;
    }
    withheld = watchdog_round(liveness(), withheld);
  }
}

void Agent::stop() {
  interrupt_.request_stop();
}

void Agent::reload(LoadedConfig config) {
  std::lock_guard lock(mutex_);
  const auto& s = config.settings;
  log::set_level(log::parse_level(s.log_level));
  log::set_secrets(s.secrets());
  if (engine_ != nullptr) {
    engine_->apply(s);
  }
  if (proxmox_ != nullptr) {
    proxmox_->apply(s);
    accountdb_->apply(s);
  }
  if (webhooks_ != nullptr) {
    webhooks_->apply(webhook_options(s));
    notifier_->set_sync_failures(s.webhook_sync_failures);
    const auto& before = config_.settings;
    if (before.webhook_urls != s.webhook_urls || before.webhook_token != s.webhook_token ||
        before.webhook_timeout != s.webhook_timeout) {
      log::warn("reload_partial",
                "WEBHOOK_URLS, WEBHOOK_TOKEN and WEBHOOK_TIMEOUT take effect at the next start");
    }
  }
  if (store_ != nullptr) {
    store_->set_history_size(static_cast<std::size_t>(s.status_history_size));
  }
  if (checker_ != nullptr) {
    checker_->set_interval(std::chrono::seconds(s.health_check_interval));
  }
  if (loop_ != nullptr) {
    loop_->set_timings(loop_timings(s));
    // An operator who reloads has usually just fixed something: sync now.
    loop_->trigger();
  }
  settings_ = std::make_shared<const Settings>(s);
  config_ = std::move(config);
}

}  // namespace pha
