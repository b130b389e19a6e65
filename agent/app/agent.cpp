#include "agent/app/agent.hpp"

#include "agent/core/version.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

Agent::Agent(LoadedConfig config, Clock& clock) : config_(std::move(config)), clock_(clock) {}

Settings Agent::settings() const {
  std::lock_guard lock(mutex_);
  return config_.settings;
}

int Agent::run() {
  const auto s = settings();
  log::info("agent_started", "proxmox-host-agent is running",
            {{"version", kVersion},
             {"node_id", s.accountdb_node_id},
             {"proxmox_host", s.proxmox_host.str()},
             {"accountdb_endpoints", s.accountdb_endpoints.size()},
             {"state_dir", s.state_dir}});
  while (clock_.wait_for(interrupt_, std::chrono::hours(24)) != WakeReason::stopped) {
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
  config_ = std::move(config);
}

}  // namespace pha
