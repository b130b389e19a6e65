#pragma once
// A clock that moves only when a test advances it. Waits through it block
// until the fake time passes their deadline (or stop / wake), so loop tests
// never sleep.

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/core/clock.hpp"

namespace pha::test {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime wall = WallTime{std::chrono::seconds{1'800'000'000}})
      : wall_start_(wall) {}

  TimePoint now() const override {
    std::lock_guard lock(mutex_);
    return TimePoint{} + offset_;
  }
  WallTime wall_now() const override {
    std::lock_guard lock(mutex_);
    return wall_start_ + std::chrono::duration_cast<WallTime::duration>(offset_);
  }

  WakeReason wait_until(Interrupt& interrupt, TimePoint deadline) override {
    {
      std::lock_guard lock(mutex_);
      waiters_.push_back(&interrupt);
    }
    const auto result = interrupt.wait(std::chrono::steady_clock::now() + std::chrono::hours(24),
                                       [this, deadline] { return now() >= deadline; });
    std::lock_guard lock(mutex_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &interrupt));
    return result;
  }

  void advance(Duration d) {
    std::vector<Interrupt*> to_poke;
    {
      std::lock_guard lock(mutex_);
      offset_ += d;
      to_poke = waiters_;
    }
    for (auto* i : to_poke) {
      i->poke();
    }
  }

  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return waiters_.size();
  }

  // Waits (in real time, bounded) until `n` threads are blocked in this clock.
  bool await_waiters(std::size_t n,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (waiting() >= n) {
        return true;
      }
      std::this_thread::yield();
    }
    return waiting() >= n;
  }

 private:
  mutable std::mutex mutex_;
  WallTime wall_start_;
  Duration offset_{};
  std::vector<Interrupt*> waiters_;
};

}  // namespace pha::test
