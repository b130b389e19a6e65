#include "agent/net/retry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pha {

namespace {

using Duration = RetryPolicy::Duration;

constexpr Duration kRateLimitFloor = std::chrono::seconds(1);

Duration from_seconds(std::chrono::seconds s) {
  return std::chrono::duration_cast<Duration>(s);
}

}  // namespace

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
