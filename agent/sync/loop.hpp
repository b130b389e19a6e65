#pragma once
// The sync loop: a cycle at start-up, then every UPDATE_INTERVAL (±10 %
// jitter); when AccountDB was found down, cycles follow the reconnect
// schedule (5 s, doubling, capped at RETRY_MAX_DELAY) instead; a 401 waits
// the cap. A separate heartbeat timer (heartbeat) pauses while AccountDB is down.
// Every wait ends at once on stop; trigger() runs a cycle now, and triggers
// that arrive while a cycle runs are merged into it. reload() is not merged:
// the cycle it asks for begins after it, with the settings it put in force.

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/accountdb/client.hpp"
#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/sync/engine.hpp"

namespace pha {

struct LoopTimings {
  std::chrono::seconds update_interval{300};
  std::chrono::seconds heartbeat_interval{60};
  std::chrono::milliseconds retry_max_delay{120'000};
};

class SyncLoop {
 public:
  using CycleObserver = std::function<void(const CycleReport&)>;

  // The timings are read before each wait (a reload applies from the next one).
  SyncLoop(SyncEngine& engine, AccountDbClient& accountdb, Clock& clock, Live<LoopTimings> timings,
           bool dry_run, CycleObserver on_cycle);
  ~SyncLoop();
  SyncLoop(const SyncLoop&) = delete;
  SyncLoop& operator=(const SyncLoop&) = delete;

  void start();
  void stop();     // ends every wait at once and joins the threads
  void trigger();  // run a cycle now (merged with one that is running)
  // New settings are in force (SIGHUP): a cycle with them now, or right
  // after the one that is running (which began with the old ones); the
  // heartbeat's wait is measured again with the new interval.
  void reload();
  // Called on the loop's thread as each cycle begins. Set before start().
  void set_cycle_start_observer(std::function<void()> observer) {
    on_cycle_start_ = std::move(observer);
  }
  // Called after each heartbeat with whether it succeeded. Set before start().
  void set_heartbeat_observer(std::function<void(bool)> observer) {
    on_heartbeat_ = std::move(observer);
  }
  bool running() const { return sync_.joinable(); }

  std::uint64_t cycles() const { return cycles_.load(); }
  bool syncing() const { return syncing_.load(); }
  // When the next cycle is due (unix seconds), for /status.
  std::int64_t next_cycle_at() const { return next_cycle_at_.load(); }
  // The steady time of the last completed cycle, for the watchdog and /health.
  Clock::TimePoint last_progress() const;

 private:
  void sync_thread();
  void heartbeat_thread();
  double random();
  LoopTimings timings() const;

  SyncEngine& engine_;
  AccountDbClient& accountdb_;
  Clock& clock_;
  bool dry_run_;
  CycleObserver on_cycle_;
  std::function<void()> on_cycle_start_;
  std::function<void(bool)> on_heartbeat_;
  mutable std::mutex mutex_;
  Live<LoopTimings> timings_;
  RandomSource random_;
  Interrupt sync_interrupt_;
  Interrupt heartbeat_interrupt_;
  std::thread sync_;
  std::thread heartbeat_;
  std::atomic<std::uint64_t> cycles_{0};
  std::atomic<bool> syncing_{false};
  std::atomic<std::int64_t> next_cycle_at_{0};
  std::atomic<bool> rerun_{false};  // reload() asked for a cycle that has not begun yet
  Clock::TimePoint last_progress_{};
};

}  // namespace pha
