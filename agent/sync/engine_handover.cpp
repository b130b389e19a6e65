// Guests that move (docs/sync.md "Guests that move"): the row of a guest that
// migrated here is asked of the agent of the node it left.

#include <algorithm>
#include <set>

#include "agent/platform/logging.hpp"
#include "agent/proxmox/tasks.hpp"
#include "agent/sync/engine.hpp"

namespace pha {

void SyncEngine::recall_handovers(PlanInput& in) const {
  for (const auto& [vmid, seen] : handover_seen_) {
    if (seen.handover) {
      in.handovers[vmid] = *seen.handover;
    } else if (seen.failure) {
      in.handover_failures[vmid] = *seen.failure;
    }
  }
}

namespace {

// The row the agent at `url` names for `guest`, checked, or why not.
Result<Handover> ask_for_row(const PeerAsk& ask, const std::string& url, const Guest& guest,
                             const std::string& from, const PlanInput& in) {
  auto body = ask(url, guest.vmid);
  if (!body) {
    return Error{body.error().kind,
                 "the agent of " + from + " did not answer: " + body.error().message};
  }
  auto row = parse_peer_row(*body);
  if (!row) {
    return Error{ErrorKind::bad_reply, "the agent of " + from + " answered " + row.error().message};
  }
  if (auto why = refuse_peer_row(*row, guest, in.rows, in.memory.rows)) {
    return Error{ErrorKind::bad_reply, *why};
  }
  return Handover{*row->row_id, from};
}

}  // namespace

Result<Handover> SyncEngine::ask_source(std::int64_t vmid, const std::string& from,
                                        const PlanInput& in,
                                        std::optional<ClusterStatus>& cluster) {
  const auto guest = std::find_if(in.guests.begin(), in.guests.end(),
                                  [&](const Guest& g) { return g.vmid == vmid; });
  if (!cluster) {
    auto status = proxmox_.cluster_status();
    cluster = status ? std::move(*status) : ClusterStatus{};
  }
  const auto node = std::find_if(cluster->nodes.begin(), cluster->nodes.end(),
                                 [&](const ClusterNode& n) { return n.name == from; });
  if (guest == in.guests.end() || node == cluster->nodes.end() || node->ip.empty()) {
    return Error{ErrorKind::unavailable, "the cluster shows no address of " + from};
  }
  return ask_for_row(ask_peer_, settings_.get()->peer_url(node->ip), *guest, from, in);
}

void SyncEngine::record_handover(std::int64_t vmid, const std::string& from,
                                 const Result<Handover>& h, PlanInput& in, CycleReport& report) {
  auto& seen = handover_seen_[vmid];
  if (h) {
    seen.handover = *h;
    in.handovers[vmid] = *h;
    log::info("guest_row_handed_over",
              "VMID " + std::to_string(vmid) + " moved here from " + from + ": its row " +
                  std::to_string(h->row_id) + " follows it",
              {{"vmid", vmid}, {"from", from}, {"row_id", h->row_id}});
    return;
  }
  seen.failure = HandoverFailure{from, std::nullopt, h.error().message};
  in.handover_failures[vmid] = *seen.failure;
  report.not_handed_over.push_back({vmid, *seen.failure});
  log::warn("guest_row_not_handed_over",
            "VMID " + std::to_string(vmid) + " moved here from " + from +
                ", but its row was not handed over: " + h.error().message +
                "; it gets a new row, as any new guest",
            {{"vmid", vmid}, {"from", from}, {"to", in.node}, {"reason", h.error().message}});
}

void SyncEngine::note_handover_outcome(const PlannedRequest& req, std::int64_t new_row,
                                       CycleReport& report) {
  const auto seen = handover_seen_.find(req.vmid);
  if (seen == handover_seen_.end() || !seen->second.handover ||
      seen->second.handover->row_id != req.id) {
    return;  // an ordinary update of a row deleted in AccountDB (row_recreated)
  }
  const auto& from = seen->second.handover->from;
  const auto why = "row " + std::to_string(req.id) + ", which the agent of " + from +
                   " named, did not exist: AccountDB stored the guest as the new row " +
                   std::to_string(new_row);
  report.not_handed_over.push_back({req.vmid, HandoverFailure{from, req.id, why}});
  log::warn("guest_row_not_handed_over",
            "VMID " + std::to_string(req.vmid) + " moved here from " + from +
                ", but its row was not handed over: " + why,
            {{"vmid", req.vmid}, {"from", from}, {"row_id", req.id}, {"new_row_id", new_row}});
}

bool SyncEngine::look_up_handovers(const Plan& plan, PlanInput& in, CycleReport& report) {
  const std::set<std::int64_t> candidates(plan.handover_candidates.begin(),
                                          plan.handover_candidates.end());
  std::erase_if(handover_seen_, [&](const auto& e) { return !candidates.contains(e.first); });
  std::vector<std::int64_t> fresh;
  for (const auto v : candidates) {
    if (!handover_seen_.contains(v)) {
      fresh.push_back(v);
    }
  }
  if (fresh.empty() || !ask_peer_ || !settings_.get()->handover_enabled()) {
    return false;
  }
  auto tasks = proxmox_.cluster_tasks();
  if (!tasks) {
    report.warnings.push_back(
        "cannot read the cluster's tasks to tell whether new guests moved here: " +
        tasks.error().message);
    return false;  // asked again next cycle
  }
  std::optional<ClusterStatus> cluster;
  bool learnt = false;
  for (const auto vmid : fresh) {
    const auto from = migrated_from(tasks->tasks, vmid, in.node);
    if (!from) {
      handover_seen_[vmid] = {};  // new here, not moved: created as any new guest
      continue;
    }
    learnt = true;
    record_handover(vmid, *from, ask_source(vmid, *from, in, cluster), in, report);
  }
  return learnt;
}

}  // namespace pha
