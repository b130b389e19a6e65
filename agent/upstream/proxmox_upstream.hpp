#pragma once
// The Proxmox upstream: its client, the monitor of its hosts, the host manager
// that chooses between them, and the router every request goes through.

#include <memory>

#include "agent/config/live_settings.hpp"
#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/upstream/failover_router.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

// The Proxmox side of the agent: its client, the monitor of its hosts, the
// host manager that chooses between them, and the router every request goes
// through. Thread-safe where its parts are.
class ProxmoxUpstream {
 public:
  // `sink` gets every failover event.
  // Reads `settings` when it acts; they must outlive it.
  ProxmoxUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                  FailoverSink sink = {});
  ProxmoxClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return monitor_; }
  HostManager& hosts() { return hosts_; }
  const RetryBudget& budget() const { return router_.budget(); }
  // One round of health checks (docs/failover.md "Health checks"): GET /version on each known
  // host whose breaker lets it through, one at a time; discovery from
  // /cluster/status; then the return to the primary is evaluated.
  void health_round();

 private:
  HttpOutcome route(const HttpRequest& request);

  RandomSource random_;
  const LiveSettings& settings_;
  UpstreamMonitor monitor_;
  HostManager hosts_;
  FailoverRouter router_;
  std::unique_ptr<ProxmoxClient> client_;
};

}  // namespace pha
