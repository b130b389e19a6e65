#include "agent/upstream/health_checker.hpp"

#include "agent/platform/thread_guard.hpp"

namespace pha {

HealthChecker::HealthChecker(Clock& clock, std::function<void()> check,
                             Live<std::chrono::seconds> interval)
    : clock_(clock), check_(std::move(check)), interval_(std::move(interval)) {}

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

void HealthChecker::run() {
  while (!interrupt_.stop_requested()) {
    check_();
    ++checks_;
    const Clock::Duration wait = jittered(interval_(), random_());
    if (clock_.wait_for(interrupt_, wait) == WakeReason::stopped) {
      break;
    }
  }
}

}  // namespace pha
