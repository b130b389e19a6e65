#pragma once
// Signals are turned into calls on an ordinary thread: SIGTERM and SIGINT
// into on_stop, SIGHUP into on_reload. The signals are blocked in every
// thread (block_signals() must run before any thread starts) and taken with
// sigwait by one watcher thread, so handlers may lock, log and allocate.

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/core/clock.hpp"

namespace pha {

// Blocks SIGTERM, SIGINT, SIGHUP (and the watcher's own wake-up signal) in
// the calling thread and every thread it starts afterwards.
void block_signals();

class SignalWatcher {
 public:
  SignalWatcher(std::function<void(int)> on_stop, std::function<void()> on_reload);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void loop();
  std::function<void(int)> on_stop_;
  std::function<void()> on_reload_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// A bound on how long a stop may take (docs/settings.md "Signals": an in-flight
// AccountDB request may finish, but within 10 s). arm() starts the count
// when the stop is requested; if the deadline passes first, `on_expiry`
// runs on the deadline's own thread (the agent's logs and exits there).
// Destroying it, once the stop finished in time, cancels it.
class StopDeadline {
 public:
  StopDeadline(Clock& clock, Clock::Duration grace, std::function<void()> on_expiry);
  ~StopDeadline();
  StopDeadline(const StopDeadline&) = delete;
  StopDeadline& operator=(const StopDeadline&) = delete;

  // Safe from any thread; only the first call counts (a second SIGTERM
  // does not extend the deadline).
  void arm();

 private:
  void count_down();
  Clock& clock_;
  Clock::Duration grace_;
  std::function<void()> on_expiry_;
  Interrupt cancel_;
  std::mutex mutex_;
  bool armed_ = false;
  std::thread thread_;
};

}  // namespace pha
