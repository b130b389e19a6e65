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

void HealthChecker::reschedule() {
  interrupt_.wake();
}

void HealthChecker::run() {
  while (!interrupt_.stop_requested()) {
    check_();
    ++checks_;
    const auto since = clock_.now();
    WakeReason woke = WakeReason::woken;
    while (woke == WakeReason::woken) {  // reschedule(): the interval read again
      woke = clock_.wait_until(interrupt_, since + jittered(interval_(), random_()));
    }
    if (woke == WakeReason::stopped) {
      break;
    }
  }
}

}  // namespace pha
