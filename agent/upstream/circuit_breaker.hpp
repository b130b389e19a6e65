#pragma once
// A circuit breaker per Proxmox host and per AccountDB endpoint
// (docs/failover.md "Breakers"): closed until `threshold` consecutive host
// failures; then open for the open period (CIRCUIT_BREAKER_RESET the first
// time, doubled at each re-open without a success in between, capped at
// 300 s); then half-open, where one trial request may pass: its success
// closes the breaker, its failure opens it again. Not thread-safe: the owner
// locks. Time is passed in.

#include <chrono>
#include <string_view>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"

namespace pha {

enum class CircuitState { closed, open, half_open };
std::string_view to_string(CircuitState s);

struct BreakerSettings {
  int threshold = 3;                            // CIRCUIT_BREAKER_THRESHOLD
  std::chrono::milliseconds reset{60'000};      // CIRCUIT_BREAKER_RESET, the first open period
  std::chrono::milliseconds max_open{300'000};  // the cap of the growing open period
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(Live<BreakerSettings> settings = BreakerSettings{})
      : settings_(std::move(settings)) {}

  // open turns half_open by itself once its period has passed.
  CircuitState state(Clock::TimePoint now) const;
  // Whether a request may go now. In half_open, only one trial at a time: the
  // first caller gets true and the others false until its outcome is recorded.
  bool allow(Clock::TimePoint now);
  void on_success(Clock::TimePoint now);
  void on_failure(Clock::TimePoint now);
  // POST /failover/reset: closed, counts zeroed, the open period back to its start.
  void reset();

  int consecutive_failures() const { return consecutive_failures_; }
  // The length of the current (or the last) open period.
  std::chrono::milliseconds open_period() const { return open_period_; }
  // When the open period ends (meaningful while open).
  Clock::TimePoint open_until() const { return open_until_; }
  int opens() const { return opens_; }  // times opened since the last success

 private:
  void open(Clock::TimePoint now);

  Live<BreakerSettings> settings_;  // read at each failure
  bool open_ = false;
  bool trial_in_flight_ = false;
  int consecutive_failures_ = 0;
  int opens_ = 0;
  std::chrono::milliseconds open_period_{0};
  Clock::TimePoint open_until_{};
};

}  // namespace pha
