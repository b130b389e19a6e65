#include "agent/sync/plan.hpp"

#include <cmath>

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

// What AccountDB has, one row per VMID (the newest of duplicates).
RowsByVmid rows_by_vmid(const std::vector<AccountDbRow>& rows, Plan& plan) {
  RowsByVmid by_vmid;
  for (const auto& row : rows) {
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
  return by_vmid;
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

// A kept guest without a row: created, or kept out by a create rule.
GuestDecision& plan_create(const Guest& guest, const GuestRecord& record, const PlanInput& in,
                           Plan& plan) {
  const auto rule = create_rule(guest, in);
  auto& d =
      decide(plan, guest.vmid, nullptr,
             rule == KeptOutBy::none ? GuestDecisionKind::create : GuestDecisionKind::kept_out);
  d.kept_out_by = rule;
  if (rule != KeptOutBy::none) {
    plan.stats.filtered++;
    return d;
  }
  d.reason = "new";
  plan.requests.push_back(
      {RequestKind::create, -guest.vmid, guest.vmid, to_accountdb_json(record), "new"});
  return d;
}

// One guest of the read: filtered, unchanged, created or updated.
void plan_guest(const Guest& guest, const AccountDbRow* row, const PlanInput& in, Plan& plan) {
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
    d.whitelisted = whitelisted;
    d.kept_out_by = in.whitelist.known ? KeptOutBy::not_whitelisted : KeptOutBy::whitelist_unknown;
    return;
  }
  plan.stats.total_vms_after_filter++;
  if (guest.unknown) {
    // A skeleton from /cluster/resources: its values are not known; nothing
    // is sent and it is not treated as stopped or gone.
    plan.stats.unchanged++;
    decide(plan, guest.vmid, row, GuestDecisionKind::no_values).whitelisted = whitelisted;
    return;
  }
  const auto record = to_record(guest);
  if (row == nullptr) {
    plan_create(guest, record, in, plan).whitelisted = whitelisted;
    return;
  }
  auto changed = changed_fields(record, *row, in.settings.cpu_change_threshold);
  auto reason = update_reason(guest, changed, in, plan);
  auto& d = decide(plan, guest.vmid, row,
                   reason.empty() ? GuestDecisionKind::unchanged : GuestDecisionKind::update);
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

// A row of list_vms absent from this read: counted, and marked once gone long enough.
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
  const bool marked = row.status == kDeleted || row.status == kMigrated;
  auto& d =
      decide(plan, vmid, &row, marked ? GuestDecisionKind::marked : GuestDecisionKind::absent);
  d.present = false;
  d.missing_reads = count;
  if (in.whitelist.known) {
    d.whitelisted = in.whitelist.filters() && in.whitelist.vmids.contains(vmid);
  }
  if (!s.mark_missing || count < s.missing_after_cycles || marked) {
    return;
  }
  if (!in.cluster_locations) {
    plan.mark_candidates.push_back(vmid);
    return;
  }
  const auto where = in.cluster_locations->find(vmid);
  if (where != in.cluster_locations->end() && where->second == in.node) {
    return;  // the cluster still has it here: our read and the cluster disagree, so wait
  }
  const bool migrated = where != in.cluster_locations->end();
  d.kind = GuestDecisionKind::mark;
  d.reason = migrated ? "migrated to " + where->second : std::string(kDeleted);
  nlohmann::json body = {
      {"vmid", vmid}, {"name", row.name}, {"status", migrated ? kMigrated : kDeleted}};
  plan.requests.push_back({RequestKind::mark, row.id, vmid, std::move(body), d.reason});
}

}  // namespace

Plan make_plan(const PlanInput& in) {
  Plan plan;
  const auto by_vmid = rows_by_vmid(in.rows, plan);
  std::set<std::int64_t> present;
  for (const auto& guest : in.guests) {
    present.insert(guest.vmid);
    const auto row = by_vmid.find(guest.vmid);
    plan_guest(guest, row == by_vmid.end() ? nullptr : row->second, in, plan);
  }
  // Memory: keep what is still relevant (present guests and known rows).
  for (const auto& [vmid, at] : in.memory.last_sent) {
    if (present.contains(vmid) || by_vmid.contains(vmid)) {
      plan.memory.last_sent.emplace(vmid, at);
    }
  }
  for (const auto& [vmid, row] : by_vmid) {
    // A guest present again (or never gone) has no count: it starts again.
    if (!present.contains(vmid)) {
      plan_gone(vmid, *row, in, plan);
    }
  }
  return plan;
}

}  // namespace pha
