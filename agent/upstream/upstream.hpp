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
#include "agent/net/hedge.hpp"
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
  Live<HedgeSettings> hedge;
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
      : clock_(clock),
        monitor_(options.name, clock, std::move(options.health)),
        hedging_(std::move(options.hedge)),
        policy_(make_policy(monitor_, [this] { return random_(); })),
        router_(observed(std::move(options.transport), monitor_, hedging_, options.wrap), monitor_,
                std::move(options.retry), clock, interrupt, options.display,
                [this] { return random_(); }) {}

  // Every request of the upstream's client: planned by the policy, sent
  // through the router (hedged when it may be), and its result told to the policy.
  HttpOutcome send(const HttpRequest& request) {
    const auto plan = policy_->plan(request);
    hedging_.requested();
    if (auto hedged = send_hedged(request, plan)) {
      return std::move(*hedged);
    }
    auto routed = router_.send(request, plan.base, plan.order, plan.revisit, plan.last_resort);
    policy_->answered(request, routed);
    return std::move(routed.outcome);
  }

  HedgePolicy& hedging() { return hedging_; }
  Flights& flights() { return flights_; }
  Clock& clock() { return clock_; }
  UpstreamMonitor& monitor() { return monitor_; }
  Policy& policy() { return *policy_; }
  const RetryBudget& budget() const { return router_.budget(); }

 private:
  static std::unique_ptr<HttpClient> observed(std::unique_ptr<HttpClient> transport,
                                              UpstreamMonitor& monitor, HedgePolicy& hedging,
                                              const TransportWrap& wrap) {
    std::unique_ptr<HttpClient> client = std::make_unique<HedgeObserver>(
        std::make_unique<ObservingClient>(std::move(transport), monitor), hedging);
    return wrap ? wrap(std::move(client)) : std::move(client);
  }

  // A request any of several targets can answer, sent to the first one the
  // router would try, and hedged to the others after that target's hedge
  // delay (hedge.hpp). None when it is not such a request: the caller
  // routes it as usual.
  std::optional<HttpOutcome> send_hedged(const HttpRequest& request, const RoutePlan& plan) {
    if (!request.any_target || !request.idempotent || request.health_check ||
        abandon_flag() != nullptr) {
      return std::nullopt;
    }
    std::vector<std::string> usable;
    for (const auto& t : plan.order) {
      if (monitor_.circuit(t) != CircuitState::open) {
        usable.push_back(t);
      }
    }
    const auto delay = hedging_.delay(usable.empty() ? "" : usable.front(), request_kind(request));
    if (usable.size() < 2 || !delay) {
      return std::nullopt;
    }
    const auto first = usable.front();
    usable.erase(usable.begin());
    auto raced = race<Routed>(
        flights_, clock_, *delay, [this] { return hedging_.take(); },
        [this, request, plan] {
          return router_.send(request, plan.base, plan.order, plan.revisit, plan.last_resort);
        },
        [this, request, plan, rest = std::move(usable)] {
          return router_.send(request, plan.base, rest, false, false);
        },
        [](const Routed& r) { return r.attempts > 0 && !is_host_failure(r.outcome.kind); });
    if (raced.winner != 1) {
      auto routed = std::move(raced.first ? *raced.first : *raced.second);
      policy_->answered(request, routed);
      return std::move(routed.outcome);
    }
    hedging_.won();
    auto routed = std::move(*raced.second);
    // The first target lost the race: as good as a timeout, for its health
    // and for the policy, now rather than after the whole timeout.
    HttpOutcome silent;
    silent.kind = FailureKind::timeout;
    silent.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(raced.first_ran);
    silent.error = "no answer within " + std::to_string(silent.elapsed.count()) + " ms, while " +
                   routed.target + " answered the hedged request";
    monitor_.observe(first, {silent.kind, silent.elapsed, silent.error});
    routed.failed.insert(routed.failed.begin(), {first, silent});
    policy_->answered(request, routed);
    return std::move(routed.outcome);
  }

  Clock& clock_;
  RandomSource random_;
  UpstreamMonitor monitor_;
  HedgePolicy hedging_;
  std::unique_ptr<Policy> policy_;
  FailoverRouter router_;
  Flights flights_;  // last: its attempts use the members above
};

}  // namespace pha
