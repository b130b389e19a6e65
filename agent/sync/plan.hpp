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
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/accountdb/types.hpp"
#include "agent/proxmox/guest.hpp"
#include "agent/sync/handover.hpp"

namespace pha {

struct WhitelistView {
  bool known = false;            // false: no usable whitelist (it is "unknown")
  std::set<std::int64_t> vmids;  // known and empty: filters nothing
  bool filters() const { return known && !vmids.empty(); }
};

enum class RequestKind { create, update, mark };
std::string_view to_string(RequestKind k);

// A create or a mark the change brake holds (docs/sync.md "The change
// brake"): for how many cycles in a row it has been planned and held.
struct HeldChange {
  RequestKind kind = RequestKind::create;
  int cycles = 0;
  bool operator==(const HeldChange&) const = default;
};

// What the agent remembers between cycles (persisted in the state directory).
struct SyncMemory {
  std::map<std::int64_t, std::int64_t> last_sent;  // vmid -> unix time of its last good put_vm
  std::map<std::int64_t, int> missing;  // vmid -> consecutive complete reads it was absent from
  // The row of each guest as this agent last saw it in list_vms or wrote it
  // (id and the compared fields): a guest whose row list_vms leaves out is
  // written to that id, never created again (docs/accountdb.md "Rows the
  // agent knows").
  std::map<std::int64_t, AccountDbRow> rows;
  std::map<std::int64_t, HeldChange> held;  // vmid -> its held create or mark
  // The type of each known row's guest as last read: what the agent can say
  // of a guest that left the node, to the agent it moved to (docs/sync.md
  // "Guests that move").
  std::map<std::int64_t, GuestType> types;
  std::int64_t last_read_guests = 0;  // guests of the last complete read
  // While complete reads show no guest after showing some: how many the
  // last one before showed (0 otherwise).
  std::int64_t emptied_from = 0;
  bool operator==(const SyncMemory&) const = default;
};

struct PlanSettings {
  bool create_stopped = false;
  double cpu_change_threshold = 5;
  std::int64_t full_resync_interval = 3600;  // 0: never
  bool mark_missing = true;
  int missing_after_cycles = 3;
  // The change brake: a cycle that would create, or mark deleted, more than
  // max(brake_min, brake_percent % of the node's rows) holds them.
  int brake_min = 3;
  double brake_percent = 20;
};

// A change an operator confirmed (POST /sync/confirm): written even while held.
using Confirmed = std::set<std::pair<RequestKind, std::int64_t>>;

struct PlanInput {
  std::vector<Guest> guests;  // every guest of this node that the read returned
  // Only a complete read of the node's own API counts towards missing guests
  // (not a failed or partial one, nor the fallback source with unknown
  // guests, nor a read by a user or token that may not see every guest).
  bool read_counts_for_missing = true;
  // VMIDs the read listed but could not understand: unknown this cycle,
  // never gone, nothing sent.
  std::set<std::int64_t> unreadable;
  WhitelistView whitelist;
  std::vector<AccountDbRow> rows;  // list_vms
  std::int64_t node_id = 0;  // this node's AccountDB id: rows of another are left out (0: no check)
  SyncMemory memory;
  PlanSettings settings;
  Confirmed confirmed;
  std::int64_t now = 0;  // unix seconds
  std::string node;      // this node's name
  // Where each VMID of the cluster is (/cluster/resources), looked up only
  // when there are guests to mark; nullopt: not looked up (yet).
  std::optional<std::map<std::int64_t, std::string>> cluster_locations;
  // Whether the user or token may still see each mark candidate that the
  // cluster shows nowhere (GET /access/permissions?path=/vms/{vmid}); a
  // candidate without an answer waits. nullopt: not looked up (yet).
  std::optional<std::map<std::int64_t, bool>> visible;
  // Guests that migrated here whose row the agent of the node they left
  // named, checked (handover.hpp): written to that row, not created.
  std::map<std::int64_t, Handover> handovers;
  // Guests that migrated here whose row could not be taken over: created as
  // today, and said so.
  std::map<std::int64_t, HandoverFailure> handover_failures;
  // Guests whose destroy or migration away from this node Proxmox's own task
  // list shows ended OK (docs/sync.md "Guests that are gone"): gone from a
  // complete read, they need no further reads to be marked.
  std::set<std::int64_t> gone_by_task;
};

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
  no_values,  // a skeleton of the fallback read, or an entry not understood: nothing to send
  absent,     // a row whose guest this read did not show (counting, or waiting)
  mark,       // a row gone long enough: marked deleted or migrated this cycle
  marked,     // a row already marked deleted or migrated
  held,       // a create or a mark the change brake holds (`reason` says why)
  hidden,     // gone from the read, but the user or token may not see it: never marked
};
std::string_view to_string(GuestDecisionKind k);

// The rule of docs/sync.md "Whitelist filter" and "Creates" that keeps a
// guest out of AccountDB (or, with a row, out of the updates).
enum class KeptOutBy { none, stopped, template_guest, not_whitelisted, whitelist_unknown };
// "stopped", "template", "not_whitelisted", "whitelist_unknown"; "" for none.
std::string_view to_string(KeptOutBy k);

struct GuestDecision {
  std::int64_t vmid = 0;
  bool present = true;  // in this read
  // The guest's name and type: as read, or for a row absent from the read,
  // the row's name and the type last read (nullopt when never read).
  std::string name;
  std::optional<GuestType> type;
  std::optional<bool> whitelisted;     // in a known whitelist; nullopt: the whitelist is unknown
  std::optional<std::int64_t> row_id;  // its AccountDB row (the newest of duplicates)
  std::string row_status;              // that row's status, "" without one
  // False when the row is one the agent knows but list_vms left out this cycle.
  bool row_listed = true;
  GuestDecisionKind kind = GuestDecisionKind::unchanged;
  KeptOutBy kept_out_by = KeptOutBy::none;
  std::vector<std::string> changed;  // the fields that differ from the row (update)
  std::string reason;                // the planned request's reason, if any
  int missing_reads = 0;             // absent: consecutive complete reads without it
  int held_cycles = 0;               // held: cycles in a row it has been held
  bool operator==(const GuestDecision&) const = default;
};

// What the change brake holds of one kind this cycle.
struct Hold {
  RequestKind kind = RequestKind::create;  // create, or mark (deleted)
  std::string reason;                      // why the change is suspect
  std::vector<std::int64_t> vmids;         // held this cycle
  std::int64_t planned = 0;                // creates or marks the plan wanted
  std::int64_t threshold = 0;              // the most allowed without corroboration
  std::int64_t rows = 0;                   // the node's rows the threshold is a share of
  int corroborate_after = 0;  // cycles in a row after which it is written; 0: only when confirmed
  bool operator==(const Hold&) const = default;
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
  std::vector<PlannedRequest> held;  // what the change brake holds back (not sent)
  std::vector<Hold> holds;           // one per kind it holds
  // Rows whose guest has been gone long enough, waiting for a cluster lookup
  // to tell migrated from deleted.
  std::vector<std::int64_t> mark_candidates;
  // Guests of the read without a row that a row may follow from another
  // node (not kept out by the whitelist), not yet looked up.
  std::vector<std::int64_t> handover_candidates;
  SyncMemory memory;  // the memory after this cycle, before any put_vm is sent
  PlanStats stats;
  // One per guest of the read and per row absent from it, by VMID.
  std::map<std::int64_t, GuestDecision> decisions;
  std::vector<std::string> warnings;
  std::int64_t rows_of_other_nodes = 0;  // list_vms rows left out: another node's
};

Plan make_plan(const PlanInput& input);

// Part of make_plan: each decision's name and type, and the type of each
// known row's guest, remembered for when it has left the node (handover.cpp).
void name_guests(const PlanInput& in, Plan& plan);

// The fields of a guest that differ from its stored row, by the comparison
// rules of docs/sync.md "Only changes" (null on our side is no difference, a CPU dead band).
std::vector<std::string> changed_fields(const GuestRecord& ours, const AccountDbRow& stored,
                                        double cpu_threshold);

}  // namespace pha
