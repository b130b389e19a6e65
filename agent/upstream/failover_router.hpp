#pragma once
// One request through the targets of an upstream (docs/failover.md "Retries
// and backoff", "Breakers", "Proxmox hosts"): the targets are
// tried in the order the caller chose; a target whose breaker is open is not
// contacted; a `network` or `timeout` failure moves to the next target at
// once, and the backoff applies only before going back to a target already
// tried; the retry budget of the upstream and RETRY_MAX_ATTEMPTS bound it
// all. This is the only retry layer of the agent.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/net/http.hpp"
#include "agent/net/retry.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

struct Routed {
  HttpOutcome outcome;
  std::string target;  // the base URL of the target that gave `outcome` ("" when none was tried)
  int attempts = 0;
  // The targets that failed with a host failure before `target`, in order,
  // with the outcome's kind and error: what a failover event names as its reason.
  std::vector<std::pair<std::string, HttpOutcome>> failed;
};

class FailoverRouter {
 public:
  // `http` must report to `monitor` (an ObservingClient): the breakers are fed
  // from there. `random` returns numbers in [0, 1).
  FailoverRouter(std::unique_ptr<HttpClient> http, UpstreamMonitor& monitor,
                 Live<RetryPolicy> policy, Clock& clock, Interrupt& interrupt, std::string upstream,
                 std::function<double()> random);

  // Sends `request`, whose URL begins with `base`, to the targets of `order`
  // (base URLs) in turn, the URL's `base` replaced by the target's. With
  // `revisit` false a target is tried at most once (the caller has another
  // way out, such as the cluster-wide fallback read). Best-effort requests
  // (`retry == false`) and health checks make one attempt. With no usable
  // target at all, the outcome is a `network` failure that says so, and
  // nothing is sent, unless `last_resort`: then the first target of `order`
  // gets one attempt anyway (AccountDB: "fall back to the highest-priority
  // endpoint if all are unhealthy").
  Routed send(const HttpRequest& request, const std::string& base,
              const std::vector<std::string>& order, bool revisit = true, bool last_resort = false);

  const RetryBudget& budget() const { return budget_; }

 private:
  std::unique_ptr<HttpClient> http_;
  UpstreamMonitor& monitor_;
  Live<RetryPolicy> policy_;  // read for each request
  RetryBudget budget_;
  Clock& clock_;
  Interrupt& interrupt_;
  std::string upstream_;
  std::function<double()> random_;
};

// What one routed request needs. `monitor` may be null: no breakers then.
struct RouteContext {
  HttpClient& http;
  UpstreamMonitor* monitor;
  RetryBudget& budget;
  const RetryPolicy& policy;
  Clock& clock;
  Interrupt& interrupt;
  const std::function<double()>& random;
  std::string upstream;
};
Routed route_request(const RouteContext& ctx, const HttpRequest& request, const std::string& base,
                     const std::vector<std::string>& order, bool revisit, bool last_resort = false);

// Sends `request` to its one target with retries (one attempt, outside the
// budget, when `request.retry` is false): each outcome feeds `budget`,
// decide() rules, the delay is waited through `clock` on `interrupt`. A stop
// request ends a wait at once and returns the last outcome. A wake-up does not
// cut a backoff short; it is passed on to the caller's next wait. Each retry
// is logged at debug level (event http_retry; upstream, attempt = the number
// of the attempt about to be made, kind, status, delay_ms, why; never the URL
// or a header). `random` returns numbers in [0, 1).
HttpOutcome send_with_retry(HttpClient& client, const HttpRequest& request,
                            const RetryPolicy& policy, RetryBudget& budget, Clock& clock,
                            Interrupt& interrupt, const std::function<double()>& random,
                            std::string_view upstream = {});

// "network on https://h:8006: connection refused": the reason of a failover
// event, from the first target that failed.
std::string describe_failures(const std::vector<std::pair<std::string, HttpOutcome>>& failed);

}  // namespace pha
