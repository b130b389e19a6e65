#pragma once
// Retries, per docs/failover.md "Retries and backoff": the delays are in
// agent/core/backoff.hpp; here are the thread-safe retry budget per upstream
// (gRPC retry throttling) and one decision function that every retrying
// caller uses (the loop that uses them is in agent/upstream/failover_router.hpp).

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/net/http.hpp"

namespace pha {

// gRPC retry throttling, one per upstream: a bucket of 10 tokens, each failure
// takes 1, each success gives back 0.1 (never above 10); retries are allowed
// only while it holds more than 5. Thread-safe. Kept in thousandths of a token
// so that ten successes give back exactly one token.
class RetryBudget {
 public:
  RetryBudget() = default;
  RetryBudget(double max_tokens, double token_ratio);

  void on_success();
  void on_failure();
  // Success for ok, failure for the retryable kinds (network, timeout,
  // server, rate_limited); tls, auth and client say nothing about overload.
  void record(FailureKind kind);
  bool allows_retry() const;
  double tokens() const;

 private:
  mutable std::mutex mutex_;
  std::int64_t max_milli_ = 10'000;
  std::int64_t ratio_milli_ = 100;
  std::int64_t milli_ = 10'000;
};

struct RetryDecision {
  bool retry = false;
  RetryPolicy::Duration delay{0};
  std::string why;  // for the debug log and the tests
};

// Whether to make attempt `attempts_done + 1` after `last` failed, and after
// what delay. The rules, in order:
// - ok, tls, auth and client are never retried (is_retryable);
// - a non-idempotent request is retried only when it surely did not reach the
//   server (`!last.maybe_sent`) or the server refused it with 429; after a
//   timeout, a reset or a 5xx it may have been applied, so it is left alone;
// - at most `policy.max_attempts` attempts, and only while `budget` allows;
// - rate_limited waits max(Retry-After, 1 s);
// - network and timeout moving to a target not tried yet in this operation
//   (`next_target_is_new`) retry at once;
// - everything else waits backoff_delay(retry n = attempts_done), never less
//   than a Retry-After.
RetryDecision decide(const RetryPolicy& policy, const RetryBudget& budget, int attempts_done,
                     const HttpRequest& request, const HttpOutcome& last, bool next_target_is_new,
                     double random);

}  // namespace pha
