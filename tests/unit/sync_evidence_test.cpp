// The plan's rules of evidence (docs/sync.md "Evidence" and "The change
// brake"): a row the agent knows is never created again, a row of another
// node is not this node's, a guest hidden from the user or token is never
// marked, an entry that was not understood is unknown, and a cycle that
// would create or mark deleted much of the node holds those changes until
// they are corroborated or confirmed.

#include <doctest/doctest.h>

#include "agent/sync/brake.hpp"
#include "agent/sync/plan.hpp"
#include "tests/unit/plan_test_data.hpp"

using namespace pha;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;
constexpr std::int64_t kNode = 34;

Guest guest(std::int64_t vmid) {
  return test::plan_guest(vmid);
}

AccountDbRow row_of(const Guest& g, std::int64_t id) {
  auto row = test::stored_row(g, id);
  row.proxmox_node_id = kNode;
  return row;
}

// `n` running guests 101.., all whitelisted, each with row id vmid - 100.
struct Node {
  std::vector<Guest> guests;
  std::vector<AccountDbRow> rows;
  std::set<std::int64_t> whitelist;
  explicit Node(int n) {
    for (int i = 1; i <= n; ++i) {
      guests.push_back(guest(100 + i));
      rows.push_back(row_of(guests.back(), i));
      whitelist.insert(100 + i);
    }
  }
  PlanInput input() const {
    PlanInput in;
    in.guests = guests;
    in.whitelist = {true, whitelist};
    in.rows = rows;
    in.node_id = kNode;
    in.now = kNow;
    in.node = "pve1";
    in.settings.missing_after_cycles = 3;
    return in;
  }
  // The memory after a cycle in which list_vms showed every row.
  SyncMemory synced() const { return make_plan(input()).memory; }
};

std::size_t count_kind(const Plan& p, RequestKind k) {
  return static_cast<std::size_t>(std::count_if(p.requests.begin(), p.requests.end(),
                                                [k](const auto& r) { return r.kind == k; }));
}

// A plan for a row absent long enough, with the lookups the engine makes.
PlanInput gone_long_enough(const Node& node, std::vector<std::int64_t> gone) {
  auto in = node.input();
  in.memory = node.synced();
  std::erase_if(in.guests, [&](const Guest& g) {
    return std::find(gone.begin(), gone.end(), g.vmid) != gone.end();
  });
  for (const auto vmid : gone) {
    in.memory.missing[vmid] = 2;  // this read is the third
  }
  in.cluster_locations = std::map<std::int64_t, std::string>{};
  in.visible = std::map<std::int64_t, bool>{};
  for (const auto vmid : gone) {
    (*in.visible)[vmid] = true;
  }
  return in;
}

}  // namespace

TEST_CASE("evidence: the agent remembers every row list_vms showed") {
  const Node node(3);
  const auto m = node.synced();
  REQUIRE(m.rows.size() == 3);
  CHECK(m.rows.at(101).id == 1);
  CHECK(m.rows.at(103).name == "vm-103");
}

TEST_CASE("evidence: an empty list_vms creates nothing for a guest whose row the agent knows") {
  const Node node(11);
  auto in = node.input();
  in.memory = node.synced();
  in.rows.clear();  // one well-formed empty answer
  const auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::create) == 0);
  CHECK(p.requests.empty());  // the known rows match: nothing to send
  for (const auto& g : node.guests) {
    const auto& d = p.decisions.at(g.vmid);
    CHECK(d.row_id == g.vmid - 100);
    CHECK_FALSE(d.row_listed);
    CHECK(d.kind == GuestDecisionKind::unchanged);
  }
  // The rows stay known while list_vms leaves them out.
  CHECK(p.memory.rows.size() == 11);
}

TEST_CASE("evidence: a change of a guest whose row list_vms left out goes to the known row id") {
  const Node node(2);
  auto in = node.input();
  in.memory = node.synced();
  in.rows.clear();
  in.guests[0].status = "stopped";
  const auto p = make_plan(in);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].kind == RequestKind::update);
  CHECK(p.requests[0].id == 1);
  CHECK(p.requests[0].reason.find("not in list_vms") != std::string::npos);
}

TEST_CASE("evidence: a known row id that list_vms shows for another VMID is never written") {
  const Node node(2);
  auto in = node.input();
  in.memory = node.synced();
  // list_vms now shows row 1 as VMID 150 (not on this node any more for 101).
  in.rows = {row_of(guest(150), 1), node.rows[1]};
  in.settings.brake_min = 10;
  const auto p = make_plan(in);
  for (const auto& r : p.requests) {
    CHECK_FALSE((r.id == 1 && r.vmid == 101));
  }
  const auto* create = &p.requests.front();
  CHECK(create->kind == RequestKind::create);
  CHECK(create->vmid == 101);
}

TEST_CASE("evidence: rows of another AccountDB node are left out and said") {
  const Node node(2);
  auto in = node.input();
  in.memory = node.synced();
  auto foreign = row_of(guest(101), 77);
  foreign.proxmox_node_id = 35;
  in.rows = {foreign, node.rows[1]};
  const auto p = make_plan(in);
  CHECK(p.rows_of_other_nodes == 1);
  CHECK(p.decisions.at(101).row_id == 1);  // the known row, not 77
  for (const auto& r : p.requests) {
    CHECK(r.id != 77);
  }
  CHECK_FALSE(p.warnings.empty());
}

TEST_CASE("evidence: a guest whose row list_vms shows on another node is not created here") {
  const Node node(2);
  auto in = node.input();  // a fresh agent: it knows no row
  auto foreign = row_of(guest(101), 77);
  foreign.proxmox_node_id = 35;
  in.rows = {foreign};
  const auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::create) == 1);  // 102 only
  CHECK(p.requests[0].vmid == 102);
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::no_values);
}

TEST_CASE("evidence: a guest the user or token may not see is hidden - never marked") {
  const Node node(5);
  auto in = gone_long_enough(node, {101, 102});
  (*in.visible)[102] = false;
  const auto p = make_plan(in);
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::mark);
  CHECK(p.decisions.at(102).kind == GuestDecisionKind::hidden);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].vmid == 101);
}

TEST_CASE("evidence: a mark waits while the visibility of the guest is not known") {
  const Node node(5);
  auto in = gone_long_enough(node, {101});
  in.visible->clear();
  const auto p = make_plan(in);
  CHECK(p.requests.empty());
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::absent);
  // Without any lookup, the row is a candidate for one.
  in.visible.reset();
  const auto first = make_plan(in);
  CHECK(first.mark_candidates == std::vector<std::int64_t>{101});
}

TEST_CASE("evidence: an entry the read could not understand is unknown - never counted as gone") {
  const Node node(3);
  auto in = node.input();
  in.memory = node.synced();
  in.guests.erase(in.guests.begin());  // 101 was listed but not understood
  in.unreadable = {101};
  const auto p = make_plan(in);
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::no_values);
  CHECK_FALSE(p.memory.missing.contains(101));
  CHECK(p.requests.empty());
}

TEST_CASE(
    "brake: the threshold is the larger of CHANGE_BRAKE_MIN and CHANGE_BRAKE_PERCENT of the rows") {
  PlanSettings s;
  s.brake_min = 3;
  s.brake_percent = 20;
  CHECK(brake_threshold(s, 0) == 3);
  CHECK(brake_threshold(s, 10) == 3);
  CHECK(brake_threshold(s, 15) == 3);
  CHECK(brake_threshold(s, 20) == 4);
  CHECK(brake_threshold(s, 100) == 20);
  CHECK(brake_threshold(s, 101) == 20);
  s.brake_percent = 0;
  CHECK(brake_threshold(s, 1000) == 3);
}

TEST_CASE("brake: more creates than the threshold are held - and written once corroborated") {
  const Node node(11);
  auto in = node.input();
  in.rows.clear();  // a node AccountDB has no row for, and the agent knows none
  auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::create) == 0);
  REQUIRE(p.held.size() == 11);
  REQUIRE(p.holds.size() == 1);
  CHECK(p.holds[0].kind == RequestKind::create);
  CHECK(p.holds[0].threshold == 3);
  CHECK(p.holds[0].planned == 11);
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::held);
  CHECK(p.decisions.at(101).held_cycles == 1);
  // The same answer in the next cycles: on the third it is written.
  in.memory = p.memory;
  p = make_plan(in);
  CHECK(p.held.size() == 11);
  CHECK(p.decisions.at(101).held_cycles == 2);
  in.memory = p.memory;
  p = make_plan(in);
  CHECK(p.held.empty());
  CHECK(count_kind(p, RequestKind::create) == 11);
  CHECK(p.requests[0].reason.find("corroborated over 3 cycles") != std::string::npos);
}

TEST_CASE("brake: creates up to the threshold are written at once") {
  const Node node(3);
  auto in = node.input();
  in.rows.clear();
  const auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::create) == 3);
  CHECK(p.held.empty());
  CHECK(p.holds.empty());
}

TEST_CASE("brake: an operator's confirmation releases exactly the changes it names") {
  const Node node(6);
  auto in = node.input();
  in.rows.clear();
  in.confirmed = {{RequestKind::create, 101},
                  {RequestKind::create, 102},
                  {RequestKind::mark, 103}};  // 103 is a create here: not confirmed by that
  const auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::create) == 2);
  CHECK(p.held.size() == 4);
  CHECK(p.decisions.at(103).kind == GuestDecisionKind::held);
}

TEST_CASE("brake: deleted marks of more rows than the threshold are held - migrated ones are not") {
  const Node node(10);
  auto in = gone_long_enough(node, {101, 102, 103, 104, 105, 106});
  (*in.cluster_locations)[105] = "pve2";
  (*in.cluster_locations)[106] = "pve2";
  const auto p = make_plan(in);
  CHECK(count_kind(p, RequestKind::mark) == 2);  // the migrated ones
  for (const auto& r : p.requests) {
    CHECK(r.body["status"] == "migrated");
  }
  REQUIRE(p.holds.size() == 1);
  CHECK(p.holds[0].kind == RequestKind::mark);
  CHECK(p.holds[0].vmids == std::vector<std::int64_t>{101, 102, 103, 104});
  CHECK(p.decisions.at(101).kind == GuestDecisionKind::held);
}

TEST_CASE("brake: a read that dropped from N guests to none holds even one deleted mark") {
  const Node node(2);
  auto in = gone_long_enough(node, {101, 102});
  in.memory.last_read_guests = 2;
  const auto emptied = make_plan(in);
  CHECK(emptied.memory.emptied_from == 2);
  CHECK(count_kind(emptied, RequestKind::mark) == 0);
  REQUIRE(emptied.holds.size() == 1);
  CHECK(emptied.holds[0].reason.find("dropped from 2 guests to none") != std::string::npos);
  // Repetition corroborates nothing there: only an operator releases them.
  CHECK(emptied.holds[0].corroborate_after == 0);
  auto again = in;
  for (int i = 0; i < 5; ++i) {
    again.memory = make_plan(again).memory;
    again.memory.missing = {{101, 5}, {102, 5}};
  }
  const auto still = make_plan(again);
  CHECK(count_kind(still, RequestKind::mark) == 0);
  CHECK(still.held.size() == 2);
  again.confirmed = {{RequestKind::mark, 101}};
  CHECK(count_kind(make_plan(again), RequestKind::mark) == 1);
  // A read that shows guests again ends it.
  auto back = node.input();
  back.memory = emptied.memory;
  CHECK(make_plan(back).memory.emptied_from == 0);
}

TEST_CASE("brake: a held mark keeps its count through a cycle whose cluster lookup failed") {
  const Node node(10);
  auto in = gone_long_enough(node, {101, 102, 103, 104});
  const auto p = make_plan(in);
  REQUIRE(p.memory.held.at(101).cycles == 1);
  auto next = in;
  next.memory = p.memory;
  next.memory.missing = {{101, 3}, {102, 3}, {103, 3}, {104, 3}};
  next.cluster_locations.reset();
  next.visible.reset();
  const auto failed_lookup = make_plan(next);
  CHECK(failed_lookup.memory.held.at(101).cycles == 1);
}

TEST_CASE("brake: a read that does not count never holds nor marks") {
  const Node node(10);
  auto in = gone_long_enough(node, {101, 102, 103, 104, 105});
  in.read_counts_for_missing = false;
  in.memory.missing.clear();
  const auto p = make_plan(in);
  CHECK(p.requests.empty());
  CHECK(p.held.empty());
  CHECK(p.memory.missing.empty());
}
