// Guests that move, as the plan and the peer check decide them
// (agent/sync/handover.hpp, docs/sync.md "Guests that move").

#include <doctest/doctest.h>

#include "agent/sync/plan.hpp"
#include "agent/sync/sync_state.hpp"
#include "tests/unit/plan_test_data.hpp"

using namespace pha;
using namespace pha::test;

namespace {

PlanInput input_with(std::vector<Guest> guests) {
  PlanInput in;
  in.guests = std::move(guests);
  in.whitelist = {true, {101, 102, 103, 104}};
  in.node_id = 2;
  in.node = "pve2";
  in.now = 1'800'000'000;
  return in;
}

PeerRow peer_answer(const Guest& g, std::int64_t row) {
  return {g.vmid, row, g.name, std::string(to_string(g.type))};
}

}  // namespace

TEST_CASE(
    "a guest handed its row is written to that row - not created - and the brake counts no "
    "create") {
  std::vector<Guest> guests;
  for (std::int64_t v = 101; v <= 104; ++v) {
    guests.push_back(plan_guest(v));
  }
  auto in = input_with(guests);
  in.settings.brake_min = 1;
  auto plan = make_plan(in);
  CHECK(plan.handover_candidates == std::vector<std::int64_t>{101, 102, 103, 104});
  CHECK(plan.requests.empty());  // four creates on a node with no rows: held
  CHECK(plan.held.size() == 4);

  for (std::int64_t v = 101; v <= 104; ++v) {
    in.handovers[v] = {.row_id = v * 10, .from = "pve1"};
  }
  plan = make_plan(in);
  REQUIRE(plan.requests.size() == 4);
  CHECK(plan.held.empty());
  for (const auto& r : plan.requests) {
    CHECK(r.kind == RequestKind::update);
    CHECK(r.id == r.vmid * 10);
    CHECK(r.body["name"] == "vm-" + std::to_string(r.vmid));
    CHECK(plan.decisions.at(r.vmid).row_id == r.vmid * 10);
    CHECK(plan.decisions.at(r.vmid).reason.find("moved from pve1") != std::string::npos);
  }
}

TEST_CASE(
    "a guest outside the whitelist is no handover candidate - a failed one is created and says "
    "why") {
  auto in = input_with({plan_guest(101), plan_guest(999)});
  in.handover_failures[101] = {"pve1", std::nullopt, "the agent of pve1 did not answer"};
  const auto plan = make_plan(in);
  CHECK(plan.handover_candidates == std::vector<std::int64_t>{101});
  REQUIRE(plan.requests.size() == 1);
  CHECK(plan.requests[0].kind == RequestKind::create);
  CHECK(plan.decisions.at(101).reason.find("not handed over") != std::string::npos);
}

TEST_CASE("refuse_peer_row takes only a row about this guest that no other guest holds") {
  const auto g = plan_guest(101);
  const std::vector<AccountDbRow> listed = {stored_row(plan_guest(102), 20)};
  std::map<std::int64_t, AccountDbRow> known = {{103, stored_row(plan_guest(103), 30)}};
  CHECK_FALSE(refuse_peer_row(peer_answer(g, 10), g, listed, known).has_value());
  auto a = peer_answer(g, 10);
  a.vmid = 102;
  CHECK(refuse_peer_row(a, g, listed, known).has_value());
  CHECK(refuse_peer_row(peer_answer(g, 20), g, listed, known).has_value());  // 102's row
  CHECK(refuse_peer_row(peer_answer(g, 30), g, listed, known).has_value());  // 103's row
  a = peer_answer(g, 10);
  a.name = "another";
  CHECK(refuse_peer_row(a, g, listed, known).has_value());
  a = peer_answer(g, 10);
  a.type = "lxc";
  CHECK(refuse_peer_row(a, g, listed, known).has_value());
  a.type.reset();
  CHECK(refuse_peer_row(a, g, listed, known).has_value());
  a = peer_answer(g, 10);
  a.row_id.reset();
  CHECK(refuse_peer_row(a, g, listed, known).has_value());

  const auto parsed = parse_peer_row(
      {{"vmid", 101}, {"name", "vm-101"}, {"type", "qemu"}, {"accountdb", {{"row_id", 10}}}});
  REQUIRE(parsed.ok());
  CHECK(parsed->row_id == 10);
  CHECK_FALSE(parse_peer_row(nlohmann::json::array()).ok());
  CHECK_FALSE(parse_peer_row({{"vmid", "101"}}).ok());
}

TEST_CASE("a row absent from the read keeps its name and the type last read - across a restart") {
  auto in = input_with({plan_guest(101)});
  const auto row = stored_row(plan_guest(101), 10);
  in.rows = {row};
  in.guests[0].type = GuestType::lxc;
  auto plan = make_plan(in);
  CHECK(plan.memory.types.at(101) == GuestType::lxc);

  SyncMemory restored;
  REQUIRE(memory_from_json(memory_json(plan.memory), restored));
  CHECK(restored.types == plan.memory.types);

  in.guests.clear();  // it left the node
  in.memory = restored;
  plan = make_plan(in);
  const auto& d = plan.decisions.at(101);
  CHECK_FALSE(d.present);
  CHECK(d.name == "vm-101");
  CHECK(d.type == GuestType::lxc);
}
