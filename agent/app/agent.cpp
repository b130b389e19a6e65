#include "agent/app/agent.hpp"

#include <cstdio>

#include "agent/app/upstreams.hpp"
#include "agent/core/version.hpp"
#include "agent/platform/logging.hpp"
#include "agent/sync/engine.hpp"
#include "agent/sync/loop.hpp"

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
  if (r.status == "error") {
    log::error("sync_failed", r.message, fields);
  } else if (r.status == "warning") {
    log::warn("sync_cycle", r.message, fields);
  } else {
    log::info("sync_cycle", r.message, fields);
  }
  for (const auto& e : r.errors) {
    log::warn("sync_request_failed", e);
  }
}

}  // namespace

Agent::Agent(LoadedConfig config, Clock& clock, RunOptions options)
    : config_(std::move(config)), clock_(clock), options_(options) {}

Settings Agent::settings() const {
  std::lock_guard lock(mutex_);
  return config_.settings;
}

int Agent::run() {
  const auto s = settings();
  ProxmoxUpstream proxmox(s, clock_, interrupt_);
  AccountDbUpstream accountdb(s, clock_, interrupt_);
  SyncEngine engine(s, proxmox.client(), accountdb.client(), clock_);
  for (const auto& note : engine.load_state()) {
    log::info("state_loaded", note);
  }

  if (options_.once) {
    const auto report = engine.run_cycle(options_.dry_run);
    log_cycle(report);
    std::puts(to_json(report).dump(2).c_str());
    return report.success ? 0 : 1;
  }

  log::info("agent_started", "proxmox-host-agent is running",
            {{"version", kVersion},
             {"node_id", s.accountdb_node_id},
             {"proxmox_host", s.proxmox_host.str()},
             {"accountdb", s.accountdb_endpoints.front().url.str()},
             {"accountdb_endpoints", s.accountdb_endpoints.size()},
             {"update_interval", s.update_interval},
             {"dry_run", options_.dry_run},
             {"state_dir", s.state_dir}});
  SyncLoop loop(engine, accountdb.client(), clock_, loop_timings(s), options_.dry_run, log_cycle);
  {
    std::lock_guard lock(mutex_);
    engine_ = &engine;
    loop_ = &loop;
    accountdb_ = &accountdb.client();
  }
  loop.start();
  while (clock_.wait_for(interrupt_, std::chrono::hours(24)) != WakeReason::stopped) {
  }
  loop.stop();
  {
    std::lock_guard lock(mutex_);
    engine_ = nullptr;
    loop_ = nullptr;
    accountdb_ = nullptr;
  }
  log::info("agent_stopped", "stopped");
  return 0;
}

void Agent::stop() {
  interrupt_.request_stop();
}

void Agent::reload(LoadedConfig config) {
  std::lock_guard lock(mutex_);
  log::set_level(log::parse_level(config.settings.log_level));
  log::set_secrets(config.settings.secrets());
  if (engine_ != nullptr) {
    engine_->apply(config.settings);
  }
  if (accountdb_ != nullptr) {
    accountdb_->set_api_key(config.settings.accountdb_api_key);
    accountdb_->set_endpoint(config.settings.accountdb_endpoints.front().url);
  }
  if (loop_ != nullptr) {
    loop_->set_timings(loop_timings(config.settings));
    // An operator who reloads has usually just fixed something: sync now.
    loop_->trigger();
  }
  config_ = std::move(config);
}

}  // namespace pha
