#pragma once
// The one place where the sync loop, the health checks and the upstream
// monitors leave what they learn, and where the HTTP API reads consistent
// snapshots from (docs/http-api.md "GET /status", "GET /sync/status", "GET /vms"). Handlers
// never wait on an upstream: everything here is already known.
//
// The status history: the agent's overall state is the worst of its
// components (the sync, the Proxmox side, the AccountDB side), and an entry
// is appended only when that state or its message changes, bounded by
// STATUS_HISTORY_SIZE, oldest first. Messages are kept free of counts and
// timings so that a steady state does not add an entry every cycle.

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/core/metrics.hpp"
#include "agent/core/severity.hpp"
#include "agent/proxmox/guest.hpp"
#include "agent/sync/engine.hpp"

namespace pha {

struct StatusEntry {
  Severity status = Severity::ok;
  std::string message;
  std::int64_t timestamp = 0;
  bool operator==(const StatusEntry&) const = default;
};
nlohmann::json to_json(const StatusEntry& e);

// The parts of the overall state. `startup` is set while not every
// upstream's state is known, `redundancy` while either side is degraded
// (Components::check_redundancy); both are cleared otherwise.
enum class StatusComponent { sync = 0, proxmox = 1, accountdb = 2, startup = 3, redundancy = 4 };

struct SyncTotals {
  std::uint64_t cycles_ok = 0;
  std::uint64_t cycles_warning = 0;
  std::uint64_t cycles_error = 0;
  std::uint64_t created = 0;
  std::uint64_t updated = 0;
  std::uint64_t marked_missing = 0;
  std::uint64_t write_errors = 0;
};

struct SyncInfo {
  std::optional<std::int64_t> last_sync_time;     // end of the last successful cycle
  std::optional<std::int64_t> last_attempt_time;  // end of the last cycle
  std::uint64_t cycle_count = 0;
  std::int64_t consecutive_failures = 0;
  std::optional<CycleStats> last_stats;
  Severity last_status = Severity::ok;  // of the last cycle (with last_stats)
  std::string last_message;
  std::optional<std::int64_t> last_heartbeat_ok;  // unix s of the last good node_info or heartbeat
  SyncTotals totals;
  // What the last cycle that read Proxmox believed of its read: whether a
  // guest missing from it counts as gone, and why not; the rows whose guest
  // the user or token may not see.
  bool read_counts_for_missing = false;
  std::string read_incomplete_reason;
  std::vector<std::int64_t> hidden;
  HeldChanges held;               // what the change brake held in the last cycle that planned
  std::uint64_t held_cycles = 0;  // cycles that held something, since start
};

struct VmsSnapshot {
  std::vector<Guest> guests;  // the last Proxmox read, not whitelist-filtered
  std::int64_t as_of = 0;     // unix seconds of that read
  std::string node;
  // Each guest's place in AccountDB (the read's guests and the missing rows),
  // from the last cycle that planned; null before the first one.
  std::shared_ptr<const GuestAccounts> accounts;
};

class StatusStore {
 public:
  // STATUS_HISTORY_SIZE, read when the history grows or is read.
  StatusStore(Clock& clock, Live<std::size_t> history_size);

  // Sets one component's state; appends a history entry when the overall
  // state or its message changes.
  void set_state(StatusComponent component, Severity status, std::string message);
  // The component no longer counts for the overall state.
  void clear_state(StatusComponent component);
  std::optional<StatusEntry> current() const;
  std::vector<StatusEntry> history() const;

  // The end of a cycle: sync info, counters, the guests it read, the sync component.
  void record_cycle(const CycleReport& report);
  // A heartbeat or connection check (node_info) that succeeded.
  void record_heartbeat();

  SyncInfo sync() const;
  std::shared_ptr<const VmsSnapshot> vms() const;
  Histogram::Data cycle_durations() const { return durations_.data(); }

 private:
  void recompute(std::unique_lock<std::mutex>& lock);
  std::size_t history_limit() const;

  Clock& clock_;
  mutable std::mutex mutex_;
  Live<std::size_t> history_size_;
  std::deque<StatusEntry> history_;
  struct Part {
    std::optional<Severity> status;  // not set yet
    std::string message;
  };
  Part parts_[5];
  SyncInfo sync_;
  std::shared_ptr<const VmsSnapshot> vms_;
  Histogram durations_{cycle_buckets()};
};

// The sync component's state after a cycle (message without counts).
StatusEntry cycle_state(const CycleReport& report);

}  // namespace pha
