#include "agent/health/checker.hpp"

#include "agent/sync/loop.hpp"

namespace pha {

HealthChecker::HealthChecker(Clock& clock, std::function<void()> check,
                             std::chrono::seconds interval)
    : clock_(clock), check_(std::move(check)), interval_(interval) {}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  thread_ = std::thread([this] { run(); });
}

void HealthChecker::stop() {
  interrupt_.request_stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void HealthChecker::set_interval(std::chrono::seconds interval) {
  std::lock_guard lock(mutex_);
  interval_ = interval;  // from the next wait on
}

void HealthChecker::run() {
  while (!interrupt_.stop_requested()) {
    check_();
    ++checks_;
    Clock::Duration wait;
    {
      std::lock_guard lock(mutex_);
      wait = jittered(interval_, std::uniform_real_distribution<double>(0.0, 1.0)(rng_));
    }
    if (clock_.wait_for(interrupt_, wait) == WakeReason::stopped) {
      break;
    }
  }
}

}  // namespace pha
