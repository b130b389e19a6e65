#include "agent/core/clock.hpp"

namespace pha {

void Interrupt::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

void Interrupt::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Interrupt::clear_wake() {
  std::lock_guard lock(mutex_);
  woken_ = false;
}

void Interrupt::poke() {
  // Taking the lock orders this after a waiter's predicate check, so the
  // notification cannot fall between its check and its wait.
  { std::lock_guard lock(mutex_); }
  cv_.notify_all();
}

WakeReason Interrupt::wait(std::chrono::steady_clock::time_point recheck,
                           const std::function<bool()>& expired) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (stop_.load(std::memory_order_acquire)) {
      return WakeReason::stopped;
    }
    if (woken_) {
      woken_ = false;
      return WakeReason::woken;
    }
    if (expired()) {
      return WakeReason::deadline;
    }
    // A timeout only re-checks the predicates: `expired` decides.
    cv_.wait_until(lock, recheck);
  }
}

long long Clock::unix_now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(wall_now().time_since_epoch()).count();
}

WakeReason SystemClock::wait_until(Interrupt& interrupt, TimePoint deadline) {
  return interrupt.wait(deadline,
                        [deadline] { return std::chrono::steady_clock::now() >= deadline; });
}

}  // namespace pha
