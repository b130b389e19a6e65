#pragma once
// The periodic health checks of docs/failover.md "Health checks": one check
// at start, then every HEALTH_CHECK_INTERVAL with ±10 % jitter, one at a
// time, on its own thread. What a check does (GET /version on each host) is
// the caller's; its outcome reaches the monitors through the HTTP client.

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"

namespace pha {

class HealthChecker {
 public:
  HealthChecker(Clock& clock, std::function<void()> check, Live<std::chrono::seconds> interval);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  void stop();  // ends the wait at once; a running check finishes first
  // The interval may have changed (a reload): the wait since the last check
  // is measured again with it, so a shorter one takes effect now rather
  // than after the old wait.
  void reschedule();
  std::uint64_t checks() const { return checks_.load(); }

 private:
  void run();

  Clock& clock_;
  std::function<void()> check_;
  Live<std::chrono::seconds> interval_;  // read before each wait
  RandomSource random_;
  Interrupt interrupt_;
  std::thread thread_;
  std::atomic<std::uint64_t> checks_{0};
};

}  // namespace pha
