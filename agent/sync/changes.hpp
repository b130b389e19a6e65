#pragma once
// Change-driven sync (docs/sync.md "Changes seen between cycles"): the agent
// learns cheaply that a guest of its node changed, and runs a cycle soon
// after instead of waiting for UPDATE_INTERVAL, which stays the safety net.
//
// Two signals, both answered by any node from the cluster file system
// (docs/proxmox.md "Change signals"):
// - GET /cluster/tasks every CHANGE_POLL_INTERVAL: a guest task of this node
//   that ended (start, stop, create, clone, destroy, migrate, restore, an
//   asynchronous config change), or a migration or clone that ended anywhere
//   (the guest may have come here);
// - GET /cluster/resources?type=vm every 10 s (pvestatd's period: polling
//   more often shows nothing new): this node's guests with their status and
//   name, for what leaves no task (a guest that stops from inside or
//   crashes, a rename with `qm set`).
// A change starts a cycle CHANGE_SETTLE after it was first seen, and not
// sooner than CHANGE_MIN_INTERVAL after the last cycle began, so that a
// burst (a mass start) is a few cycles.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/sync/loop.hpp"

namespace pha {

struct ChangeTimings {
  Clock::Duration poll{std::chrono::seconds(2)};          // CHANGE_POLL_INTERVAL; 0: off
  Clock::Duration settle{std::chrono::seconds(1)};        // CHANGE_SETTLE
  Clock::Duration min_interval{std::chrono::seconds(5)};  // CHANGE_MIN_INTERVAL
  Clock::Duration status_poll{std::chrono::seconds(10)};  // fixed: pvestatd's period
  bool operator==(const ChangeTimings&) const = default;
};

// When a change-driven cycle is due. Pure: the watcher feeds it. Not thread-safe.
class ChangeSchedule {
 public:
  // A change was seen at `now`.
  void seen(Clock::TimePoint now);
  // A cycle began at `at`; it read Proxmox after what was seen before `at`.
  void cycle_started(Clock::TimePoint at);
  // It ended: a good one covers the changes seen before it began; a failed
  // one leaves them pending, and each failure in a row doubles the minimum
  // interval before the next cycle for them (up to 64 times).
  void cycle_ended(bool success);
  // When the cycle for the pending changes is due; none when nothing is pending.
  std::optional<Clock::TimePoint> due(const ChangeTimings& t) const;
  std::optional<Clock::TimePoint> pending_since() const { return pending_since_; }

 private:
  std::optional<Clock::TimePoint> pending_since_;
  std::optional<Clock::TimePoint> last_cycle_;     // the start of the last cycle
  std::optional<Clock::TimePoint> running_since_;  // the start of the cycle running now
  std::optional<Clock::TimePoint> seen_during_;    // the first change seen while it runs
  static constexpr int kMaxBackoffDoublings = 6;
  int failures_ = 0;  // failed cycles in a row
};

// What one poll of /cluster/tasks shows: the tasks that ended since the last
// poll and mean a change for `node`'s guests. `seen` holds the UPIDs already
// handled (updated); `since` is the unix time before which an ended task is
// old news (the agent's start).
std::vector<ProxmoxTask> guest_changes(const std::vector<ProxmoxTask>& tasks,
                                       const std::string& node, std::set<std::string>& seen,
                                       std::int64_t since);
// Whether a task type changes a guest: its state, its node, or its existence.
bool changes_a_guest(const std::string& type);

// This node's guests as /cluster/resources shows them: what a change of
// status, name or node shows in.
using GuestStates = std::map<std::int64_t, std::tuple<std::string, std::string, std::string>>;
GuestStates guest_states(const GuestList& list, const std::string& node);

struct ChangeStatus {
  bool watching = false;
  std::optional<std::int64_t> last_seen;  // unix seconds
  std::string last_change;                // "qmstart of 104 on pve1", "status of 104"
  std::optional<std::int64_t> pending_since;
  std::optional<double> due_in_seconds;  // when the cycle for it starts (negative: waits for one)
  double behind_seconds = 0;  // how far AccountDB is believed to be behind: 0 with nothing pending
  std::uint64_t changes = 0;  // changes seen
  std::uint64_t cycles = 0;   // cycles they started
  std::uint64_t polls = 0;
  std::uint64_t poll_errors = 0;
  std::uint64_t task_changes = 0;
  std::uint64_t status_changes = 0;
};

class ChangeWatcher {
 public:
  ChangeWatcher(ProxmoxClient& proxmox, SyncLoop& loop, Clock& clock, Live<ChangeTimings> timings);
  ~ChangeWatcher();
  ChangeWatcher(const ChangeWatcher&) = delete;
  ChangeWatcher& operator=(const ChangeWatcher&) = delete;

  void start();
  void stop();
  // From the loop's thread, around each cycle.
  void cycle_started();
  void cycle_ended(bool success);
  ChangeStatus status() const;
  // The guests of this node whose destroy or migration away ended OK in the
  // last hour, as the task list showed them (plan.hpp PlanInput::gone_by_task).
  std::set<std::int64_t> gone_by_task() const;

 private:
  void run();
  void poll_tasks();
  void poll_status();
  void count_poll(bool ok);  // /status polls and poll_errors
  void seen(const std::string& what, bool task);

  ProxmoxClient& proxmox_;
  SyncLoop& loop_;
  Clock& clock_;
  Live<ChangeTimings> timings_;
  Interrupt interrupt_;
  std::thread thread_;
  mutable std::mutex mutex_;
  ChangeSchedule schedule_;
  ChangeStatus status_;
  std::set<std::string> seen_tasks_;
  std::map<std::int64_t, Clock::TimePoint> gone_;  // by VMID: when its task was seen
  std::optional<GuestStates> states_;
  std::int64_t started_at_ = 0;  // unix seconds
  std::optional<Clock::TimePoint> last_tasks_poll_;
  std::optional<Clock::TimePoint> last_status_poll_;
  bool tasks_failed_logged_ = false;
};

}  // namespace pha
