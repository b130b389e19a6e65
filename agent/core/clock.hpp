#pragma once
// Time is passed in: every loop and timeout in the agent reads a Clock and
// waits through it, so tests can drive time with a FakeClock instead of
// sleeping.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace pha {

// Why a wait ended.
enum class WakeReason { deadline, woken, stopped };

// What a loop waits on: a sticky stop request that ends every wait at once,
// and a one-shot wake-up (e.g. POST /sync/trigger) that ends the current or
// the next wait. Thread-safe.
class Interrupt {
 public:
  void request_stop();
  bool stop_requested() const { return stop_.load(std::memory_order_acquire); }
  // Ends the current wait, or the next one if nobody waits; several wake()
  // calls before the waiter runs merge into one.
  void wake();
  // Drops a pending wake-up (wakes that arrived while the work they asked
  // for was already running are merged into it).
  void clear_wake();

  // Blocks until stop, a wake-up or `expired()`. `expired` is re-checked
  // whenever poke() is called and at the real time `recheck`. Used by clocks.
  WakeReason wait(std::chrono::steady_clock::time_point recheck,
                  const std::function<bool()>& expired);
  // Makes a waiter re-check its `expired` predicate (a fake clock moved).
  void poke();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  bool woken_ = false;
};

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  using WallTime = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  // Monotonic time, for intervals and deadlines.
  virtual TimePoint now() const = 0;
  // Calendar time, for timestamps shown to people and stored in files.
  virtual WallTime wall_now() const = 0;
  // Blocks until `deadline`, a stop request or a wake-up of `interrupt`.
  virtual WakeReason wait_until(Interrupt& interrupt, TimePoint deadline) = 0;

  WakeReason wait_for(Interrupt& interrupt, Duration d) { return wait_until(interrupt, now() + d); }
  // Unix seconds of wall_now().
  long long unix_now() const;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  WallTime wall_now() const override { return std::chrono::system_clock::now(); }
  WakeReason wait_until(Interrupt& interrupt, TimePoint deadline) override;
};

}  // namespace pha
