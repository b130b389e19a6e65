#include "agent/upstream/circuit_breaker.hpp"

#include <algorithm>

namespace pha {

std::string_view to_string(CircuitState s) {
  switch (s) {
    case CircuitState::closed:
      return "closed";
    case CircuitState::open:
      return "open";
    case CircuitState::half_open:
      return "half_open";
  }
  return "closed";
}

CircuitState CircuitBreaker::state(Clock::TimePoint now) const {
  if (!open_) {
    return CircuitState::closed;
  }
  return now < open_until_ ? CircuitState::open : CircuitState::half_open;
}

bool CircuitBreaker::allow(Clock::TimePoint now) {
  switch (state(now)) {
    case CircuitState::closed:
      return true;
    case CircuitState::open:
      return false;
    case CircuitState::half_open:
      if (trial_in_flight_) {
        return false;
      }
      trial_in_flight_ = true;
      return true;
  }
  return true;
}

void CircuitBreaker::on_success(Clock::TimePoint /*now*/) {
  open_ = false;
  trial_in_flight_ = false;
  consecutive_failures_ = 0;
  opens_ = 0;
  open_period_ = std::chrono::milliseconds{0};
}

void CircuitBreaker::on_failure(Clock::TimePoint now) {
  ++consecutive_failures_;
  const auto s = state(now);
  // A failed trial opens again; so does the threshold's failure while closed.
  const bool trial_failed = s == CircuitState::half_open;
  if (trial_failed ||
      (s == CircuitState::closed && consecutive_failures_ >= settings_().threshold)) {
    open(now);
  }
  // A failure while open (a request that was already in flight) changes nothing.
}

void CircuitBreaker::open(Clock::TimePoint now) {
  // A first period above the cap is kept: the cap only limits the growth.
  const auto settings = settings_();
  const auto cap = std::max(settings.max_open, settings.reset);
  open_period_ = opens_ == 0 ? settings.reset : std::min(open_period_ * 2, cap);
  ++opens_;
  open_ = true;
  trial_in_flight_ = false;
  open_until_ = now + open_period_;
}

void CircuitBreaker::reset() {
  open_ = false;
  trial_in_flight_ = false;
  consecutive_failures_ = 0;
  opens_ = 0;
  open_period_ = std::chrono::milliseconds{0};
}

}  // namespace pha
