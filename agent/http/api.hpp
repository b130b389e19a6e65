#pragma once
// The agent's HTTP API (docs/http-api.md): routing, authorisation and
// the JSON and Prometheus answers. GET handlers answer from the status store
// and the monitors, never from an upstream; the one POST that must ask
// AccountDB (/whitelist/refresh) runs as a server job.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/config/settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/result.hpp"
#include "agent/http/server.hpp"
#include "agent/net/hedge.hpp"
#include "agent/notify/webhook.hpp"
#include "agent/platform/thread_guard.hpp"
#include "agent/proxmox/permissions.hpp"
#include "agent/status/store.hpp"
#include "agent/sync/changes.hpp"
#include "agent/sync/whitelist_cache.hpp"
#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/failover_log.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

// What the sync loop says about itself.
struct LoopState {
  bool running = false;  // false before start and in one-shot modes
  bool syncing = false;
  std::int64_t next_sync_time = 0;   // unix seconds, 0 when unknown
  Clock::TimePoint last_progress{};  // end of the last cycle (or the loop's start)
};

struct ApiContext {
  Clock* clock = nullptr;
  StatusStore* store = nullptr;
  UpstreamMonitor* proxmox = nullptr;
  UpstreamMonitor* accountdb = nullptr;
  HostManager* hosts = nullptr;         // the Proxmox host in use, manual failover
  EndpointPool* endpoints = nullptr;    // the AccountDB endpoint in use, manual failover
  FailoverLog* failover_log = nullptr;  // /failover/events
  // Retry budget tokens by upstream name, for /metrics.
  std::function<std::vector<std::pair<std::string, double>>()> retry_budgets;
  // Change-driven sync (agent/sync/changes.hpp); empty: not watching.
  std::function<ChangeStatus()> changes;
  // Hedged requests per upstream (agent/net/hedge.hpp).
  std::function<std::vector<std::pair<std::string, HedgeStats>>()> hedges;
  std::string version;
  std::int64_t started_at = 0;
  bool dry_run = false;
  std::function<std::shared_ptr<const Settings>()> settings;
  std::function<nlohmann::json()> config_json;  // the --print-config JSON, secrets masked
  std::function<LoopState()> loop;
  std::function<void()> trigger_sync;
  std::function<WhitelistStatus()> whitelist_status;
  std::function<std::vector<std::int64_t>()> whitelist_vmids;
  std::function<Result<WhitelistStatus>()> refresh_whitelist;  // blocks: a server job
  // POST /sync/confirm: vouch for the held changes of that id (SyncEngine::confirm).
  std::function<Result<HeldChanges>(const std::string& id)> confirm_held;
  // Proxmox list entries whose values were clamped, by field; may be empty.
  std::function<std::map<std::string, std::uint64_t>()> proxmox_clamped;
  std::function<std::optional<std::int64_t>()> owner_id;
  std::function<std::string()> node_name;
  // What the Proxmox user or token may do; may be empty (not checked).
  std::function<PermissionStatus()> proxmox_permissions;
  // The webhooks' counters; may be empty (no webhooks at all).
  std::function<WebhookStats()> webhooks;
  std::function<http::ServerStats()> server_stats;
  std::function<std::vector<std::pair<int, std::uint64_t>>()> responses_by_status;
};

// /health's verdict: whether every thread is alive (`failures`, the top-level
// catches of agent/platform/thread_guard.hpp), and whether the sync loop and
// the server's workers move.
struct Liveness {
  bool ok = true;
  std::string message;
};
Liveness evaluate_liveness(const LoopState& loop, const http::ServerStats& server,
                           const Settings& settings, Clock::TimePoint now,
                           const ThreadFailures& failures = thread_failures());

class Api {
 public:
  explicit Api(ApiContext context);
  http::Dispatch dispatch(const http::Request& request);

  // The JSON answers, also used by tests.
  nlohmann::json status_json() const;
  nlohmann::json sync_status_json() const;
  std::string metrics_text() const;

 private:
  http::Dispatch answer(const http::Request& r);
  http::Response health() const;
  http::Response health_proxmox() const;
  http::Response vms() const;
  http::Response vm(const std::string& id) const;
  http::Response whitelist_refresh() const;
  http::Response failover_events() const;
  http::Response failover(const http::Request& r);
  http::Response sync_confirm(const http::Request& r);
  nlohmann::json read_json(const SyncInfo& sync) const;
  nlohmann::json proxmox_json(const Settings& s) const;
  nlohmann::json permissions_json() const;
  nlohmann::json accountdb_json(const Settings& s) const;
  nlohmann::json whitelist_json() const;
  nlohmann::json webhooks_json() const;
  nlohmann::json changes_json() const;

  ApiContext ctx_;
};

}  // namespace pha
