#pragma once
// The AccountDB upstream: its client, the monitor of its endpoints, the
// endpoint pool with the strategy, and the router.

#include <memory>

#include "agent/accountdb/client.hpp"
#include "agent/config/live_settings.hpp"
#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/failover_router.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

// The AccountDB side: its client, the monitor of its endpoints, the endpoint
// pool with the strategy, and the router.
class AccountDbUpstream {
 public:
  // Reads `settings` when it acts; they must outlive it.
  AccountDbUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                    FailoverSink sink = {});
  AccountDbClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return monitor_; }
  EndpointPool& pool() { return pool_; }
  const RetryBudget& budget() const { return router_.budget(); }
  // The recovery checks (docs/failover.md "AccountDB endpoints"): node_info on each endpoint that
  // failed since its last success and whose breaker lets a request through.
  void recovery_round();

 private:
  HttpOutcome route(const HttpRequest& request);

  RandomSource random_;
  UpstreamMonitor monitor_;
  EndpointPool pool_;
  FailoverRouter router_;
  std::unique_ptr<AccountDbClient> client_;
};

}  // namespace pha
