#pragma once
// The AccountDB endpoints of ACCOUNTDB_URL (docs/failover.md "AccountDB
// endpoints"): which ones a request tries and in what order (the strategy of
// EndpointSelector over the health the monitor keeps), which one is in use,
// the failover events when that changes, manual failover, and which
// endpoints need a recovery check. Thread-safe.

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/settings.hpp"
#include "agent/core/live.hpp"
#include "agent/upstream/endpoint_selector.hpp"
#include "agent/upstream/failover_router.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/upstream.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

struct PoolOptions {
  std::vector<AccountDbEndpoint> endpoints;  // ACCOUNTDB_URL
  Strategy strategy = Strategy::priority;    // ACCOUNTDB_STRATEGY
  // AUTO_FAILOVER false: every request goes to the endpoint in use only (an
  // operator's choice, else the one that answered last, else the strategy's
  // first). AUTO_RECOVERY false: the `priority` strategy stays on the
  // endpoint in use while it works, instead of going back to a better one.
  bool auto_failover = true;
  bool auto_recovery = true;
};

// The options are read again at each decision (order, answered, prefer,
// reset, to_check): a reload that changes the endpoints takes effect there,
// keeping the health of those that stay.
class EndpointPool {
 public:
  EndpointPool(Live<PoolOptions> options, UpstreamMonitor& monitor, Clock& clock,
               FailoverSink sink);

  // The endpoints to try for one request, in order: an operator's choice
  // first while its breaker is not open, then the strategy's order.
  std::vector<std::string> order();
  // What a request's routing gave: the endpoint in use follows the one that
  // answered; a change is an event (automatic when endpoints before it
  // failed, recovery when the priority strategy returns to a better one).
  void answered(const Routed& routed);
  std::string active() const;  // the endpoint in use ("" before the first answer)
  Strategy strategy() const;
  // POST /failover/accountdb: an error for an unknown or open-circuit endpoint.
  std::optional<std::string> prefer(const std::string& url);
  // POST /failover/reset: breakers closed, counts zeroed, no operator choice.
  void reset();
  // The endpoints that need a check now (node_info): those with a failure
  // since their last success, and those whose health is not decided yet (a
  // backup that no request has reached), whose breaker lets a request
  // through (closed, or half-open once the open period has passed).
  std::vector<Url> to_check();

  // The selection policy of the AccountDB upstream: a call for any endpoint
  // tries them in order(), the highest-priority one as a last resort when all
  // are down; a call for one endpoint (a recovery check) goes only there.
  RoutePlan plan(const HttpRequest& request);
  void answered(const HttpRequest& request, const Routed& routed);

 private:
  std::vector<EndpointState> states_locked() const;
  // Reads the options; a change of the endpoints or the strategy is applied.
  void refresh_locked();

  mutable std::mutex mutex_;
  Live<PoolOptions> live_;
  PoolOptions options_;  // as last read
  EndpointSelector selector_;
  UpstreamMonitor& monitor_;
  Clock& clock_;
  FailoverSink sink_;
  std::string active_;
  std::string pinned_;  // an operator's choice
};

}  // namespace pha
