#pragma once
// One sync cycle. Its steps, their order and which of them fail the cycle
// are defined once, in docs/sync.md "The cycle"; the private functions below
// carry them out in that order. A failed put_vm only makes the cycle a warning.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/accountdb/client.hpp"
#include "agent/config/live_settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/severity.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/sync/guest_ledger.hpp"
#include "agent/sync/plan.hpp"
#include "agent/sync/whitelist_cache.hpp"

namespace pha {

// What the change brake holds (docs/sync.md "The change brake"): one
// confirmable unit, named by an id that stays the same while the same
// changes are held.
struct HeldChanges {
  std::string id;          // "" when nothing is held
  std::int64_t since = 0;  // unix seconds the agent first held exactly these
  std::vector<Hold> holds;
  std::vector<PlannedRequest> requests;  // what would be sent once released
  bool empty() const { return id.empty(); }
};
nlohmann::json to_json(const HeldChanges& h);

struct CycleStats {
  std::int64_t created = 0;
  std::int64_t updated = 0;
  std::int64_t unchanged = 0;
  std::int64_t filtered = 0;
  std::int64_t marked_missing = 0;
  std::int64_t errors = 0;
  std::int64_t total_proxmox_vms = 0;
  std::int64_t total_vms_before_filter = 0;
  std::int64_t total_vms_after_filter = 0;
  std::int64_t filtered_out = 0;
  bool whitelist_enabled = false;
  std::int64_t whitelist_count = 0;
  std::int64_t whitelist_last_updated = 0;
  bool used_cached_whitelist = false;
  std::int64_t online_vms = 0;
  std::int64_t duration_ms = 0;
  std::int64_t requests_sent = 0;  // put_vm requests sent (writes)
  // Beyond the common keys (docs/sync.md "Cycle report"): every request of the cycle, per upstream.
  std::int64_t accountdb_requests = 0;
  std::int64_t proxmox_requests = 0;
};
nlohmann::json to_json(const CycleStats& s);

struct CycleReport {
  bool success = false;  // every step that must succeed did (some put_vm may still have failed)
  Severity status = Severity::error;
  std::string message;
  bool dry_run = false;
  std::int64_t started_at = 0;  // unix seconds
  std::int64_t finished_at = 0;
  CycleStats stats;
  std::vector<Guest> guests;            // the whole read, not whitelist-filtered
  std::vector<PlannedRequest> planned;  // what was (or, in a dry run, would be) sent
  std::vector<std::string> errors;      // one line per failed request
  std::vector<std::string> warnings;
  // Why the cycle failed, for the loop's schedule.
  bool accountdb_unreachable = false;    // node_info failed with a transient failure
  bool accountdb_auth_failed = false;    // node_info answered 401/404: stop writing, probe slowly
  bool connected = false;                // node_info was made and succeeded
  std::optional<std::int64_t> owner_id;  // from the last successful node_info
  // The Proxmox read of this cycle, for /vms (false when the cycle ended before it).
  bool proxmox_read = false;
  std::int64_t proxmox_read_at = 0;
  std::string node;
  // Each guest's place in AccountDB after this cycle (the ledger's snapshot).
  std::shared_ptr<const GuestAccounts> accounts;
  // Whether this cycle's read counted towards guests that are gone, and why not.
  bool read_counts_for_missing = false;
  std::string read_incomplete_reason;
  std::vector<std::int64_t> hidden;  // rows whose guest the user or token may not see
  // What the change brake held back this cycle (empty: nothing).
  HeldChanges held;
  // Guests that migrated here whose row was not handed over this cycle
  // (docs/sync.md "Guests that move"): created anew, and said so.
  struct NotHandedOver {
    std::int64_t vmid = 0;
    HandoverFailure failure;
  };
  std::vector<NotHandedOver> not_handed_over;
};
// The --once report: {"status", "message", "stats", "guests", "planned"}.
nlohmann::json to_json(const CycleReport& r);

struct WhitelistFetch {
  std::optional<Error> error;                // the fetch failed (the old copy is stale now)
  std::optional<std::string> persist_error;  // fetched, but not written to the state file
  WhitelistStatus status;                    // after the fetch
};

// Asks the agent at `url` (a base URL) for GET /vms/{vmid}: the answer's
// body, or why there is none (docs/sync.md "Guests that move").
using PeerAsk = std::function<Result<nlohmann::json>(const std::string& url, std::int64_t vmid)>;

class SyncEngine {
 public:
  // The settings are read at the start of each cycle (a reload applies from
  // the next one on), and by the whitelist cache when it decides. The node id
  // and the state directory are the start's.
  // `settings` must outlive the engine.
  SyncEngine(const LiveSettings& settings, ProxmoxClient& proxmox, AccountDbClient& accountdb,
             Clock& clock);

  // Reads the persisted whitelist and sync state; returns notes for the log.
  std::vector<std::string> load_state();
  // How the agents of the other nodes are asked for a guest's row; unset:
  // no guest is handed over.
  void set_peer_ask(PeerAsk ask) { ask_peer_ = std::move(ask); }
  // The guests whose destroy or migration away the task list showed (the
  // change watcher's); each cycle's plan gets them (PlanInput::gone_by_task).
  void set_gone_by_task(std::function<std::set<std::int64_t>()> gone) {
    gone_by_task_ = std::move(gone);
  }
  CycleReport run_cycle(bool dry_run);

  bool accountdb_down() const { return accountdb_down_.load(); }
  // The whitelist as it is now. Never waits for a running cycle.
  WhitelistStatus whitelist_status() const;
  std::vector<std::int64_t> whitelist_vmids() const;
  // POST /whitelist/refresh: fetch it now (whitelist, or whitelist_legacy), whatever its age. Runs
  // beside a cycle without waiting for it. The error says why it failed.
  Result<WhitelistStatus> refresh_whitelist();

  // What the change brake holds now. Never waits for a running cycle.
  HeldChanges held() const;
  // POST /sync/confirm: the operator vouches for the held changes named
  // `id` (as held() shows them); the next cycle writes them if it still
  // plans them. An id that is not the one held now is refused (conflict),
  // so that a confirm never covers changes the operator did not see.
  Result<HeldChanges> confirm(const std::string& id);

 private:
  // The steps of a cycle (docs/sync.md "The cycle"), in their order.
  Status connect(CycleReport& report, const Settings& settings, std::int64_t now);
  WhitelistView cycle_whitelist(CycleReport& report, std::int64_t now);
  Result<GuestRead> cycle_guests(CycleReport& report);
  Result<std::vector<AccountDbRow>> cycle_rows(CycleReport& report);
  Plan cycle_plan(PlanInput in, CycleReport& report);
  // Where the mark candidates are in the cluster, and whether the user or
  // token may still see those it shows nowhere; false when it cannot tell.
  bool look_up_candidates(const std::vector<std::int64_t>& candidates, PlanInput& in,
                          CycleReport& report);
  void record_holds(const Plan& plan, CycleReport& report);
  // For the plan's guests without a row that migrated here: the row the
  // agent of the node they left names; false when nothing new was learnt.
  bool look_up_handovers(const Plan& plan, PlanInput& in, CycleReport& report);
  // The rows found (or not) for guests that migrated here, until they have
  // a row of their own here.
  void recall_handovers(PlanInput& in) const;
  // The row the agent of node `from` names for guest `vmid`, checked.
  Result<Handover> ask_source(std::int64_t vmid, const std::string& from, const PlanInput& in,
                              std::optional<ClusterStatus>& cluster);
  // The handover (or why not) of `vmid`: remembered, in the plan's input, logged.
  void record_handover(std::int64_t vmid, const std::string& from, const Result<Handover>& h,
                       PlanInput& in, CycleReport& report);
  // A handover written to a row that no longer existed: AccountDB stored
  // the guest as row `new_row`; reported as a row not handed over.
  void note_handover_outcome(const PlannedRequest& req, std::int64_t new_row, CycleReport& report);
  // Remembers a write that landed; the new row's id when AccountDB stored an
  // update as a new row (the row id no longer existed).
  std::optional<std::int64_t> remember_write(const PlannedRequest& req,
                                             std::optional<std::int64_t> row_id);
  void deliver(const Plan& plan, CycleReport& report);
  void conclude(CycleReport& report);
  CycleReport fail(CycleReport r, const std::string& message);
  void send(const std::vector<PlannedRequest>& requests, CycleReport& report);
  // A put_vm that landed: the memory and the cycle's counts.
  void landed(const PlannedRequest& req, std::optional<std::int64_t> row_id, std::int64_t now,
              CycleReport& report);
  void persist_memory();
  // Fetches (whitelist, or whitelist_legacy) and stores the whitelist.
  WhitelistFetch fetch_whitelist(std::int64_t now);

  // Held for a whole cycle: guards memory_ and the cycle's own state.
  mutable std::mutex mutex_;
  const LiveSettings& settings_;
  // Held only for a moment: guards whitelist_, so that status reads and a
  // refresh never wait for a cycle.
  mutable std::mutex whitelist_mutex_;
  ProxmoxClient& proxmox_;
  AccountDbClient& accountdb_;
  Clock& clock_;
  const std::int64_t node_id_;  // the state files are this node's
  WhitelistCache whitelist_;
  SyncMemory memory_;
  SyncMemory persisted_memory_;
  GuestLedger ledger_;
  std::string memory_file_;
  std::optional<std::int64_t> last_connect_ok_;
  std::string last_incomplete_reason_;  // of the last read of the node's own API
  std::optional<std::int64_t> owner_id_;
  std::atomic<bool> accountdb_down_{false};
  // Guards held_ and confirmed_, held only for a moment (status reads,
  // POST /sync/confirm) so that neither waits for a cycle.
  mutable std::mutex held_mutex_;
  HeldChanges held_;
  Confirmed confirmed_;
  PeerAsk ask_peer_;
  std::function<std::set<std::int64_t>()> gone_by_task_;
  // Per guest without a row that was looked up: the row handed over, why
  // not, or neither (no migration to it): asked once while it stays so.
  struct HandoverSeen {
    std::optional<Handover> handover;
    std::optional<HandoverFailure> failure;
  };
  std::map<std::int64_t, HandoverSeen> handover_seen_;
};

}  // namespace pha
