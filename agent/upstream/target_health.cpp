#include "agent/upstream/target_health.hpp"

namespace pha {

namespace {
constexpr double kEwmaWeight = 0.3;  // of the newest sample
}

std::string_view to_string(HealthStatus s) {
  switch (s) {
    case HealthStatus::unknown:
      return "unknown";
    case HealthStatus::healthy:
      return "healthy";
    case HealthStatus::unhealthy:
      return "unhealthy";
  }
  return "unknown";
}

std::string_view to_string(StateSource s) {
  switch (s) {
    case StateSource::probed:
      return "probed";
    case StateSource::passive:
      return "passive";
    case StateSource::cluster:
      return "cluster";
    case StateSource::none:
      return "none";
  }
  return "none";
}

TargetHealth::TargetHealth(const Live<HealthSettings>& settings)
    : settings_(settings),
      breaker_(settings.map([](const HealthSettings& s) { return s.breaker; })) {}

HealthStatus TargetHealth::status(Clock::TimePoint now) const {
  // Always unhealthy while its breaker is open, so that a breaker threshold
  // below the fall threshold never shows an open target as healthy.
  if (breaker_.state(now) == CircuitState::open) {
    return HealthStatus::unhealthy;
  }
  return status_;
}

bool TargetHealth::observe(const Observation& o, Clock::TimePoint now, std::int64_t unix_now) {
  const auto before_status = status(now);
  const auto before_circuit = breaker_.state(now);
  ++calls_;
  last_checked_ = unix_now;
  last_ok_ = o.kind == FailureKind::ok;
  if (is_host_failure(o.kind)) {
    ++failures_;
    ++failure_count_;
    ++consecutive_failures_;
    consecutive_successes_ = 0;
    last_error_ = o.error.empty() ? std::string(to_string(o.kind)) : o.error;
    last_response_ms_.reset();
    breaker_.on_failure(now);
    if (consecutive_failures_ >= settings_().unhealthy_threshold) {
      status_ = HealthStatus::unhealthy;
    }
  } else {
    last_seen_ = unix_now;
    last_response_ms_ = o.elapsed.count();
    if (o.kind == FailureKind::ok) {
      const double ms = static_cast<double>(o.elapsed.count());
      ewma_ms_ = ewma_ms_ ? (1.0 - kEwmaWeight) * *ewma_ms_ + kEwmaWeight * ms : ms;
    } else {
      last_error_ = o.error.empty() ? std::string(to_string(o.kind)) : o.error;
    }
    failure_count_ = failure_count_ > 0 ? failure_count_ - 1 : 0;
    consecutive_failures_ = 0;
    ++consecutive_successes_;
    breaker_.on_success(now);
    if (consecutive_successes_ >= settings_().healthy_threshold) {
      status_ = HealthStatus::healthy;
    }
  }
  return status(now) != before_status || breaker_.state(now) != before_circuit;
}

TargetSnapshot TargetHealth::snapshot(Clock::TimePoint now) const {
  TargetSnapshot s;
  s.status = status(now);
  s.circuit = breaker_.state(now);
  s.response_time_ms = ewma_ms_;
  s.failure_count = failure_count_;
  s.consecutive_failures = consecutive_failures_;
  s.recovered =
      s.status == HealthStatus::healthy && consecutive_successes_ >= settings_().healthy_threshold;
  s.last_seen = last_seen_;
  s.last_error = last_error_;
  s.calls = calls_;
  s.failures = failures_;
  s.last_checked = last_checked_;
  s.last_ok = last_ok_;
  s.last_response_ms = last_response_ms_;
  return s;
}

void TargetHealth::reset() {
  breaker_.reset();
  failure_count_ = 0;
  consecutive_failures_ = 0;
}

}  // namespace pha
