#include "agent/sync/plan.hpp"

#include <algorithm>
#include <cmath>

#include "agent/sync/brake.hpp"

namespace pha {

namespace {

constexpr std::string_view kDeleted = "deleted";
constexpr std::string_view kMigrated = "migrated";

bool newer(const AccountDbRow& a, const AccountDbRow& b) {
  if (a.updated_at != b.updated_at) {
    return a.updated_at > b.updated_at;  // ISO 8601 timestamps of one server compare as text
  }
  return a.id > b.id;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : ", ") + p;
  }
  return out;
}

}  // namespace

std::string_view to_string(RequestKind k) {
  switch (k) {
    case RequestKind::create:
      return "create";
    case RequestKind::update:
      return "update";
    case RequestKind::mark:
      return "mark";
  }
  return "update";
}

std::string_view to_string(GuestDecisionKind k) {
  switch (k) {
    case GuestDecisionKind::create:
      return "create";
    case GuestDecisionKind::update:
      return "update";
    case GuestDecisionKind::unchanged:
      return "unchanged";
    case GuestDecisionKind::kept_out:
      return "kept_out";
    case GuestDecisionKind::no_values:
      return "no_values";
    case GuestDecisionKind::absent:
      return "absent";
    case GuestDecisionKind::mark:
      return "mark";
    case GuestDecisionKind::marked:
      return "marked";
    case GuestDecisionKind::held:
      return "held";
    case GuestDecisionKind::hidden:
      return "hidden";
  }
  return "unchanged";
}

std::string_view to_string(KeptOutBy k) {
  switch (k) {
    case KeptOutBy::none:
      return "";
    case KeptOutBy::stopped:
      return "stopped";
    case KeptOutBy::template_guest:
      return "template";
    case KeptOutBy::not_whitelisted:
      return "not_whitelisted";
    case KeptOutBy::whitelist_unknown:
      return "whitelist_unknown";
  }
  return "";
}

std::vector<std::string> changed_fields(const GuestRecord& ours, const AccountDbRow& stored,
                                        double cpu_threshold) {
  std::vector<std::string> changed;
  if (ours.name != stored.name) {
    changed.emplace_back("name");
  }
  if (ours.status != stored.status) {
    changed.emplace_back("status");
  }
  if (stored.cpu_cores != ours.cpu_cores) {
    changed.emplace_back("cpu_cores");
  }
  if (stored.memory_mb != ours.memory_mb) {
    changed.emplace_back("memory_mb");
  }
  if (stored.disk_gb != ours.disk_gb) {
    changed.emplace_back("disk_gb");
  }
  // Null on our side (no IP known, details off) would not overwrite anything.
  if (ours.ip_address && ours.ip_address != stored.ip_address) {
    changed.emplace_back("ip_address");
  }
  if (!stored.cpu_usage_percent) {
    changed.emplace_back("cpu_usage_percent");
  } else {
    // The server stores one decimal; compare what it would store.
    const double diff =
        std::fabs(std::round(ours.cpu_usage_percent * 10.0) / 10.0 - *stored.cpu_usage_percent);
    if (cpu_threshold > 0 ? diff >= cpu_threshold - 1e-9 : diff > 1e-9) {
      changed.emplace_back("cpu_usage_percent");
    }
  }
  return changed;
}

namespace {

using RowsByVmid = std::map<std::int64_t, const AccountDbRow*>;

bool is_marked(const AccountDbRow& row) {
  return row.status == kDeleted || row.status == kMigrated;
}

// What AccountDB has, one row per VMID (the newest of duplicates). A row of
// another node is not this node's, whatever list_vms says: left out.
RowsByVmid rows_by_vmid(const PlanInput& in, Plan& plan) {
  RowsByVmid by_vmid;
  for (const auto& row : in.rows) {
    if (in.node_id != 0 && row.proxmox_node_id && *row.proxmox_node_id != in.node_id) {
      ++plan.rows_of_other_nodes;
      continue;
    }
    auto [it, inserted] = by_vmid.emplace(row.vmid, &row);
    if (!inserted) {
      const AccountDbRow* keep = newer(row, *it->second) ? &row : it->second;
      const AccountDbRow* other = keep == &row ? it->second : &row;
      plan.warnings.push_back("AccountDB has two rows for VMID " + std::to_string(row.vmid) +
                              " (ids " + std::to_string(keep->id) + " and " +
                              std::to_string(other->id) + "); updating " +
                              std::to_string(keep->id) + ", the newest");
      it->second = keep;
    }
  }
  if (plan.rows_of_other_nodes > 0) {
    plan.warnings.push_back("list_vms answered " + std::to_string(plan.rows_of_other_nodes) +
                            " rows of another AccountDB node; they are left out");
  }
  return by_vmid;
}

// The rows the agent knows but list_vms left out this cycle, for guests still
// on the node: written to their id, never created again. A known id that
// list_vms now shows for another VMID is not this guest's any more.
RowsByVmid unlisted_known_rows(const PlanInput& in, const RowsByVmid& listed,
                               const std::set<std::int64_t>& present) {
  std::set<std::int64_t> listed_ids;
  for (const auto& [vmid, row] : listed) {
    listed_ids.insert(row->id);
  }
  for (const auto& row : in.rows) {
    listed_ids.insert(row.id);  // also another node's and older duplicates: never reused
  }
  RowsByVmid out;
  for (const auto& [vmid, row] : in.memory.rows) {
    if (!listed.contains(vmid) && present.contains(vmid) && !listed_ids.contains(row.id)) {
      out.emplace(vmid, &row);
    }
  }
  return out;
}

// Why a guest AccountDB has is sent again, or "" when it is not.
std::string update_reason(const Guest& guest, const std::vector<std::string>& changed,
                          const PlanInput& in, Plan& plan) {
  const auto& s = in.settings;
  if (!changed.empty()) {
    return "changed: " + join(changed);
  }
  if (s.full_resync_interval <= 0) {
    return {};
  }
  const auto sent = in.memory.last_sent.find(guest.vmid);
  if (sent == in.memory.last_sent.end()) {
    // Never sent by this agent (first start without a state file): the row
    // matches, so count from now instead of re-sending every guest at once.
    plan.memory.last_sent[guest.vmid] = in.now;
    return {};
  }
  return in.now - sent->second >= s.full_resync_interval ? "full resync" : "";
}

// Which create rule keeps a guest without a row out of AccountDB (none: it is created).
KeptOutBy create_rule(const Guest& guest, const PlanInput& in) {
  if (!in.whitelist.known) {
    return KeptOutBy::whitelist_unknown;
  }
  if (!in.whitelist.filters() || !in.whitelist.vmids.contains(guest.vmid)) {
    return KeptOutBy::not_whitelisted;  // an empty whitelist allows no create either
  }
  if (guest.running() || in.settings.create_stopped) {
    return KeptOutBy::none;
  }
  return guest.is_template ? KeptOutBy::template_guest : KeptOutBy::stopped;
}

GuestDecision& decide(Plan& plan, std::int64_t vmid, const AccountDbRow* row, GuestDecisionKind k) {
  auto& d = plan.decisions[vmid];
  d.vmid = vmid;
  d.kind = k;
  if (row != nullptr) {
    d.row_id = row->id;
    d.row_status = row->status;
  }
  return d;
}

// Whether list_vms shows a row of another AccountDB node for `vmid`: its
// row exists, so it is not created here (nor is the other node's row
// fought over: docs/sync.md "Evidence").
bool row_elsewhere(const PlanInput& in, std::int64_t vmid) {
  return in.node_id != 0 && std::any_of(in.rows.begin(), in.rows.end(), [&](const auto& r) {
           return r.vmid == vmid && r.proxmox_node_id && *r.proxmox_node_id != in.node_id;
         });
}

// A guest that migrated here, written to the row the agent of the node it
// left named: the row (and its customer) follows it (docs/sync.md "Guests
// that move").
GuestDecision& plan_handover(const Guest& guest, const GuestRecord& record, const Handover& h,
                             Plan& plan) {
  auto& d = decide(plan, guest.vmid, nullptr, GuestDecisionKind::update);
  d.row_id = h.row_id;
  d.reason = "moved from " + h.from + ": its row " + std::to_string(h.row_id) + " follows it";
  plan.requests.push_back(
      {RequestKind::update, h.row_id, guest.vmid, to_accountdb_json(record), d.reason});
  return d;
}

// A kept guest without a row: created, or kept out by a create rule.
GuestDecision& plan_create(const Guest& guest, const GuestRecord& record, const PlanInput& in,
                           Plan& plan) {
  if (row_elsewhere(in, guest.vmid)) {
    plan.stats.unchanged++;
    auto& d = decide(plan, guest.vmid, nullptr, GuestDecisionKind::no_values);
    d.reason = "list_vms shows its row on another AccountDB node: not created here";
    return d;
  }
  const auto rule = create_rule(guest, in);
  if (rule != KeptOutBy::not_whitelisted) {
    plan.handover_candidates.push_back(guest.vmid);
    if (const auto h = in.handovers.find(guest.vmid); h != in.handovers.end()) {
      return plan_handover(guest, record, h->second, plan);
    }
  }
  auto& d =
      decide(plan, guest.vmid, nullptr,
             rule == KeptOutBy::none ? GuestDecisionKind::create : GuestDecisionKind::kept_out);
  d.kept_out_by = rule;
  if (const auto f = in.handover_failures.find(guest.vmid); f != in.handover_failures.end()) {
    d.reason = "moved from " + f->second.from + ", but its row was not handed over (" +
               f->second.why + ")";
  }
  if (rule != KeptOutBy::none) {
    plan.stats.filtered++;
    return d;
  }
  if (d.reason.empty()) {
    d.reason = "new";
  }
  plan.requests.push_back(
      {RequestKind::create, -guest.vmid, guest.vmid, to_accountdb_json(record), "new"});
  return d;
}

// One guest of the read: filtered, unchanged, created or updated. `row` is
// its listed row, or the row the agent knows when list_vms left it out
// (`listed` false).
void plan_guest(const Guest& guest, const AccountDbRow* row, bool listed, const PlanInput& in,
                Plan& plan) {
  plan.stats.total_vms_before_filter++;
  if (guest.running()) {
    plan.stats.online_vms++;
  }
  std::optional<bool> whitelisted;
  if (in.whitelist.known) {
    whitelisted = in.whitelist.filters() && in.whitelist.vmids.contains(guest.vmid);
  }
  // The whitelist: a non-empty one keeps its VMIDs; an empty one keeps
  // everything; an unknown one keeps only what AccountDB already has.
  const bool kept = in.whitelist.known
                        ? (!in.whitelist.filters() || in.whitelist.vmids.contains(guest.vmid))
                        : row != nullptr;
  if (!kept) {
    plan.stats.filtered_out++;
    plan.stats.filtered++;
    auto& d = decide(plan, guest.vmid, row, GuestDecisionKind::kept_out);
    d.row_listed = listed;
    d.whitelisted = whitelisted;
    d.kept_out_by = in.whitelist.known ? KeptOutBy::not_whitelisted : KeptOutBy::whitelist_unknown;
    return;
  }
  plan.stats.total_vms_after_filter++;
  if (guest.unknown || in.unreadable.contains(guest.vmid)) {
    // A skeleton from /cluster/resources, or an entry listed twice: its
    // values are not known; nothing is sent and it is not treated as
    // stopped or gone.
    plan.stats.unchanged++;
    auto& d = decide(plan, guest.vmid, row, GuestDecisionKind::no_values);
    d.row_listed = listed;
    d.whitelisted = whitelisted;
    return;
  }
  const auto record = to_record(guest);
  if (row == nullptr) {
    plan_create(guest, record, in, plan).whitelisted = whitelisted;
    return;
  }
  auto changed = changed_fields(record, *row, in.settings.cpu_change_threshold);
  auto reason = update_reason(guest, changed, in, plan);
  if (!reason.empty() && !listed) {
    reason += "; row " + std::to_string(row->id) + " known, not in list_vms";
  }
  auto& d = decide(plan, guest.vmid, row,
                   reason.empty() ? GuestDecisionKind::unchanged : GuestDecisionKind::update);
  d.row_listed = listed;
  d.whitelisted = whitelisted;
  if (reason.empty()) {
    plan.stats.unchanged++;
    return;
  }
  d.changed = std::move(changed);
  d.reason = reason;
  plan.requests.push_back(
      {RequestKind::update, row->id, guest.vmid, to_accountdb_json(record), std::move(reason)});
}

// A row of list_vms absent from this read: counted, and marked once gone long
// enough, unless the cluster still has it here or the user or token may not
// see it.
void plan_gone(std::int64_t vmid, const AccountDbRow& row, const PlanInput& in, Plan& plan) {
  const auto& s = in.settings;
  const auto before = in.memory.missing.find(vmid);
  int count = before == in.memory.missing.end() ? 0 : before->second;
  if (in.read_counts_for_missing) {
    ++count;
  }
  if (count > 0) {
    plan.memory.missing[vmid] = count;
  }
  const bool marked = is_marked(row);
  auto& d =
      decide(plan, vmid, &row, marked ? GuestDecisionKind::marked : GuestDecisionKind::absent);
  d.present = false;
  d.missing_reads = count;
  if (in.whitelist.known) {
    d.whitelisted = in.whitelist.filters() && in.whitelist.vmids.contains(vmid);
  }
  // A destroy or migration task of the guest is Proxmox's own word that
  // it left: it vouches for the first complete read it is absent from.
  const bool vouched = in.read_counts_for_missing && in.gone_by_task.contains(vmid);
  if (!s.mark_missing || (count < s.missing_after_cycles && !vouched) || marked) {
    return;
  }
  if (!in.cluster_locations || !in.visible) {
    plan.mark_candidates.push_back(vmid);
    return;
  }
  const auto where = in.cluster_locations->find(vmid);
  if (where != in.cluster_locations->end() && where->second == in.node) {
    return;  // the cluster still has it here: our read and the cluster disagree, so wait
  }
  const bool migrated = where != in.cluster_locations->end();
  if (!migrated) {
    // Absence from every list is what a lost privilege looks like too: the
    // user or token must still be allowed to see the guest.
    const auto seen = in.visible->find(vmid);
    if (seen == in.visible->end()) {
      d.reason = "waiting: cannot tell whether the Proxmox user or token may still see it";
      return;
    }
    if (!seen->second) {
      d.kind = GuestDecisionKind::hidden;
      d.reason = "the Proxmox user or token may not see it (no VM.Audit on /vms/" +
                 std::to_string(vmid) + "): hidden, not gone";
      return;
    }
  }
  d.kind = GuestDecisionKind::mark;
  d.reason = migrated ? "migrated to " + where->second : std::string(kDeleted);
  nlohmann::json body = {
      {"vmid", vmid}, {"name", row.name}, {"status", migrated ? kMigrated : kDeleted}};
  plan.requests.push_back({RequestKind::mark, row.id, vmid, std::move(body), d.reason});
}

// The rows the agent knows after this cycle's plan: list_vms's rows of this
// node, and the known rows of guests still here that it left out. Writes add
// to it (SyncEngine).
std::map<std::int64_t, AccountDbRow> known_rows(const RowsByVmid& listed,
                                                const RowsByVmid& unlisted) {
  std::map<std::int64_t, AccountDbRow> out;
  for (const auto* part : {&listed, &unlisted}) {
    for (const auto& [vmid, row] : *part) {
      AccountDbRow r;
      r.id = row->id;
      r.vmid = vmid;
      r.name = row->name;
      r.status = row->status;
      r.cpu_cores = row->cpu_cores;
      r.cpu_usage_percent = row->cpu_usage_percent;
      r.memory_mb = row->memory_mb;
      r.disk_gb = row->disk_gb;
      r.ip_address = row->ip_address;
      out.emplace(vmid, std::move(r));
    }
  }
  return out;
}

// What the reads say about the node as a whole: how many guests the last
// complete read showed, and whether complete reads dropped from some to none.
void remember_read(const PlanInput& in, Plan& plan) {
  if (!in.read_counts_for_missing) {
    return;
  }
  const auto n = static_cast<std::int64_t>(in.guests.size());
  if (n == 0 && in.memory.last_read_guests > 0) {
    plan.memory.emptied_from = in.memory.last_read_guests;
  } else if (n > 0) {
    plan.memory.emptied_from = 0;
  }
  plan.memory.last_read_guests = n;
}

}  // namespace

Plan make_plan(const PlanInput& in) {
  Plan plan;
  plan.memory.last_read_guests = in.memory.last_read_guests;
  plan.memory.emptied_from = in.memory.emptied_from;
  remember_read(in, plan);
  const auto by_vmid = rows_by_vmid(in, plan);
  std::set<std::int64_t> present(in.unreadable.begin(), in.unreadable.end());
  for (const auto& guest : in.guests) {
    present.insert(guest.vmid);
  }
  const auto unlisted = unlisted_known_rows(in, by_vmid, present);
  if (!unlisted.empty()) {
    plan.warnings.push_back("list_vms left out " + std::to_string(unlisted.size()) +
                            " rows the agent knows for guests still here: they are written by "
                            "their id when they change, never created again");
  }
  for (const auto& guest : in.guests) {
    if (const auto row = by_vmid.find(guest.vmid); row != by_vmid.end()) {
      plan_guest(guest, row->second, true, in, plan);
    } else if (const auto known = unlisted.find(guest.vmid); known != unlisted.end()) {
      plan_guest(guest, known->second, false, in, plan);
    } else {
      plan_guest(guest, nullptr, true, in, plan);
    }
  }
  // Memory: keep what is still relevant (present guests and known rows).
  for (const auto& [vmid, at] : in.memory.last_sent) {
    if (present.contains(vmid) || by_vmid.contains(vmid) || unlisted.contains(vmid)) {
      plan.memory.last_sent.emplace(vmid, at);
    }
  }
  std::int64_t active_rows = 0;
  for (const auto& [vmid, row] : by_vmid) {
    active_rows += is_marked(*row) ? 0 : 1;
    if (present.contains(vmid)) {
      // A guest present again (or never gone) has no count: it starts again.
      // An entry the read could not understand is present, but unknown.
      if (!plan.decisions.contains(vmid)) {
        auto& d = decide(plan, vmid, row, GuestDecisionKind::no_values);
        d.reason = "its Proxmox entry was not understood this read";
      }
      continue;
    }
    plan_gone(vmid, *row, in, plan);
  }
  for (const auto& [vmid, row] : unlisted) {
    active_rows += is_marked(*row) ? 0 : 1;
  }
  plan.memory.rows = known_rows(by_vmid, unlisted);
  name_guests(in, plan);
  apply_brake(in, active_rows, plan);
  return plan;
}

}  // namespace pha
