#pragma once
// The AccountDB upstream: an Upstream whose selection policy is the
// EndpointPool (with the strategy), its client, and the recovery checks.

#include <memory>

#include "agent/accountdb/client.hpp"
#include "agent/config/live_settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/upstream.hpp"

namespace pha {

class AccountDbUpstream {
 public:
  // Reads `settings` when it acts; they must outlive it. `sink` gets every failover event.
  AccountDbUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                    FailoverSink sink = {});

  AccountDbClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return upstream_.monitor(); }
  EndpointPool& pool() { return upstream_.policy(); }
  const RetryBudget& budget() const { return upstream_.budget(); }
  HedgePolicy& hedging() { return upstream_.hedging(); }

  // The recovery checks (docs/failover.md "AccountDB endpoints"): node_info on each endpoint that
  // failed since its last success and whose breaker lets a request through.
  void recovery_round();

 private:
  Upstream<EndpointPool> upstream_;
  std::unique_ptr<AccountDbClient> client_;
};

}  // namespace pha
