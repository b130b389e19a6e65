#pragma once
// One upstream (Proxmox or AccountDB): the monitor of its targets, a
// selection policy that decides which targets a request tries (HostManager
// for the Proxmox hosts, EndpointPool for the AccountDB endpoints), and the
// router every request goes through (docs/failover.md). The two upstreams
// are two instances of this type; their clients send through send().
// Thread-safe where its parts are.

#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/net/http.hpp"
#include "agent/net/retry.hpp"
#include "agent/upstream/failover_router.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

// Which targets one request tries.
struct RoutePlan {
  std::string base;                // the target the request's URL names
  std::vector<std::string> order;  // the targets to try, in order
  bool revisit = true;             // FailoverRouter::send's `revisit`
  bool last_resort = false;        // and its `last_resort`
};

// A selection policy: the plan for a request, and what its routing gave
// (the target in use may follow the one that answered).
template <class P>
concept SelectionPolicy = requires(P& p, const HttpRequest& request, const Routed& routed) {
  { p.plan(request) } -> std::same_as<RoutePlan>;
  p.answered(request, routed);
};

using TransportWrap = std::function<std::unique_ptr<HttpClient>(std::unique_ptr<HttpClient>)>;

struct UpstreamOptions {
  std::string name;     // "proxmox", "accountdb": the monitor's name, in metrics and logs
  std::string display;  // "Proxmox", "AccountDB": in error messages
  Live<HealthSettings> health;
  Live<RetryPolicy> retry;
  std::unique_ptr<HttpClient> transport;  // the real client; it reports to the monitor
  // Wraps the observed transport (Proxmox: one request at a time per host).
  TransportWrap wrap;
};

template <SelectionPolicy Policy>
class Upstream {
 public:
  // `make_policy(monitor, random)` builds the policy over this upstream's
  // monitor; `random` returns numbers in [0, 1).
  using PolicyFactory =
      std::function<std::unique_ptr<Policy>(UpstreamMonitor&, std::function<double()>)>;

  Upstream(UpstreamOptions options, Clock& clock, Interrupt& interrupt,
           const PolicyFactory& make_policy)
      : monitor_(options.name, clock, std::move(options.health)),
        policy_(make_policy(monitor_, [this] { return random_(); })),
        router_(observed(std::move(options.transport), monitor_, options.wrap), monitor_,
                std::move(options.retry), clock, interrupt, options.display,
                [this] { return random_(); }) {}

  // Every request of the upstream's client: planned by the policy, sent
  // through the router, and its result told to the policy.
  HttpOutcome send(const HttpRequest& request) {
    const auto plan = policy_->plan(request);
    auto routed = router_.send(request, plan.base, plan.order, plan.revisit, plan.last_resort);
    policy_->answered(request, routed);
    return std::move(routed.outcome);
  }

  UpstreamMonitor& monitor() { return monitor_; }
  Policy& policy() { return *policy_; }
  const RetryBudget& budget() const { return router_.budget(); }

 private:
  static std::unique_ptr<HttpClient> observed(std::unique_ptr<HttpClient> transport,
                                              UpstreamMonitor& monitor, const TransportWrap& wrap) {
    std::unique_ptr<HttpClient> client =
        std::make_unique<ObservingClient>(std::move(transport), monitor);
    return wrap ? wrap(std::move(client)) : std::move(client);
  }

  RandomSource random_;
  UpstreamMonitor monitor_;
  std::unique_ptr<Policy> policy_;
  FailoverRouter router_;
};

}  // namespace pha
