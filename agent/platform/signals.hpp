#pragma once
// Signals are turned into calls on an ordinary thread: SIGTERM and SIGINT
// into on_stop, SIGHUP into on_reload. The signals are blocked in every
// thread (block_signals() must run before any thread starts) and taken with
// sigwait by one watcher thread, so handlers may lock, log and allocate.

#include <atomic>
#include <functional>
#include <thread>

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

}  // namespace pha
