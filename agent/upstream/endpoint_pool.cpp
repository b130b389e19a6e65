#include "agent/upstream/endpoint_pool.hpp"

#include <algorithm>

#include "agent/core/url.hpp"

namespace pha {

namespace {

std::vector<TargetInfo> target_infos(const std::vector<AccountDbEndpoint>& endpoints) {
  std::vector<TargetInfo> out;
  out.reserve(endpoints.size());
  for (const auto& e : endpoints) {
    out.push_back({e.url.str(), "config", e.priority, e.weight, ""});
  }
  return out;
}

}  // namespace

EndpointPool::EndpointPool(Live<PoolOptions> options, UpstreamMonitor& monitor, Clock& clock,
                           FailoverSink sink)
    : live_(std::move(options)),
      options_(live_()),
      selector_(options_.strategy),
      monitor_(monitor),
      clock_(clock),
      sink_(std::move(sink)) {
  monitor_.set_targets(target_infos(options_.endpoints));
}

void EndpointPool::refresh_locked() {
  auto next = live_();
  if (next.endpoints != options_.endpoints) {
    monitor_.set_targets(target_infos(next.endpoints));
    pinned_.clear();
  }
  if (next.strategy != options_.strategy) {
    selector_.set_strategy(next.strategy);
  }
  options_ = std::move(next);
}

std::vector<EndpointState> EndpointPool::states_locked() const {
  // One snapshot of the monitor per request, not one per endpoint.
  const auto targets = monitor_.targets();
  std::vector<EndpointState> out;
  for (const auto& e : options_.endpoints) {
    EndpointState s;
    s.url = e.url.str();
    s.priority = e.priority;
    s.weight = e.weight;
    const auto t = std::find_if(targets.begin(), targets.end(),
                                [&s](const TargetView& v) { return v.info.url == s.url; });
    if (t != targets.end()) {
      s.circuit = t->health.circuit;
      s.good_standing =
          t->health.circuit == CircuitState::closed && t->health.consecutive_failures == 0;
      s.in_flight = t->in_flight;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> EndpointPool::order() {
  std::lock_guard lock(mutex_);
  refresh_locked();
  auto order = selector_.order(states_locked());
  if (order.empty()) {
    return order;
  }
  if (!options_.auto_failover) {
    const auto& current = !pinned_.empty() ? pinned_ : !active_.empty() ? active_ : order.front();
    return {current};
  }
  const auto to_front = [&order](const std::string& url) {
    std::erase(order, url);
    order.insert(order.begin(), url);
  };
  if (!pinned_.empty() && monitor_.circuit(pinned_) != CircuitState::open) {
    to_front(pinned_);
  } else if (!options_.auto_recovery && selector_.strategy() == Strategy::priority &&
             !active_.empty() && monitor_.circuit(active_) != CircuitState::open) {
    to_front(active_);
  }
  return order;
}

void EndpointPool::answered(const Routed& routed) {
  if (routed.target.empty() || is_host_failure(routed.outcome.kind)) {
    return;
  }
  std::optional<FailoverEvent> event;
  {
    std::lock_guard lock(mutex_);
    refresh_locked();
    if (routed.target == active_) {
      return;
    }
    if (!routed.failed.empty() && routed.failed.front().first == pinned_) {
      pinned_.clear();  // the operator's choice failed: automatic failover takes over
    }
    const auto from = active_;
    active_ = routed.target;
    FailoverEvent e;
    e.timestamp = clock_.unix_now();
    e.target = FailoverTarget::accountdb;
    e.from = from;
    e.to = routed.target;
    // Failures of the answering endpoint alone (a retry that worked) are no
    // failover: the first answer after them only sets the endpoint in use.
    const bool moved = std::any_of(routed.failed.begin(), routed.failed.end(),
                                   [&](const auto& f) { return f.first != routed.target; });
    if (moved) {
      e.kind = FailoverKind::automatic;
      e.reason = describe_failures(routed.failed);
      event = e;
    } else if (!from.empty() && selector_.strategy() == Strategy::priority) {
      e.kind = FailoverKind::recovery;
      e.reason = "a preferred endpoint is healthy again";
      event = e;
    }
  }
  if (event && sink_) {
    sink_(*event);
  }
}

std::string EndpointPool::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

Strategy EndpointPool::strategy() const {
  std::lock_guard lock(mutex_);
  return selector_.strategy();
}

std::optional<std::string> EndpointPool::prefer(const std::string& url) {
  FailoverEvent e;
  {
    std::lock_guard lock(mutex_);
    refresh_locked();
    const bool known =
        std::any_of(options_.endpoints.begin(), options_.endpoints.end(),
                    [&url](const AccountDbEndpoint& x) { return x.url.str() == url; });
    if (!known) {
      return "unknown AccountDB endpoint: " + url;
    }
    if (monitor_.circuit(url) == CircuitState::open) {
      return "the circuit breaker of " + url + " is open";
    }
    pinned_ = url;
    if (url == active_) {
      return std::nullopt;
    }
    e.timestamp = clock_.unix_now();
    e.target = FailoverTarget::accountdb;
    e.from = active_;
    e.to = url;
    e.reason = "requested through the API";
    e.kind = FailoverKind::manual;
    active_ = url;
  }
  if (sink_) {
    sink_(e);
  }
  return std::nullopt;
}

void EndpointPool::reset() {
  std::lock_guard lock(mutex_);
  refresh_locked();
  monitor_.reset();
  selector_.reset();
  pinned_.clear();
  active_.clear();  // the strategy's first endpoint is in use again from the next request
}

RoutePlan EndpointPool::plan(const HttpRequest& request) {
  std::vector<std::string> bases;
  for (const auto& t : monitor_.targets()) {
    bases.push_back(t.info.url);
  }
  auto base = matching_base(request.url, bases);
  if (!request.any_target) {
    return {.base = base, .order = {base}, .revisit = false};
  }
  return {.base = std::move(base), .order = order(), .revisit = true, .last_resort = true};
}

void EndpointPool::answered(const HttpRequest& request, const Routed& routed) {
  if (request.any_target) {
    answered(routed);
  }
}

std::vector<Url> EndpointPool::to_check() {
  std::lock_guard lock(mutex_);
  refresh_locked();
  std::vector<Url> out;
  for (const auto& e : options_.endpoints) {
    const auto t = monitor_.target(e.url.str());
    const bool undecided = t && t->health.status == HealthStatus::unknown;
    if (t && (t->health.consecutive_failures > 0 || undecided) &&
        t->health.circuit != CircuitState::open) {
      out.push_back(e.url);
    }
  }
  return out;
}

}  // namespace pha
