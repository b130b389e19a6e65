#pragma once
// The Proxmox upstream: an Upstream whose selection policy is the
// HostManager, its client, and the health round of its hosts.

#include <memory>

#include "agent/config/live_settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/upstream.hpp"

namespace pha {

class ProxmoxUpstream {
 public:
  // Reads `settings` when it acts; they must outlive it. `sink` gets every failover event.
  ProxmoxUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                  FailoverSink sink = {});

  ProxmoxClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return upstream_.monitor(); }
  HostManager& hosts() { return upstream_.policy(); }
  const RetryBudget& budget() const { return upstream_.budget(); }
  HedgePolicy& hedging() { return upstream_.hedging(); }

  // One health round (docs/failover.md "Health checks"): /cluster/status from
  // the host in use for membership and discovery; GET /version, one at a
  // time, to the probed hosts whose breaker lets it through (the host in
  // use, the primary while it is not, HEALTH_CHECK_PEERS candidates); then
  // the return to the primary is evaluated.
  void health_round();

 private:
  const LiveSettings& settings_;
  Upstream<HostManager> upstream_;
  std::unique_ptr<ProxmoxClient> client_;
};

}  // namespace pha
