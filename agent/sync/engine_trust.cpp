// SyncEngine's evidence and holds (docs/sync.md "Evidence" and "The change
// brake"): the lookups before a guest is marked, what a write teaches about
// the rows, what the brake holds and an operator's confirmation of it. The
// cycle itself is in engine.cpp.

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "agent/platform/logging.hpp"
#include "agent/sync/engine.hpp"

namespace pha {

namespace {

// "create:101,102;mark:205": what a hold is, for its id.
std::string hold_key(const std::vector<Hold>& holds) {
  std::string key;
  for (const auto& h : holds) {
    key += std::string(to_string(h.kind)) + ":";
    for (const auto v : h.vmids) {
      key += std::to_string(v) + ",";
    }
    key += ";";
  }
  return key;
}

// A short stable id of a set of held changes (FNV-1a, 48 bits in hex).
std::string hold_id(const std::vector<Hold>& holds) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : hold_key(holds)) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "h";
  for (int shift = 44; shift >= 0; shift -= 4) {
    id += kHex[(h >> shift) & 0xF];
  }
  return id;
}

}  // namespace

nlohmann::json to_json(const HeldChanges& h) {
  if (h.empty()) {
    return nullptr;
  }
  nlohmann::json holds = nlohmann::json::array();
  for (const auto& hold : h.holds) {
    holds.push_back({{"kind", hold.kind == RequestKind::create ? "create" : "mark_deleted"},
                     {"reason", hold.reason},
                     {"vmids", hold.vmids},
                     {"planned", hold.planned},
                     {"threshold", hold.threshold},
                     {"rows", hold.rows},
                     {"corroborate_after_cycles", hold.corroborate_after}});
  }
  nlohmann::json requests = nlohmann::json::array();
  for (const auto& p : h.requests) {
    requests.push_back({{"method", "PUT"},
                        {"path", "/vms/agent/" + std::to_string(p.id)},
                        {"vmid", p.vmid},
                        {"kind", to_string(p.kind)},
                        {"reason", p.reason}});
  }
  return {{"id", h.id}, {"since", h.since}, {"holds", holds}, {"requests", requests}};
}

// A write that landed: the row as it now is, for the next cycle that
// list_vms leaves it out of; a held change is done, and a confirmation used.
std::optional<std::int64_t> SyncEngine::remember_write(const PlannedRequest& req,
                                                       std::optional<std::int64_t> row_id) {
  memory_.held.erase(req.vmid);
  {
    std::lock_guard lock(held_mutex_);
    confirmed_.erase({req.kind, req.vmid});
  }
  const auto id = row_id ? *row_id : req.id;
  if (id <= 0) {
    return std::nullopt;  // a create whose answer named no row: the next list_vms will
  }
  const bool recreated = req.kind == RequestKind::update && id != req.id;
  if (recreated) {
    // The server inserts when no row has the id: the row was deleted in AccountDB.
    log::warn("row_recreated",
              "VMID " + std::to_string(req.vmid) + ": row " + std::to_string(req.id) +
                  " no longer existed; AccountDB stored the guest as row " + std::to_string(id),
              {{"vmid", req.vmid}, {"row_id", req.id}, {"new_row_id", id}});
  }
  auto& row = memory_.rows[req.vmid];
  row.id = id;
  row.vmid = req.vmid;
  const auto& b = req.body;
  row.status = b.value("status", row.status);
  row.name = b.value("name", row.name);
  // A null field keeps the stored value (docs/accountdb.md "put_vm").
  const auto set = [&b](const char* key, auto& field) {
    if (b.contains(key) && !b[key].is_null()) {
      field = b[key].get<typename std::decay_t<decltype(field)>::value_type>();
    }
  };
  set("cpu_cores", row.cpu_cores);
  set("memory_mb", row.memory_mb);
  set("disk_gb", row.disk_gb);
  set("ip_address", row.ip_address);
  if (b.contains("cpu_usage_percent") && b["cpu_usage_percent"].is_number()) {
    row.cpu_usage_percent = std::round(b["cpu_usage_percent"].get<double>() * 10.0) / 10.0;
  }
  return recreated ? std::optional<std::int64_t>(id) : std::nullopt;
}

bool SyncEngine::look_up_candidates(const std::vector<std::int64_t>& candidates, PlanInput& in,
                                    CycleReport& report) {
  auto cluster = proxmox_.read_cluster_guests();
  if (!cluster.ok()) {
    report.warnings.push_back("cannot tell migrated from deleted guests this cycle: " +
                              cluster.error().message);
    return false;
  }
  std::map<std::int64_t, std::string> where;
  for (const auto& g : cluster->guests) {
    where[g.vmid] = g.node;
  }
  // A guest the cluster shows nowhere is gone, or hidden from the user or
  // token (the cluster's list is filtered the same way): ask, one by one.
  std::map<std::int64_t, bool> visible;
  for (const auto vmid : candidates) {
    if (where.contains(vmid)) {
      continue;
    }
    auto seen = proxmox_.may_see(vmid);
    if (!seen.ok()) {
      report.warnings.push_back("VMID " + std::to_string(vmid) +
                                " is not marked this cycle: cannot check that the Proxmox user or "
                                "token may still see it: " +
                                seen.error().message);
      continue;
    }
    visible[vmid] = *seen;
    if (!*seen) {
      report.hidden.push_back(vmid);
    }
  }
  if (!report.hidden.empty()) {
    report.warnings.push_back(
        std::to_string(report.hidden.size()) +
        " guests are gone from the read but hidden from the Proxmox user or token (no VM.Audit "
        "on /vms/{vmid}): not marked");
  }
  in.cluster_locations = std::move(where);
  in.visible = std::move(visible);
  return true;
}

void SyncEngine::record_holds(const Plan& plan, CycleReport& report) {
  HeldChanges h;
  if (!plan.holds.empty()) {
    h.id = hold_id(plan.holds);
    h.holds = plan.holds;
    h.requests = plan.held;
  }
  std::lock_guard lock(held_mutex_);
  h.since = !h.empty() && h.id == held_.id ? held_.since : clock_.unix_now();
  if (h.empty()) {
    h.since = 0;
  }
  // A confirmation covers the changes it named while they are still planned.
  std::erase_if(confirmed_, [&](const std::pair<RequestKind, std::int64_t>& c) {
    const auto planned = [&c](const std::vector<PlannedRequest>& list) {
      return std::any_of(list.begin(), list.end(), [&c](const PlannedRequest& r) {
        return r.kind == c.first && r.vmid == c.second;
      });
    };
    return !planned(plan.requests) && !planned(plan.held);
  });
  if (!report.dry_run) {
    if (!h.empty() && h.id != held_.id) {
      for (const auto& hold : h.holds) {
        log::warn("sync_held",
                  "the change brake holds " + std::to_string(hold.vmids.size()) +
                      (hold.kind == RequestKind::create ? " creates" : " deleted marks") + ": " +
                      hold.reason,
                  {{"hold", h.id},
                   {"request", to_string(hold.kind)},
                   {"held", hold.vmids.size()},
                   {"threshold", hold.threshold},
                   {"rows", hold.rows},
                   {"reason", hold.reason}});
      }
    } else if (h.empty() && !held_.empty()) {
      log::info("sync_hold_ended", "the change brake holds nothing any more", {{"hold", held_.id}});
    }
    held_ = h;
  }
  report.held = std::move(h);
}

HeldChanges SyncEngine::held() const {
  std::lock_guard lock(held_mutex_);
  return held_;
}

Result<HeldChanges> SyncEngine::confirm(const std::string& id) {
  std::lock_guard lock(held_mutex_);
  if (held_.empty()) {
    return Error{ErrorKind::not_found, "nothing is held"};
  }
  if (id != held_.id) {
    return Error{ErrorKind::invalid, "the changes held now are " + held_.id + ", not " + id +
                                         ": read them again (GET /status, sync.held) and "
                                         "confirm what you read"};
  }
  for (const auto& r : held_.requests) {
    confirmed_.insert({r.kind, r.vmid});
  }
  log::warn("sync_confirmed",
            "an operator confirmed the held changes " + id + ": " +
                std::to_string(held_.requests.size()) + " writes at the next cycle",
            {{"hold", id}, {"changes", held_.requests.size()}});
  return held_;
}

}  // namespace pha
