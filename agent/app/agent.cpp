#include "agent/app/agent.hpp"

#include <algorithm>
#include <cstdio>

#include "agent/config/start_only.hpp"
#include "agent/core/text.hpp"
#include "agent/core/version.hpp"
#include "agent/http/api.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/systemd.hpp"

namespace pha {

namespace {

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
    : settings_(std::move(config)), clock_(clock), options_(options) {}

int Agent::run() {
  Components graph(settings_, clock_, interrupt_, options_);
  graph.load_state();
  if (options_.once) {
    const auto report = graph.run_once();
    std::puts(to_json(report).dump(2).c_str());
    return report.success ? 0 : 1;
  }
  return serve(graph);
}

int Agent::serve(Components& graph) {
  std::unique_lock registered(server_mutex_);
  const auto s = settings_.get();
  HttpService http(graph);
  auto& server = http.server();
  if (auto started = server.start(); !started) {
    log::error("http_failed", "cannot start the HTTP API: " + started.error().message);
    return 1;
  }
  server_ = &server;
  registered.unlock();
  log::info("http_listening", "the HTTP API is listening",
            {{"address", s->bind_address}, {"port", server.port()}, {"tls", server.tls()}});
  log::info("agent_started", "proxmox-host-agent is running",
            {{"version", kVersion},
             {"node_id", s->accountdb_node_id},
             {"proxmox_host", s->proxmox_host.str()},
             {"accountdb", s->accountdb_endpoints.front().url.str()},
             {"accountdb_endpoints", s->accountdb_endpoints.size()},
             {"update_interval", s->update_interval},
             {"dry_run", options_.dry_run},
             {"state_dir", s->state_dir}});
  systemd::notify_ready("listening on " + s->bind_address + ":" + std::to_string(server.port()) +
                        "; first sync running");
  graph.webhooks.start();
  graph.loop.start();
  graph.changes.start();
  graph.checker.start();
  // /health's rule: the watchdog and /health never disagree on "stuck".
  wait_for_stop([this, &graph, &server] {
    return evaluate_liveness(graph.loop_state(), server.stats(), *settings_.get(), clock_.now());
  });
  systemd::notify_stopping();
  {
    std::lock_guard lock(server_mutex_);
    server_ = nullptr;
  }
  server.stop();  // no new requests; a running job ends with the interrupt
  graph.checker.stop();
  graph.changes.stop();
  graph.loop.stop();
  graph.webhooks.stop();
  log::info("agent_stopped", "stopped");
  return 0;
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

Status Agent::renew_tls(const Settings& next) {
  if (server_ == nullptr || !server_->tls() || next.tls_cert_file.empty()) {
    return {};  // no HTTPS, or HTTPS switched off: the restart does it (reload_partial)
  }
  const log::Fields files{{"cert_file", next.tls_cert_file}, {"key_file", next.tls_key_file}};
  if (auto renewed = server_->reload_tls(next.tls_cert_file, next.tls_key_file); !renewed) {
    log::error("tls_reload_failed",
               "cannot use the new TLS certificate and key (" + renewed.error().message +
                   "); keeping the old ones and the old configuration",
               files);
    return renewed;
  }
  log::info("tls_reloaded", "new HTTPS connections get the certificate read again", files);
  return {};
}

Result<std::vector<std::string>> Agent::reload(LoadedConfig config) {
  std::lock_guard lock(server_mutex_);
  // The secrets of both, for the masking: a new one that waits for the
  // restart is still a secret.
  auto secrets = config.settings.secrets();
  auto settled = keep_start_only(*settings_.config(), std::move(config));
  const auto& s = settled.config.settings;
  const auto& waiting = settled.restart_needed;
  const bool https_kept =
      std::find(waiting.begin(), waiting.end(), "TLS_CERT_FILE") != waiting.end();
  if (!https_kept) {
    if (auto tls = renew_tls(s); !tls) {
      return Error{ErrorKind::invalid, "TLS_CERT_FILE/TLS_KEY_FILE: " + tls.error().message};
    }
  }
  log::set_level(log::parse_level(s.log_level));
  log::set_format(s.log_format == LogFormat::json ? log::Format::json : log::Format::text);
  for (auto& secret : s.secrets()) {
    secrets.push_back(std::move(secret));
  }
  log::set_secrets(std::move(secrets));
  if (!waiting.empty()) {
    log::warn("reload_partial",
              join_list(waiting) + " changed at reload; applied only at the next start, the " +
                  "running value stays in force until then",
              {{"settings", join_list(waiting)}});
  }
  auto restart_needed = waiting;
  settings_.replace(std::move(settled.config));
  return restart_needed;
}

}  // namespace pha
