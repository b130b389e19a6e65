#include "agent/sync/brake.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace pha {

std::int64_t brake_threshold(const PlanSettings& s, std::int64_t rows) {
  const auto share = static_cast<std::int64_t>(
      std::floor(s.brake_percent / 100.0 * static_cast<double>(rows) + 1e-9));
  return std::max<std::int64_t>(s.brake_min, share);
}

namespace {

constexpr std::string_view kDeleted = "deleted";

bool subject_to_brake(const PlannedRequest& r, RequestKind kind) {
  if (r.kind != kind) {
    return false;
  }
  // A mark `migrated` is corroborated by the cluster itself: it places the
  // guest on another node.
  return kind == RequestKind::create || r.body.value("status", std::string()) == kDeleted;
}

std::string hold_reason(RequestKind kind, std::int64_t planned, std::int64_t threshold,
                        std::int64_t rows, std::int64_t emptied_from) {
  const std::string what = kind == RequestKind::create ? " creates" : " deleted marks";
  if (kind == RequestKind::mark && emptied_from > 0) {
    return "the node's read dropped from " + std::to_string(emptied_from) +
           " guests to none: " + std::to_string(planned) + what + " wait for an operator";
  }
  return std::to_string(planned) + what + " on a node with " + std::to_string(rows) +
         " rows in AccountDB: more than the " + std::to_string(threshold) +
         " the change brake allows at once";
}

// The cycles in a row `vmid` has been held for a change of `kind`, this one included.
int cycles_held(const PlanInput& in, std::int64_t vmid, RequestKind kind) {
  const auto before = in.memory.held.find(vmid);
  return (before != in.memory.held.end() && before->second.kind == kind ? before->second.cycles
                                                                        : 0) +
         1;
}

// The brake for one kind: every request of that kind is held unless
// confirmed or corroborated. `held` gets each one's count.
void brake_kind(const PlanInput& in, RequestKind kind, std::int64_t rows, Plan& plan,
                std::map<std::int64_t, HeldChange>& held) {
  const auto threshold = brake_threshold(in.settings, rows);
  // Corroborated means seen again: at least a second cycle.
  const int after = std::max(2, in.settings.missing_after_cycles);
  const auto planned = std::count_if(plan.requests.begin(), plan.requests.end(),
                                     [kind](const auto& r) { return subject_to_brake(r, kind); });
  const bool emptied = kind == RequestKind::mark && plan.memory.emptied_from > 0;
  if (planned == 0 || (planned <= threshold && !emptied)) {
    return;
  }
  // Nothing but an operator can vouch that every guest of a node is gone:
  // every view of it (the lists, the cluster, the permissions) can be wrong
  // together, so repetition corroborates nothing there.
  Hold hold{kind,
            hold_reason(kind, planned, threshold, rows, plan.memory.emptied_from),
            {},
            planned,
            threshold,
            rows,
            emptied ? 0 : after};
  std::vector<PlannedRequest> kept;
  for (auto& r : plan.requests) {
    if (!subject_to_brake(r, kind)) {
      kept.push_back(std::move(r));
      continue;
    }
    const int cycles = cycles_held(in, r.vmid, kind);
    held[r.vmid] = {kind, cycles};
    if (in.confirmed.contains({kind, r.vmid})) {
      r.reason += " (held, confirmed by an operator)";
    } else if (cycles >= after && !emptied) {
      r.reason += " (held, corroborated over " + std::to_string(cycles) + " cycles)";
    } else {
      auto& d = plan.decisions[r.vmid];
      d.kind = GuestDecisionKind::held;
      d.held_cycles = cycles;
      d.reason =
          "held: " + hold.reason +
          (emptied ? " (until an operator confirms it)"
                   : " (" + std::to_string(cycles) + " of " + std::to_string(after) + " cycles)");
      hold.vmids.push_back(r.vmid);
      plan.held.push_back(std::move(r));
      continue;
    }
    plan.decisions[r.vmid].reason = r.reason;
    kept.push_back(std::move(r));
  }
  plan.requests = std::move(kept);
  std::sort(hold.vmids.begin(), hold.vmids.end());  // Proxmox lists in no particular order
  if (!hold.vmids.empty()) {
    plan.warnings.push_back("held: " + hold.reason + "; " + std::to_string(hold.vmids.size()) +
                            (emptied ? " held until an operator confirms them"
                                     : " held until corroborated over " + std::to_string(after) +
                                           " cycles or confirmed") +
                            " (POST /sync/confirm)");
    plan.holds.push_back(std::move(hold));
  }
}

}  // namespace

void apply_brake(const PlanInput& in, std::int64_t rows, Plan& plan) {
  std::map<std::int64_t, HeldChange> held;
  for (const auto kind : {RequestKind::create, RequestKind::mark}) {
    brake_kind(in, kind, rows, plan, held);
  }
  // A held mark whose candidate could not be looked up this cycle (the
  // cluster read failed) keeps its count: nothing new was learnt.
  for (const auto vmid : plan.mark_candidates) {
    const auto before = in.memory.held.find(vmid);
    if (before != in.memory.held.end() && before->second.kind == RequestKind::mark) {
      held.emplace(vmid, before->second);
    }
  }
  plan.memory.held = std::move(held);
}

}  // namespace pha
