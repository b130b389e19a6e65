#include "agent/core/backoff.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pha {

namespace {

using Duration = RetryPolicy::Duration;

constexpr Duration kReconnectBase = std::chrono::seconds(5);

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

Clock::Duration jittered(Clock::Duration period, double random) {
  const double factor = 1.0 + 0.1 * (2.0 * random - 1.0);
  return std::chrono::duration_cast<Clock::Duration>(period * factor);
}

double RandomSource::operator()() {
  std::lock_guard lock(mutex_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

std::string RandomSource::hex_id() {
  std::uint64_t v = 0;
  {
    std::lock_guard lock(mutex_);
    v = rng_();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (auto& ch : id) {
    ch = kHex[v & 0xF];
    v >>= 4;
  }
  return id;
}

}  // namespace pha
