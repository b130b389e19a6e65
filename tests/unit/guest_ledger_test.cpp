// The guest ledger: each guest's last write, pending retry and missing mark
// (docs/http-api.md "GET /vms/{vmid}"), bounded by the plan.

#include "agent/sync/guest_ledger.hpp"

#include <doctest/doctest.h>

using namespace pha;

namespace {

Plan plan_with(std::vector<GuestDecision> decisions, std::vector<PlannedRequest> requests = {}) {
  Plan p;
  for (auto& d : decisions) {
    p.decisions[d.vmid] = d;
  }
  p.requests = std::move(requests);
  return p;
}

GuestDecision decision(std::int64_t vmid, GuestDecisionKind kind) {
  GuestDecision d;
  d.vmid = vmid;
  d.kind = kind;
  return d;
}

}  // namespace

TEST_CASE("ledger: a failed write is kept with its error and a pending retry until one succeeds") {
  GuestLedger ledger;
  auto d = decision(101, GuestDecisionKind::update);
  d.row_id = 7;
  d.changed = {"name"};
  const PlannedRequest update{
      RequestKind::update, 7, 101, {{"vmid", 101}, {"name", "x"}}, "changed: name"};
  ledger.planned(plan_with({d}, {update}), 100);
  ledger.written(update, false, std::nullopt, "PUT /vms/agent/7 (put_vm): 500 boom", 101);
  auto a = ledger.snapshot()->at(101);
  CHECK(a.retry_pending);
  CHECK(a.pending_fields == std::vector<std::string>{"name"});
  REQUIRE(a.last_write);
  CHECK(write_result(*a.last_write) == "failed");
  CHECK(a.last_write->error == "PUT /vms/agent/7 (put_vm): 500 boom");
  ledger.planned(plan_with({d}, {update}), 200);
  ledger.written(update, true, 7, "", 201);
  a = ledger.snapshot()->at(101);
  CHECK(!a.retry_pending);
  CHECK(a.pending_fields.empty());
  CHECK(write_result(*a.last_write) == "updated");
  CHECK(a.last_write->at == 201);
  // An unchanged guest keeps its last write.
  ledger.planned(plan_with({decision(101, GuestDecisionKind::unchanged)}), 300);
  CHECK(ledger.snapshot()->at(101).last_write->at == 201);
}

TEST_CASE("ledger: a create's row id comes from the answer - the body's fields wait until then") {
  GuestLedger ledger;
  const PlannedRequest create{
      RequestKind::create, -101, 101, {{"vmid", 101}, {"name", "a"}, {"status", "running"}}, "new"};
  ledger.planned(plan_with({decision(101, GuestDecisionKind::create)}, {create}), 100);
  CHECK(ledger.snapshot()->at(101).pending_fields == std::vector<std::string>{"name", "status"});
  ledger.written(create, true, 42, "", 100);
  const auto a = ledger.snapshot()->at(101);
  CHECK(a.decision.row_id == 42);
  CHECK(write_result(*a.last_write) == "created");
}

TEST_CASE("ledger: missing since the first read without it - only the plan's guests are kept") {
  GuestLedger ledger;
  ledger.planned(plan_with({decision(101, GuestDecisionKind::unchanged),
                            decision(102, GuestDecisionKind::unchanged)}),
                 100);
  auto gone = decision(101, GuestDecisionKind::absent);
  gone.present = false;
  gone.missing_reads = 1;
  ledger.planned(plan_with({gone}), 200);
  CHECK(ledger.snapshot()->size() == 1);  // 102 is neither read nor a row any more
  gone.missing_reads = 2;
  ledger.planned(plan_with({gone}), 300);
  CHECK(ledger.snapshot()->at(101).missing_since == 200);
  const PlannedRequest mark{
      RequestKind::mark, 7, 101, {{"vmid", 101}, {"status", "deleted"}}, "deleted"};
  ledger.planned(plan_with({gone}, {mark}), 400);
  ledger.written(mark, true, std::nullopt, "", 400);
  const auto a = ledger.snapshot()->at(101);
  CHECK(a.marked_at == 400);
  CHECK(a.decision.row_status == "deleted");
  CHECK(write_result(*a.last_write) == "marked_missing");
}

TEST_CASE("ledger: error texts are bounded at a character boundary") {
  CHECK(bounded_text("short", 300) == "short");
  const auto cut = bounded_text(std::string(10, 'a') + "\xc3\xa9\xc3\xa9", 13);
  CHECK(cut == "aaaaaaaaaa...");
  CHECK(bounded_text("\xc3\xa9\xc3\xa9\xc3\xa9", 6) == "\xc3\xa9\xc3\xa9\xc3\xa9");
  CHECK(bounded_text("\xc3\xa9\xc3\xa9\xc3\xa9x", 6) == "\xc3\xa9...");
  GuestLedger ledger;
  const PlannedRequest update{RequestKind::update, 7, 101, {{"vmid", 101}}, "full resync"};
  ledger.written(update, false, std::nullopt, std::string(5000, 'e'), 1);
  CHECK(ledger.snapshot()->at(101).last_write->error.size() == kMaxWriteError);
}
