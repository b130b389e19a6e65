#pragma once
// What the agent knows about one Proxmox host or AccountDB endpoint
// (docs/failover.md "Target health", docs/http-api.md "GET /status"): its
// health status with rise/fall thresholds, its circuit breaker, the moving
// average of its response time, failure counts, when it last answered and
// its last error. Fed by every real call and every health check. Not
// thread-safe: the owner locks. Time is passed in.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/net/http.hpp"
#include "agent/upstream/circuit_breaker.hpp"

namespace pha {

enum class HealthStatus { unknown, healthy, unhealthy };
std::string_view to_string(HealthStatus s);

// Where the state shown for a target comes from (docs/failover.md "Health
// checks"): the agent's own health checks, the outcomes of real requests,
// the cluster's membership (corosync's view in /cluster/status), or nothing.
enum class StateSource { probed, passive, cluster, none };
std::string_view to_string(StateSource s);

struct HealthSettings {
  int healthy_threshold = 2;    // HEALTHY_THRESHOLD: consecutive successes to become healthy
  int unhealthy_threshold = 3;  // consecutive failures to become unhealthy (HAProxy fall 3)
  BreakerSettings breaker;
  // How long the outcome of a real request speaks for a target that is not
  // probed: two health-check intervals.
  std::chrono::seconds fresh_for{60};
};

// One observed exchange with the target.
struct Observation {
  FailureKind kind = FailureKind::ok;
  std::chrono::milliseconds elapsed{0};
  std::string error;  // for failures; never a secret
};

struct TargetSnapshot {
  HealthStatus status = HealthStatus::unknown;
  CircuitState circuit = CircuitState::closed;
  std::optional<double> response_time_ms;  // moving average of successful calls
  std::int64_t failure_count = 0;          // decays by one on each success
  std::int64_t consecutive_failures = 0;
  // Healthy, and HEALTHY_THRESHOLD answers in a row since its last host
  // failure: a target that just failed is not back yet, even while too few
  // failures have come to make it unhealthy.
  bool recovered = false;
  std::optional<std::int64_t>
      last_seen;  // unix seconds of the last answer that was not a host failure
  std::optional<std::string> last_error;
  std::uint64_t calls = 0;
  std::uint64_t failures = 0;  // host failures
  // The latest observation, for /health/proxmox.
  std::optional<std::int64_t> last_checked;  // unix seconds
  bool last_ok = false;
  std::optional<std::int64_t> last_response_ms;
};

class TargetHealth {
 public:
  explicit TargetHealth(const Live<HealthSettings>& settings = HealthSettings{});

  // Records an exchange. Kinds that are not host failures (auth, client,
  // rate_limited) show the target answers: they count as successes for its
  // health, but not for `last_ok`. Returns whether the status or the
  // circuit changed.
  bool observe(const Observation& o, Clock::TimePoint now, std::int64_t unix_now);
  TargetSnapshot snapshot(Clock::TimePoint now) const;
  HealthStatus status(Clock::TimePoint now) const;

  CircuitBreaker& breaker() { return breaker_; }
  const CircuitBreaker& breaker() const { return breaker_; }
  void reset();  // POST /failover/reset

 private:
  Live<HealthSettings> settings_;  // read when it decides
  CircuitBreaker breaker_;
  HealthStatus status_ = HealthStatus::unknown;
  int consecutive_successes_ = 0;
  std::int64_t consecutive_failures_ = 0;
  std::int64_t failure_count_ = 0;
  std::optional<double> ewma_ms_;
  std::optional<std::int64_t> last_seen_;
  std::optional<std::string> last_error_;
  std::uint64_t calls_ = 0;
  std::uint64_t failures_ = 0;
  std::optional<std::int64_t> last_checked_;
  bool last_ok_ = false;
  std::optional<std::int64_t> last_response_ms_;
};

}  // namespace pha
