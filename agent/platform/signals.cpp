#include "agent/platform/signals.hpp"

#include <csignal>
#include <pthread.h>

namespace pha {

namespace {

// The watcher's own wake-up at shutdown.
constexpr int kWakeSignal = SIGUSR2;

sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, kWakeSignal);
  return set;
}

}  // namespace

void block_signals() {
  const sigset_t set = watched();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

SignalWatcher::SignalWatcher(std::function<void(int)> on_stop, std::function<void()> on_reload)
    : on_stop_(std::move(on_stop)), on_reload_(std::move(on_reload)), thread_([this] { loop(); }) {}

SignalWatcher::~SignalWatcher() {
  done_ = true;
  pthread_kill(thread_.native_handle(), kWakeSignal);
  thread_.join();
}

void SignalWatcher::loop() {
  const sigset_t set = watched();
  while (!done_) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) {
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      on_stop_(sig);
    } else if (sig == SIGHUP) {
      on_reload_();
    }
  }
}

StopDeadline::StopDeadline(Clock& clock, Clock::Duration grace, std::function<void()> on_expiry)
    : clock_(clock), grace_(grace), on_expiry_(std::move(on_expiry)) {}

StopDeadline::~StopDeadline() {
  {
    // Under the lock: an arm() racing with the destructor either started
    // the thread before (and it is joined) or sees the cancel and does nothing.
    std::lock_guard lock(mutex_);
    cancel_.request_stop();
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void StopDeadline::arm() {
  std::lock_guard lock(mutex_);
  if (armed_ || cancel_.stop_requested()) {
    return;
  }
  armed_ = true;
  thread_ = std::thread([this] { count_down(); });
}

void StopDeadline::count_down() {
  const auto deadline = clock_.now() + grace_;
  WakeReason reason = WakeReason::woken;
  while (reason == WakeReason::woken) {  // nobody wakes it; a stray wake-up must not end it early
    reason = clock_.wait_until(cancel_, deadline);
  }
  if (reason == WakeReason::deadline) {
    on_expiry_();
  }
}

}  // namespace pha
