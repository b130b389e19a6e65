#include "agent/net/retry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pha {

namespace {

using Duration = RetryPolicy::Duration;

constexpr Duration kRateLimitFloor = std::chrono::seconds(1);
constexpr Duration kReconnectBase = std::chrono::seconds(5);

Duration from_seconds(std::chrono::seconds s) {
  return std::chrono::duration_cast<Duration>(s);
}

}  // namespace

Duration backoff_delay(const RetryPolicy& policy, int retry_number, double random,
                       std::optional<Duration> retry_after) {
  const int n = std::max(retry_number, 1);
  const double base = static_cast<double>(std::max(policy.base_delay.count(), Duration::rep{0}));
  const double cap = static_cast<double>(std::max(policy.max_delay.count(), Duration::rep{0}));
  // 2^(n-1) overflows nothing in double; the cap applies before the jitter.
  const double nominal = std::min(cap, base * std::pow(2.0, n - 1));
  const double r = std::clamp(random, 0.0, 1.0);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double scaled = nominal * (1.0 + jitter * (2.0 * r - 1.0));
  auto delay = Duration(static_cast<Duration::rep>(std::llround(scaled)));
  if (retry_after && *retry_after > delay) {
    delay = *retry_after;
  }
  return delay;
}

RetryPolicy reconnect_policy(Duration max_delay) {
  RetryPolicy p;
  p.max_attempts = std::numeric_limits<int>::max();  // it never gives up
  p.base_delay = std::min(kReconnectBase, max_delay);
  p.max_delay = max_delay;
  p.jitter = 0.2;
  return p;
}

Duration reconnect_delay(Duration max_delay, int probe_number, double random) {
  return backoff_delay(reconnect_policy(max_delay), probe_number, random);
}

RetryBudget::RetryBudget(double max_tokens, double token_ratio)
    : max_milli_(std::llround(max_tokens * 1000.0)),
      ratio_milli_(std::llround(token_ratio * 1000.0)),
      milli_(max_milli_) {}

void RetryBudget::on_success() {
  std::lock_guard lock(mutex_);
  milli_ = std::min(max_milli_, milli_ + ratio_milli_);
}

void RetryBudget::on_failure() {
  std::lock_guard lock(mutex_);
  milli_ = std::max<std::int64_t>(0, milli_ - 1000);
}

void RetryBudget::record(FailureKind kind) {
  if (kind == FailureKind::ok) {
    on_success();
  } else if (is_retryable(kind)) {
    on_failure();
  }
}

bool RetryBudget::allows_retry() const {
  std::lock_guard lock(mutex_);
  return milli_ * 2 > max_milli_;
}

double RetryBudget::tokens() const {
  std::lock_guard lock(mutex_);
  return static_cast<double>(milli_) / 1000.0;
}

RetryDecision decide(const RetryPolicy& policy, const RetryBudget& budget, int attempts_done,
                     const HttpRequest& request, const HttpOutcome& last, bool next_target_is_new,
                     double random) {
  const auto no = [](std::string why) { return RetryDecision{false, Duration{0}, std::move(why)}; };
  if (last.ok()) {
    return no("succeeded");
  }
  if (!is_retryable(last.kind)) {
    return no(std::string(to_string(last.kind)) + " failures are not retried");
  }
  if (!request.idempotent && last.maybe_sent && last.status != 429) {
    return no("not idempotent and it may have reached the server");
  }
  if (attempts_done >= policy.max_attempts) {
    return no("attempts exhausted (" + std::to_string(attempts_done) + " of " +
              std::to_string(policy.max_attempts) + ")");
  }
  if (!budget.allows_retry()) {
    return no("retry budget exhausted");
  }
  if (last.kind == FailureKind::rate_limited) {
    const auto wait =
        std::max(kRateLimitFloor, from_seconds(last.retry_after.value_or(std::chrono::seconds(0))));
    return {true, wait, "rate limited: waiting for Retry-After (at least 1 s)"};
  }
  if (next_target_is_new &&
      (last.kind == FailureKind::network || last.kind == FailureKind::timeout)) {
    return {true, Duration{0}, "failing over to another target at once"};
  }
  std::optional<Duration> floor;
  if (last.retry_after) {
    floor = from_seconds(*last.retry_after);
  }
  return {true, backoff_delay(policy, attempts_done, random, floor), "backoff"};
}

}  // namespace pha
