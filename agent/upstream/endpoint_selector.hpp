#pragma once
// Choosing the AccountDB endpoint for one request (docs/failover.md "AccountDB
// endpoints"): the best usable priority group, the strategy within it, the
// other usable endpoints after it, and the all-unhealthy fallback. The
// selector keeps only the strategies' own state (the round-robin position and
// the smooth weighted round robin's current weights); what it knows of the
// endpoints' health is passed in with each call. Not thread-safe: the owner
// locks.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/config/settings.hpp"
#include "agent/upstream/circuit_breaker.hpp"

namespace pha {

struct EndpointState {
  std::string url;
  int priority = 1;  // lower = preferred group
  int weight = 1;    // 0 = drain: never chosen while another endpoint of its group is usable
  CircuitState circuit = CircuitState::closed;
  // Closed breaker and no failure since the last success: the endpoint is in
  // rotation. An endpoint that just failed is tried only after those that
  // did not (that is what keeps a dead endpoint from costing one timeout per
  // request before its breaker opens).
  bool good_standing = true;
  std::int64_t in_flight = 0;  // requests being sent to it now
};

class EndpointSelector {
 public:
  explicit EndpointSelector(Strategy strategy = Strategy::priority) : strategy_(strategy) {}

  // The endpoints to try for one request, in order (the caller stops at the
  // first that answers). Usable = breaker closed or half-open.
  // - The best group is the lowest priority number with an endpoint in good
  //   standing; when no endpoint is in good standing anywhere, the lowest
  //   with a usable one.
  // - Within it, the candidates are its endpoints in good standing (or its
  //   usable ones, when none is), weight-0 endpoints only when nothing else
  //   is a candidate. The strategy picks the first:
  //   priority: the first candidate in configuration order;
  //   round_robin: the next candidate after the one picked last time;
  //   weighted: smooth weighted round robin (nginx) over the candidates'
  //   weights, so that over any window of sum(weights) requests each gets
  //   exactly its weight;
  //   least_connections: the fewest in flight, ties in configuration order.
  // - Then the other usable endpoints of that group (good standing first,
  //   configuration order), then the usable endpoints of the other groups
  //   by priority (good standing first within each group).
  // - When no endpoint is usable: the first endpoint of the lowest priority
  //   number alone (design: "fall back to the highest-priority endpoint if
  //   all are unhealthy").
  // Advances the strategy's state (not for priority). Empty input, empty output.
  std::vector<std::string> order(const std::vector<EndpointState>& endpoints);

  Strategy strategy() const { return strategy_; }
  void set_strategy(Strategy strategy);  // also forgets the strategy's state
  void reset();                          // forgets the strategy's state

 private:
  Strategy strategy_;
  std::string last_picked_;                      // round_robin
  std::map<std::string, std::int64_t> current_;  // weighted: the SWRR current weights, by URL
};

}  // namespace pha
