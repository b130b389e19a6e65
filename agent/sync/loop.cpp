#include "agent/sync/loop.hpp"

#include "agent/net/retry.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/thread_guard.hpp"

namespace pha {

SyncLoop::SyncLoop(SyncEngine& engine, AccountDbClient& accountdb, Clock& clock,
                   Live<LoopTimings> timings, bool dry_run, CycleObserver on_cycle)
    : engine_(engine),
      accountdb_(accountdb),
      clock_(clock),
      dry_run_(dry_run),
      on_cycle_(std::move(on_cycle)),
      timings_(std::move(timings)),
      last_progress_(clock.now()) {}

SyncLoop::~SyncLoop() {
  stop();
}

void SyncLoop::start() {
  sync_ = std::thread([this] { run_guarded("sync", [this] { sync_thread(); }); });
  heartbeat_ = std::thread([this] { run_guarded("heartbeat", [this] { heartbeat_thread(); }); });
}

void SyncLoop::stop() {
  sync_interrupt_.request_stop();
  heartbeat_interrupt_.request_stop();
  if (sync_.joinable()) {
    sync_.join();
  }
  if (heartbeat_.joinable()) {
    heartbeat_.join();
  }
}

void SyncLoop::trigger() {
  sync_interrupt_.wake();
}

void SyncLoop::reload() {
  rerun_ = true;  // before the wake: the loop reads it after dropping the wake
  sync_interrupt_.wake();
  heartbeat_interrupt_.wake();
}

LoopTimings SyncLoop::timings() const {
  return timings_();
}

double SyncLoop::random() {
  return random_();
}

Clock::TimePoint SyncLoop::last_progress() const {
  std::lock_guard lock(mutex_);
  return last_progress_;
}

void SyncLoop::sync_thread() {
  int probes = 0;  // reconnect attempts since AccountDB was found down
  while (!sync_interrupt_.stop_requested()) {
    // Every event of the cycle carries its number (CYCLE= in the journal).
    const log::ScopedFields cycle({{"cycle", cycles_.load() + 1}});
    syncing_ = true;
    rerun_ = false;  // a reload before this point is served by this cycle
    if (on_cycle_start_) {
      on_cycle_start_();
    }
    const auto report = engine_.run_cycle(dry_run_);
    syncing_ = false;
    // Triggers that arrived during the cycle were served by it; a reload
    // during it was not (the cycle began with the old settings).
    sync_interrupt_.clear_wake();
    const bool rerun = rerun_.load();
    ++cycles_;
    {
      std::lock_guard lock(mutex_);
      last_progress_ = clock_.now();
    }
    const auto t = timings();
    Clock::Duration wait{};
    if (rerun) {
      wait = Clock::Duration::zero();
    } else if (report.accountdb_unreachable) {
      wait = reconnect_delay(t.retry_max_delay, ++probes, random());
    } else if (report.accountdb_auth_failed) {
      probes = 0;
      wait =
          jittered(t.retry_max_delay, random());  // the slow schedule: the key must be fixed first
    } else {
      probes = 0;
      wait = jittered(t.update_interval, random());
    }
    next_cycle_at_ =
        clock_.unix_now() + std::chrono::duration_cast<std::chrono::seconds>(wait).count();
    // After the schedule, so the observer can say when the next cycle runs.
    if (on_cycle_) {
      on_cycle_(report);
    }
    if (clock_.wait_for(sync_interrupt_, wait) == WakeReason::stopped) {
      break;
    }
  }
}

void SyncLoop::heartbeat_thread() {
  auto since = clock_.now();  // of the last heartbeat (or the start)
  while (!heartbeat_interrupt_.stop_requested()) {
    const auto due = since + jittered(timings().heartbeat_interval, random());
    const auto woke = clock_.wait_until(heartbeat_interrupt_, due);
    if (woke == WakeReason::stopped) {
      break;
    }
    if (woke == WakeReason::woken) {
      continue;  // a reload: the wait since the last one, with the new interval
    }
    since = clock_.now();
    if (engine_.accountdb_down() || dry_run_) {
      continue;  // the reconnect schedule probes AccountDB instead
    }
    const auto r = accountdb_.heartbeat();
    if (!r.ok()) {
      log::warn("heartbeat_failed", r.error().message, {{"kind", to_string(r.error().kind)}});
    }
    if (on_heartbeat_) {
      on_heartbeat_(r.ok());
    }
  }
}

}  // namespace pha
