// Fuzz target: the sync plan (agent/sync/plan.*, brake.*) over several cycles
// of well-formed answers that may be wrong: a read that shrinks, empties or
// may not see every guest, entries not understood, list_vms rows that vanish,
// move to another VMID or belong to another node, a cluster view and
// permissions that disagree, a whitelist that changes, confirmations. The
// bytes choose the answers; the memory carries from cycle to cycle as the
// engine carries it. Whatever they are, no request may break a rule of
// evidence (docs/sync.md "Evidence", "The change brake"):
//   - at most one request per VMID per cycle;
//   - no create for a VMID whose row the agent knows or list_vms shows (on
//     any node), or that is not in a known non-empty whitelist;
//   - every update and mark goes to a positive row id that list_vms shows for
//     that VMID on this node, or that the agent knows and list_vms shows for
//     no other VMID;
//   - no mark for a guest the read shows (or listed but did not understand),
//     none before MISSING_AFTER_CYCLES complete reads without it (unless a
//     destroy or migration task vouches for the one that counts), none that the
//     cluster still places here or, for `deleted`, the user or token may not
//     see, and `migrated` only when the cluster places it on another node;
//   - the creates and the `deleted` marks written without an operator's
//     confirmation or max(2, MISSING_AFTER_CYCLES) held cycles stay within the
//     brake's threshold, and while reads dropped to none no `deleted` mark is
//     written without a confirmation.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/sync/brake.hpp"
#include "agent/sync/plan.hpp"
#include "fuzz/target.hpp"

namespace {

using pha::fuzz::require;

constexpr std::int64_t kNode = 34;
constexpr std::int64_t kVmids = 24;  // VMIDs 101..124: small, so that answers collide

// The bytes, read as small choices; zeros once they run out.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool flag() { return (next() & 1) != 0; }
  int below(int n) { return n <= 1 ? 0 : next() % n; }
  bool done() const { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

pha::Guest guest_of(std::int64_t vmid, Bytes& b) {
  pha::Guest g;
  g.type = b.flag() ? pha::GuestType::qemu : pha::GuestType::lxc;
  g.vmid = vmid;
  g.node = "pve1";
  g.name = "g" + std::to_string(vmid) + (b.below(4) == 0 ? "-renamed" : "");
  static const char* const kStatus[] = {"running", "stopped", "paused", "unknown"};
  g.status = kStatus[b.below(4)];
  g.unknown = g.status == "unknown";
  g.cpus = 1 + b.below(8);
  g.cpu = b.below(100) / 100.0;
  g.maxmem = static_cast<std::int64_t>(1 + b.below(8)) << 30;
  g.maxdisk = static_cast<std::int64_t>(1 + b.below(64)) << 30;
  g.is_template = b.below(8) == 0;
  return g;
}

pha::AccountDbRow row_of(std::int64_t id, std::int64_t vmid, Bytes& b) {
  pha::AccountDbRow r;
  r.id = id;
  r.vmid = vmid;
  r.name = "g" + std::to_string(vmid);
  static const char* const kStatus[] = {"running", "stopped", "deleted", "migrated"};
  r.status = kStatus[b.below(4)];
  r.cpu_cores = 1 + b.below(8);
  r.memory_mb = 1024 * (1 + b.below(8));
  r.disk_gb = 1 + b.below(64);
  r.proxmox_node_id = b.below(8) == 0 ? kNode + 1 : kNode;
  r.updated_at = "2026-12-0" + std::to_string(1 + b.below(9));
  return r;
}

// One cycle's answers, chosen by the bytes.
pha::PlanInput answers(Bytes& b, const pha::SyncMemory& memory, std::int64_t now) {
  pha::PlanInput in;
  in.memory = memory;
  in.now = now;
  in.node = "pve1";
  in.node_id = kNode;
  in.settings.missing_after_cycles = 1 + b.below(3);
  in.settings.brake_min = 1 + b.below(4);
  in.settings.brake_percent = 10.0 * b.below(5);
  in.settings.create_stopped = b.flag();
  in.read_counts_for_missing = b.flag();
  const int shown = b.below(kVmids + 1);  // a read may show anything from none to all
  for (int i = 0; i < shown; ++i) {
    const auto vmid = 101 + b.below(kVmids);
    if (std::none_of(in.guests.begin(), in.guests.end(),
                     [&](const pha::Guest& g) { return g.vmid == vmid; })) {
      in.guests.push_back(guest_of(vmid, b));
    }
  }
  for (int i = b.below(3); i > 0; --i) {
    in.unreadable.insert(101 + b.below(kVmids));
  }
  const int rows = b.below(kVmids + 1);
  for (int i = 0; i < rows; ++i) {
    // Row ids collide with VMIDs on purpose: a row may name any VMID.
    in.rows.push_back(row_of(1 + b.below(40), 101 + b.below(kVmids), b));
  }
  const int known = b.below(3);
  if (known > 0) {
    in.whitelist.known = true;
    for (int i = b.below(kVmids + 1); i > 0; --i) {
      in.whitelist.vmids.insert(101 + b.below(kVmids));
    }
  }
  if (b.flag()) {
    in.cluster_locations.emplace();
    for (int i = b.below(kVmids); i > 0; --i) {
      (*in.cluster_locations)[101 + b.below(kVmids)] = b.flag() ? "pve1" : "pve2";
    }
    in.visible.emplace();
    for (int i = b.below(kVmids); i > 0; --i) {
      (*in.visible)[101 + b.below(kVmids)] = b.flag();
    }
  }
  for (int i = b.below(3); i > 0; --i) {
    in.gone_by_task.insert(101 + b.below(kVmids));  // a destroy or migration task ended
  }
  for (int i = b.below(4); i > 0; --i) {
    in.confirmed.insert(
        {b.flag() ? pha::RequestKind::create : pha::RequestKind::mark, 101 + b.below(kVmids)});
  }
  return in;
}

bool listed_for(const pha::PlanInput& in, std::int64_t id, std::int64_t vmid) {
  return std::any_of(in.rows.begin(), in.rows.end(), [&](const pha::AccountDbRow& r) {
    return r.id == id && r.vmid == vmid && r.proxmox_node_id == kNode;
  });
}

bool listed_for_other(const pha::PlanInput& in, std::int64_t id, std::int64_t vmid) {
  return std::any_of(in.rows.begin(), in.rows.end(), [&](const pha::AccountDbRow& r) {
    return r.id == id && (r.vmid != vmid || r.proxmox_node_id != kNode);
  });
}

void check_request(const pha::PlanInput& in, const pha::Plan& plan, const pha::PlannedRequest& r) {
  const auto vmid = r.vmid;
  const bool present = in.unreadable.contains(vmid) ||
                       std::any_of(in.guests.begin(), in.guests.end(),
                                   [&](const pha::Guest& g) { return g.vmid == vmid; });
  const auto known = in.memory.rows.find(vmid);
  switch (r.kind) {
    case pha::RequestKind::create:
      require(r.id == -vmid, "a create goes to -vmid");
      require(in.whitelist.filters() && in.whitelist.vmids.contains(vmid),
              "a create is for a VMID of a known, non-empty whitelist");
      require(known == in.memory.rows.end() || listed_for_other(in, known->second.id, vmid),
              "no create for a guest whose row the agent knows");
      require(std::none_of(in.rows.begin(), in.rows.end(),
                           [&](const pha::AccountDbRow& row) { return row.vmid == vmid; }),
              "no create for a guest list_vms shows a row of, here or on another node");
      break;
    case pha::RequestKind::update:
      require(r.id > 0, "an update goes to a row id");
      require(listed_for(in, r.id, vmid) ||
                  (known != in.memory.rows.end() && known->second.id == r.id &&
                   !listed_for_other(in, r.id, vmid)),
              "an update goes to this VMID's row");
      break;
    case pha::RequestKind::mark: {
      require(r.id > 0 && listed_for(in, r.id, vmid), "a mark goes to a row list_vms shows");
      require(!present, "no mark for a guest the read shows");
      const auto missing = plan.memory.missing.find(vmid);
      const bool vouched = in.gone_by_task.contains(vmid) && in.read_counts_for_missing;
      require(missing != plan.memory.missing.end() &&
                  (missing->second >= in.settings.missing_after_cycles || vouched),
              "a mark only after MISSING_AFTER_CYCLES complete reads without it, or one that "
              "a destroy or migration task vouches for");
      require(in.cluster_locations.has_value() && in.visible.has_value(),
              "a mark only after the cluster and permission lookups");
      const auto where = in.cluster_locations->find(vmid);
      require(where == in.cluster_locations->end() || where->second != in.node,
              "no mark while the cluster places the guest here");
      const auto status = r.body.value("status", std::string());
      if (status == "migrated") {
        require(where != in.cluster_locations->end(), "migrated only when placed elsewhere");
      } else {
        require(status == "deleted", "a mark is deleted or migrated");
        const auto seen = in.visible->find(vmid);
        require(seen != in.visible->end() && seen->second,
                "no deleted mark for a guest the user or token may not see");
      }
      break;
    }
  }
}

// The writes of one kind that went through without confirmation or
// corroboration stay within the brake.
void check_brake(const pha::PlanInput& in, const pha::Plan& plan, pha::RequestKind kind) {
  std::int64_t unvouched = 0;
  for (const auto& r : plan.requests) {
    if (r.kind != kind ||
        (kind == pha::RequestKind::mark && r.body.value("status", "") != "deleted")) {
      continue;
    }
    const auto held = plan.memory.held.find(r.vmid);
    const bool corroborated = held != plan.memory.held.end() && held->second.kind == kind &&
                              held->second.cycles >= std::max(2, in.settings.missing_after_cycles);
    const bool confirmed = in.confirmed.contains({kind, r.vmid});
    require(kind != pha::RequestKind::mark || plan.memory.emptied_from == 0 || confirmed,
            "while reads dropped to none, a deleted mark only when an operator confirmed it");
    if (!confirmed && !corroborated) {
      ++unvouched;
    }
  }
  // The threshold depends on the node's rows, at least brake_min: a bound
  // that holds whatever the rows.
  std::set<std::int64_t> rows;
  for (const auto& r : in.rows) {
    rows.insert(r.vmid);
  }
  for (const auto& [vmid, r] : in.memory.rows) {
    rows.insert(vmid);
  }
  require(unvouched <= pha::brake_threshold(in.settings, static_cast<std::int64_t>(rows.size())),
          "unvouched creates or deleted marks stay within the change brake");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, size);
  pha::SyncMemory memory;
  std::int64_t now = 1'800'000'000;
  for (int cycle = 0; cycle < 8 && !b.done(); ++cycle) {
    const auto in = answers(b, memory, now);
    const auto plan = pha::make_plan(in);
    std::set<std::int64_t> seen;
    for (const auto& r : plan.requests) {
      require(seen.insert(r.vmid).second, "at most one request per VMID per cycle");
      check_request(in, plan, r);
    }
    for (const auto& r : plan.held) {
      require(std::none_of(plan.requests.begin(), plan.requests.end(),
                           [&](const pha::PlannedRequest& p) { return p.vmid == r.vmid; }),
              "a held request is not also sent");
    }
    check_brake(in, plan, pha::RequestKind::create);
    check_brake(in, plan, pha::RequestKind::mark);
    // The engine's memory after the cycle: the plan's, and each write that
    // landed teaches the row it wrote.
    memory = plan.memory;
    for (const auto& r : plan.requests) {
      memory.held.erase(r.vmid);
      if (r.kind != pha::RequestKind::mark && b.flag()) {
        auto& row = memory.rows[r.vmid];
        row.id = r.id > 0 ? r.id : 40 + b.below(40);
        row.vmid = r.vmid;
        row.name = r.body.value("name", std::string());
        row.status = r.body.value("status", std::string());
      }
    }
    now += 300;
  }
  return 0;
}
