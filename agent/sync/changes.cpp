#include "agent/sync/changes.hpp"

#include <algorithm>
#include <array>

#include "agent/platform/logging.hpp"
#include "agent/platform/thread_guard.hpp"

namespace pha {

void ChangeSchedule::seen(Clock::TimePoint now) {
  if (!pending_since_) {
    pending_since_ = now;
  }
  if (running_since_ && !seen_during_) {
    seen_during_ = now;  // the running cycle may have read Proxmox before it
  }
}

void ChangeSchedule::cycle_started(Clock::TimePoint at) {
  last_cycle_ = at;
  running_since_ = at;
  seen_during_.reset();
}

void ChangeSchedule::cycle_ended(bool success) {
  if (success && running_since_) {
    pending_since_ = seen_during_;
  }
  failures_ = success ? 0 : std::min(failures_ + 1, kMaxBackoffDoublings);
  running_since_.reset();
  seen_during_.reset();
}

std::optional<Clock::TimePoint> ChangeSchedule::due(const ChangeTimings& t) const {
  if (!pending_since_) {
    return std::nullopt;
  }
  auto at = *pending_since_ + t.settle;
  if (last_cycle_) {
    // After failed cycles the interval doubles: an outage is not a reason
    // to ask every few seconds (the loop's own schedule goes on as well).
    at = std::max(at, *last_cycle_ + t.min_interval * (1 << failures_));
  }
  return at;
}

bool changes_a_guest(const std::string& type) {
  // qemu-server PVE/API2/Qemu.pm and pve-container src/PVE/API2/LXC*.pm
  // fork_worker names (docs/proxmox.md "Change signals"). Not the HA
  // requests (hastart, hamigrate...): the real task follows them.
  static const std::array<std::string_view, 33> kTypes = {
      "qmstart",    "qmstop",     "qmshutdown", "qmreboot", "qmreset",    "qmsuspend", "qmpause",
      "qmresume",   "qmcreate",   "qmrestore",  "qmclone",  "qmdestroy",  "qmigrate",  "qmconfig",
      "qmrollback", "qmtemplate", "vzstart",    "vzstop",   "vzshutdown", "vzreboot",  "vzsuspend",
      "vzresume",   "vzcreate",   "vzrestore",  "vzclone",  "vzdestroy",  "vzmigrate", "vzrollback",
      "vztemplate", "qmtunnel",   "vzmtunnel",  "startall", "stopall"};
  return std::find(kTypes.begin(), kTypes.end(), type) != kTypes.end();
}

std::vector<ProxmoxTask> guest_changes(const std::vector<ProxmoxTask>& tasks,
                                       const std::string& node, std::set<std::string>& seen,
                                       std::int64_t since) {
  std::vector<ProxmoxTask> out;
  for (const auto& t : tasks) {
    if (!t.endtime || seen.contains(t.upid)) {
      continue;  // still running: its end is the change
    }
    seen.insert(t.upid);
    if (*t.endtime < since || !changes_a_guest(t.type)) {
      continue;
    }
    // A migration or a clone elsewhere may have brought a guest here (a
    // clone's task names the source VMID, and its node the source's).
    const bool elsewhere_counts = t.is_migration() || t.type == "qmclone" || t.type == "vzclone";
    if (t.node == node || elsewhere_counts) {
      out.push_back(t);
    }
  }
  return out;
}

GuestStates guest_states(const GuestList& list, const std::string& node) {
  GuestStates out;
  for (const auto& g : list.guests) {
    if (g.node == node) {
      out[g.vmid] = {g.status, g.name, g.node};
    }
  }
  return out;
}

ChangeWatcher::ChangeWatcher(ProxmoxClient& proxmox, SyncLoop& loop, Clock& clock,
                             Live<ChangeTimings> timings)
    : proxmox_(proxmox), loop_(loop), clock_(clock), timings_(std::move(timings)) {}

ChangeWatcher::~ChangeWatcher() {
  stop();
}

void ChangeWatcher::start() {
  started_at_ = clock_.unix_now();
  thread_ = std::thread([this] { run_guarded("changes", [this] { run(); }); });
}

void ChangeWatcher::stop() {
  interrupt_.request_stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void ChangeWatcher::cycle_started() {
  std::lock_guard lock(mutex_);
  schedule_.cycle_started(clock_.now());
}

void ChangeWatcher::cycle_ended(bool success) {
  std::lock_guard lock(mutex_);
  schedule_.cycle_ended(success);
}

ChangeStatus ChangeWatcher::status() const {
  std::lock_guard lock(mutex_);
  auto s = status_;
  s.watching = timings_().poll > Clock::Duration::zero();
  if (const auto due = schedule_.due(timings_())) {
    s.due_in_seconds = std::chrono::duration<double>(*due - clock_.now()).count();
  }
  if (const auto since = schedule_.pending_since()) {
    const auto behind = clock_.now() - *since;
    s.behind_seconds = std::chrono::duration<double>(behind).count();
    s.pending_since =
        clock_.unix_now() - std::chrono::duration_cast<std::chrono::seconds>(behind).count();
  }
  return s;
}

std::set<std::int64_t> ChangeWatcher::gone_by_task() const {
  std::lock_guard lock(mutex_);
  std::set<std::int64_t> out;
  const auto now = clock_.now();
  for (const auto& [vmid, at] : gone_) {
    if (now - at < std::chrono::hours(1)) {
      out.insert(vmid);
    }
  }
  return out;
}

void ChangeWatcher::seen(const std::string& what, bool task) {
  std::lock_guard lock(mutex_);
  schedule_.seen(clock_.now());
  status_.last_seen = clock_.unix_now();
  status_.last_change = what;
  ++status_.changes;
  ++(task ? status_.task_changes : status_.status_changes);
}

void ChangeWatcher::count_poll(bool ok) {
  std::lock_guard lock(mutex_);
  ++status_.polls;
  status_.poll_errors += ok ? 0 : 1;
}

void ChangeWatcher::poll_tasks() {
  auto tasks = proxmox_.cluster_tasks();
  count_poll(tasks.ok());
  if (!tasks) {
    if (!std::exchange(tasks_failed_logged_, true)) {
      log::warn("change_poll_failed",
                "cannot read /cluster/tasks: changes wait for the next cycle until it answers",
                {{"error", tasks.error().message}});
    }
    return;
  }
  tasks_failed_logged_ = false;
  const auto node = proxmox_.node_name();
  for (const auto& t : guest_changes(tasks->tasks, node, seen_tasks_, started_at_)) {
    log::debug("change_seen", "a guest task ended",
               {{"type", t.type}, {"vmid", t.id}, {"node", t.node}});
    seen(t.type + " of " + t.id + " on " + t.node, true);
    const bool leaves = t.is_migration() || t.type == "qmdestroy" || t.type == "vzdestroy";
    if (leaves && t.node == node && t.finished_ok() && t.vmid()) {
      std::lock_guard lock(mutex_);
      gone_[*t.vmid()] = clock_.now();
    }
  }
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    std::erase_if(gone_, [&](const auto& e) { return now - e.second >= std::chrono::hours(1); });
  }
  // The list holds the last 25 tasks of each node: forget what left it.
  std::set<std::string> listed;
  for (const auto& t : tasks->tasks) {
    listed.insert(t.upid);
  }
  std::erase_if(seen_tasks_, [&](const std::string& u) { return !listed.contains(u); });
}

void ChangeWatcher::poll_status() {
  auto list = proxmox_.read_cluster_guests();
  count_poll(list.ok());
  if (!list) {
    return;
  }
  auto now = guest_states(*list, proxmox_.node_name());
  if (states_ && now != *states_) {
    std::string what;
    for (const auto& [vmid, state] : now) {
      const auto it = states_->find(vmid);
      if (it == states_->end() || it->second != state) {
        what = "status of " + std::to_string(vmid);
        break;
      }
    }
    seen(what.empty() ? std::string("a guest left the node") : what, false);
  }
  states_ = std::move(now);
}

void ChangeWatcher::run() {
  while (!interrupt_.stop_requested()) {
    const auto t = timings_();
    const auto now = clock_.now();
    std::optional<Clock::TimePoint> due;
    if (t.poll > Clock::Duration::zero()) {
      if (!last_tasks_poll_ || now >= *last_tasks_poll_ + t.poll) {
        last_tasks_poll_ = now;
        poll_tasks();
      }
      if (!last_status_poll_ || now >= *last_status_poll_ + std::max(t.poll, t.status_poll)) {
        last_status_poll_ = now;
        poll_status();
      }
      {
        std::lock_guard lock(mutex_);
        due = schedule_.due(t);
      }
      if (due && clock_.now() >= *due && !loop_.syncing()) {
        {
          std::lock_guard lock(mutex_);
          ++status_.cycles;
          // Until the cycle begins, the same change must not trigger again.
          schedule_.cycle_started(clock_.now());
        }
        log::debug("change_cycle", "a change was seen: a cycle now");
        loop_.trigger();
        due.reset();
      }
    }
    auto wake =
        clock_.now() + (t.poll > Clock::Duration::zero() ? t.poll : std::chrono::seconds(1));
    if (due) {
      wake = std::min(wake, std::max(*due, clock_.now() + std::chrono::milliseconds(100)));
    }
    if (clock_.wait_until(interrupt_, wake) == WakeReason::stopped) {
      break;
    }
  }
}

}  // namespace pha
