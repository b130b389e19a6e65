#include "agent/upstream/failover_router.hpp"

#include <algorithm>
#include <set>

#include "agent/core/text.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

std::string describe_failures(const std::vector<std::pair<std::string, HttpOutcome>>& failed) {
  if (failed.empty()) {
    return "";
  }
  const auto& [url, o] = failed.front();
  std::string what = o.error;
  if (what.empty()) {
    what = "HTTP " + std::to_string(o.status) + (o.reason.empty() ? "" : " " + o.reason);
  }
  return std::string(to_string(o.kind)) + " on " + url + ": " + what;
}

FailoverRouter::FailoverRouter(std::unique_ptr<HttpClient> http, UpstreamMonitor& monitor,
                               Live<RetryPolicy> policy, Clock& clock, Interrupt& interrupt,
                               std::string upstream, std::function<double()> random)
    : http_(std::move(http)),
      monitor_(monitor),
      policy_(std::move(policy)),
      clock_(clock),
      interrupt_(interrupt),
      upstream_(std::move(upstream)),
      random_(std::move(random)) {}

namespace {

// Waits `delay` unless a stop request comes; a wake-up is not ours, so it is
// remembered and passed on. Returns false when stopped.
bool wait_backoff(Clock& clock, Interrupt& interrupt, RetryPolicy::Duration delay, bool& woken) {
  if (interrupt.stop_requested()) {
    return false;
  }
  if (delay <= RetryPolicy::Duration{0}) {
    return true;
  }
  const auto deadline = clock.now() + delay;
  for (;;) {
    const auto reason = clock.wait_until(interrupt, deadline);
    if (reason == WakeReason::woken) {
      woken = true;
      continue;
    }
    return reason != WakeReason::stopped;
  }
}

}  // namespace

Routed FailoverRouter::send(const HttpRequest& request, const std::string& base,
                            const std::vector<std::string>& order, bool revisit, bool last_resort) {
  const auto policy = policy_();
  return route_request({*http_, &monitor_, budget_, policy, clock_, interrupt_, random_, upstream_},
                       request, base, order, revisit, last_resort);
}

HttpOutcome send_with_retry(HttpClient& client, const HttpRequest& request,
                            const RetryPolicy& policy, RetryBudget& budget, Clock& clock,
                            Interrupt& interrupt, const std::function<double()>& random,
                            std::string_view upstream) {
  return route_request(
             {client, nullptr, budget, policy, clock, interrupt, random, std::string(upstream)},
             request, "", {""}, true)
      .outcome;
}

Routed route_request(const RouteContext& ctx, const HttpRequest& request, const std::string& base,
                     const std::vector<std::string>& order, bool revisit, bool last_resort) {
  const auto& policy = ctx.policy;
  const auto circuit = [&ctx](const std::string& t) {
    return ctx.monitor != nullptr ? ctx.monitor->circuit(t) : CircuitState::closed;
  };
  const bool single_shot = !request.retry || request.health_check;
  Routed routed;
  std::set<std::string> tried;
  // The next target: the first one not tried yet whose breaker is not open,
  // else (when going back is allowed) the first tried one.
  const auto next = [&](bool& is_new) -> std::optional<std::string> {
    for (const auto& t : order) {
      if (!tried.contains(t) && circuit(t) != CircuitState::open) {
        is_new = true;
        return t;
      }
    }
    if (!revisit || single_shot) {
      return std::nullopt;
    }
    for (const auto& t : order) {
      if (circuit(t) != CircuitState::open) {
        is_new = false;
        return t;
      }
    }
    return std::nullopt;
  };
  bool is_new = true;
  auto target = next(is_new);
  // Every breaker open: the first target anyway, past its breaker.
  bool forced = !target && last_resort && !order.empty();
  if (forced) {
    target = order.front();
  }
  bool woken = false;
  while (target && !abandoned()) {
    // A half-open breaker lets one trial through: another request may have
    // taken it since next() looked. Best-effort requests do not feed the
    // breaker, so they must not take its trial either.
    const bool feeds_health = request.retry || request.health_check;
    if (!forced && feeds_health && ctx.monitor != nullptr && !ctx.monitor->allow(*target)) {
      tried.insert(*target);
      target = next(is_new);
      continue;
    }
    HttpRequest attempt = request;
    if (attempt.url.starts_with(base)) {
      attempt.url = *target + attempt.url.substr(base.size());
    }
    auto outcome = ctx.http.send(attempt);
    forced = false;
    ++routed.attempts;
    tried.insert(*target);
    if (abandoned()) {
      // A hedged race went another way: nothing more to learn or to try.
      routed.outcome = std::move(outcome);
      routed.target = *target;
      break;
    }
    if (!single_shot) {
      ctx.budget.record(outcome.kind);
    }
    const bool failed_over_from = !outcome.ok() && is_host_failure(outcome.kind);
    routed.outcome = std::move(outcome);
    routed.target = *target;
    if (routed.outcome.ok() || single_shot) {
      break;
    }
    bool next_is_new = false;
    auto following = next(next_is_new);
    if (!following) {
      break;
    }
    const auto decision = decide(policy, ctx.budget, routed.attempts, request, routed.outcome,
                                 next_is_new && *following != *target, ctx.random());
    if (!decision.retry) {
      break;
    }
    if (failed_over_from) {
      routed.failed.emplace_back(*target, routed.outcome);
    }
    log::debug("http_retry", "retrying a failed request",
               {{"upstream", to_lower(ctx.upstream)},
                {"attempt", routed.attempts + 1},
                {"max_attempts", policy.max_attempts},
                {"kind", std::string(to_string(routed.outcome.kind))},
                {"status", routed.outcome.status},
                {"delay_ms", decision.delay.count()},
                {"why", decision.why}});
    if (!wait_backoff(ctx.clock, ctx.interrupt, decision.delay, woken)) {
      break;
    }
    target = following;
    is_new = next_is_new;
  }
  if (routed.attempts == 0) {
    routed.outcome = HttpOutcome{};
    routed.outcome.kind = FailureKind::network;
    routed.outcome.error = request.method + " " + ctx.upstream + ": no usable target (" +
                           (order.empty() ? std::string("none is known")
                                          : std::string("every circuit breaker is open")) +
                           ")";
  }
  if (woken) {
    ctx.interrupt.wake();
  }
  return routed;
}

}  // namespace pha
