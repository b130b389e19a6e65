#include "agent/upstream/health_checker.hpp"

#include "agent/platform/thread_guard.hpp"

namespace pha {

HealthChecker::HealthChecker(Clock& clock, std::function<void()> check,
                             std::chrono::seconds interval)
    : clock_(clock), check_(std::move(check)), interval_(interval) {}

HealthChecker::~HealthChecker() {
  stop();
}

void HealthChecker::start() {
  thread_ = std::thread([this] { run_guarded("health", [this] { run(); }); });
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
      wait = jittered(interval_, random_());
    }
    if (clock_.wait_for(interrupt_, wait) == WakeReason::stopped) {
      break;
    }
  }
}

}  // namespace pha
