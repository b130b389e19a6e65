#pragma once
// The sync plan: a pure function of what Proxmox shows, the whitelist, what
// AccountDB has (list_vms), what the agent remembers having sent, the settings
// and the time. It decides every put_vm request of a cycle (docs/sync.md "Only
// changes", "Creates" and "Guests that are gone"); the engine only carries them out.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/accountdb/types.hpp"
#include "agent/proxmox/guest.hpp"

namespace pha {

struct WhitelistView {
  bool known = false;            // false: no usable whitelist (it is "unknown")
  std::set<std::int64_t> vmids;  // known and empty: filters nothing
  bool filters() const { return known && !vmids.empty(); }
};

// What the agent remembers between cycles (persisted in the state directory).
struct SyncMemory {
  std::map<std::int64_t, std::int64_t> last_sent;  // vmid -> unix time of its last good put_vm
  std::map<std::int64_t, int> missing;  // vmid -> consecutive complete reads it was absent from
  bool operator==(const SyncMemory&) const = default;
};

struct PlanSettings {
  bool create_stopped = false;
  double cpu_change_threshold = 5;
  std::int64_t full_resync_interval = 3600;  // 0: never
  bool mark_missing = true;
  int missing_after_cycles = 3;
};

struct PlanInput {
  std::vector<Guest> guests;  // every guest of this node that the read returned
  // Only a complete read of the node's own API counts towards missing guests
  // (not a failed or partial one, nor the fallback source with unknown guests).
  bool read_counts_for_missing = true;
  WhitelistView whitelist;
  std::vector<AccountDbRow> rows;  // list_vms
  SyncMemory memory;
  PlanSettings settings;
  std::int64_t now = 0;  // unix seconds
  std::string node;      // this node's name
  // Where each VMID of the cluster is (/cluster/resources), looked up only
  // when there are guests to mark; nullopt: not looked up (yet).
  std::optional<std::map<std::int64_t, std::string>> cluster_locations;
};

enum class RequestKind { create, update, mark };
std::string_view to_string(RequestKind k);

struct PlannedRequest {
  RequestKind kind = RequestKind::update;
  std::int64_t id = 0;  // the path id: the row's id, or -vmid for a create
  std::int64_t vmid = 0;
  nlohmann::json body;
  std::string
      reason;  // "new", "changed: name, status", "full resync", "deleted", "migrated to pve2"
};

// What the plan decided for one guest of the read, or one row absent from
// it: the per-guest answer of docs/http-api.md "GET /vms/{vmid}".
enum class GuestDecisionKind {
  create,     // no row yet: created this cycle
  update,     // its row differs (or is due a full resync): sent this cycle
  unchanged,  // its row matches
  kept_out,   // not sent: `kept_out_by` says which rule
  no_values,  // a skeleton of the fallback read: nothing known to send
  absent,     // a row whose guest this read did not show (counting, or waiting)
  mark,       // a row gone long enough: marked deleted or migrated this cycle
  marked,     // a row already marked deleted or migrated
};
std::string_view to_string(GuestDecisionKind k);

// The rule of docs/sync.md "Whitelist filter" and "Creates" that keeps a
// guest out of AccountDB (or, with a row, out of the updates).
enum class KeptOutBy { none, stopped, template_guest, not_whitelisted, whitelist_unknown };
// "stopped", "template", "not_whitelisted", "whitelist_unknown"; "" for none.
std::string_view to_string(KeptOutBy k);

struct GuestDecision {
  std::int64_t vmid = 0;
  bool present = true;                 // in this read
  std::optional<bool> whitelisted;     // in a known whitelist; nullopt: the whitelist is unknown
  std::optional<std::int64_t> row_id;  // its AccountDB row (the newest of duplicates)
  std::string row_status;              // that row's status, "" without one
  GuestDecisionKind kind = GuestDecisionKind::unchanged;
  KeptOutBy kept_out_by = KeptOutBy::none;
  std::vector<std::string> changed;  // the fields that differ from the row (update)
  std::string reason;                // the planned request's reason, if any
  int missing_reads = 0;             // absent: consecutive complete reads without it
  bool operator==(const GuestDecision&) const = default;
};

struct PlanStats {
  std::int64_t unchanged = 0;
  std::int64_t filtered = 0;      // not sent: outside the whitelist, or not eligible for a create
  std::int64_t filtered_out = 0;  // outside the whitelist
  std::int64_t total_vms_before_filter = 0;
  std::int64_t total_vms_after_filter = 0;
  std::int64_t online_vms = 0;
};

struct Plan {
  std::vector<PlannedRequest> requests;
  // Rows whose guest has been gone long enough, waiting for a cluster lookup
  // to tell migrated from deleted.
  std::vector<std::int64_t> mark_candidates;
  SyncMemory memory;  // the memory after this cycle, before any put_vm is sent
  PlanStats stats;
  // One per guest of the read and per row absent from it, by VMID.
  std::map<std::int64_t, GuestDecision> decisions;
  std::vector<std::string> warnings;
};

Plan make_plan(const PlanInput& input);

// The fields of a guest that differ from its stored row, by the comparison
// rules of docs/sync.md "Only changes" (null on our side is no difference, a CPU dead band).
std::vector<std::string> changed_fields(const GuestRecord& ours, const AccountDbRow& stored,
                                        double cpu_threshold);

}  // namespace pha
