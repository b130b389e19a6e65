#pragma once
// Backoff and jitter, per docs/failover.md "Retries and backoff": pure functions
// of the attempt number with the random source passed in, so every caller
// (the retry loop, the reconnect schedule, the periodic timers) is tested with
// a fixed number instead of a random one.

#include <chrono>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "agent/core/clock.hpp"

namespace pha {

struct RetryPolicy {
  using Duration = std::chrono::milliseconds;
  int max_attempts = 3;         // RETRY_MAX_ATTEMPTS, the first attempt included
  Duration base_delay{1000};    // RETRY_BASE_DELAY
  Duration max_delay{120'000};  // RETRY_MAX_DELAY
  double jitter = 0.2;          // ±20 % (gRPC)
};

// Delay before retry `retry_number` (1 = the first retry):
// min(max_delay, base_delay × 2^(n-1)) scaled by (1 + jitter × (2 × random - 1)),
// so ±jitter around the nominal value, and never less than `retry_after`.
// `random` is a number in [0, 1); 0.5 gives the nominal delay.
RetryPolicy::Duration backoff_delay(const RetryPolicy& policy, int retry_number, double random,
                                    std::optional<RetryPolicy::Duration> retry_after = {});

// The schedule of reconnect probes to AccountDB after it was found down: base
// 5 s, factor 2, capped at `max_delay` (RETRY_MAX_DELAY), ±20 % jitter. It
// never gives up: every probe after the cap waits about `max_delay`.
RetryPolicy reconnect_policy(RetryPolicy::Duration max_delay);
RetryPolicy::Duration reconnect_delay(RetryPolicy::Duration max_delay, int probe_number,
                                      double random);

// ±10 % around `period` (docs/failover.md "Timers and jitter");
// `random` in [0, 1).
Clock::Duration jittered(Clock::Duration period, double random);

// A uniform number in [0, 1) from a seeded generator, safe to call from any
// thread: the production source of every `random` above, of the jitter of
// the sync loop and the webhooks, and of request ids.
class RandomSource {
 public:
  double operator()();
  // 16 lowercase hex digits (64 random bits): an X-Request-ID.
  std::string hex_id();

 private:
  std::mutex mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace pha
