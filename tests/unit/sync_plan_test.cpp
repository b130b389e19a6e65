// The sync plan, rule by rule (docs/sync.md "Whitelist filter", "Only changes",
// "Creates" and "Guests that are gone").

#include <doctest/doctest.h>

#include "agent/sync/plan.hpp"
#include "tests/unit/plan_test_data.hpp"

using namespace pha;

namespace {

constexpr std::int64_t kNow = 1'800'000'000;

Guest guest(std::int64_t vmid, const std::string& status = "running",
            const std::string& name = "") {
  return test::plan_guest(vmid, status, name);
}

AccountDbRow row_of(const Guest& g, std::int64_t id) {
  return test::stored_row(g, id);
}

PlanInput input(std::vector<Guest> guests, std::set<std::int64_t> whitelist,
                std::vector<AccountDbRow> rows) {
  PlanInput in;
  in.guests = std::move(guests);
  in.whitelist = {true, std::move(whitelist)};
  in.rows = std::move(rows);
  in.now = kNow;
  in.node = "pve1";
  return in;
}

const PlannedRequest* request_for(const Plan& p, std::int64_t vmid) {
  for (const auto& r : p.requests) {
    if (r.vmid == vmid) {
      return &r;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("create: a whitelisted running guest unknown to list_vms is created through -vmid") {
  auto p = make_plan(input({guest(101), guest(102, "stopped"), guest(103)}, {101, 102}, {}));
  REQUIRE(p.requests.size() == 1);
  const auto& r = p.requests[0];
  CHECK(r.kind == RequestKind::create);
  CHECK(r.id == -101);
  CHECK(r.vmid == 101);
  CHECK(r.reason == "new");
  CHECK(r.body["name"] == "vm-101");
  CHECK(r.body["status"] == "running");
  CHECK(r.body["disk_gb"].is_number_integer());
  // 102 is stopped (not created), 103 is outside the whitelist.
  CHECK(p.stats.filtered == 2);
  CHECK(p.stats.filtered_out == 1);
  CHECK(p.stats.total_vms_before_filter == 3);
  CHECK(p.stats.total_vms_after_filter == 2);
  CHECK(p.stats.online_vms == 2);
}

TEST_CASE("create: stopped guests and templates only with CREATE_STOPPED_VMS") {
  auto tmpl = guest(104, "stopped");
  tmpl.is_template = true;
  auto in = input({guest(102, "stopped"), tmpl}, {102, 104}, {});
  CHECK(make_plan(in).requests.empty());
  in.settings.create_stopped = true;
  auto p = make_plan(in);
  REQUIRE(p.requests.size() == 2);
  CHECK(request_for(p, 104)->body["template_id"] == 1);
}

TEST_CASE("create: never with an empty whitelist - which filters nothing for updates") {
  const auto g = guest(101);
  auto changed = g;
  changed.name = "renamed";
  auto p = make_plan(input({guest(100), changed}, {}, {row_of(g, 7)}));
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].kind == RequestKind::update);
  CHECK(p.requests[0].id == 7);
  CHECK(p.stats.filtered_out == 0);
  CHECK(p.stats.filtered ==
        1);  // 100: unknown to list_vms, and no non-empty whitelist allows a create
}

TEST_CASE("unknown whitelist: only guests AccountDB has are kept - and no creates") {
  const auto known = guest(101);
  auto changed = known;
  changed.status = "stopped";
  auto in = input({changed, guest(102)}, {}, {row_of(known, 7)});
  in.whitelist = {false, {}};
  auto p = make_plan(in);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].vmid == 101);
  CHECK(p.requests[0].kind == RequestKind::update);
  CHECK(p.stats.filtered_out == 1);
}

TEST_CASE("update: nothing is sent when nothing changed") {
  const auto g = guest(101);
  auto in = input({g}, {101}, {row_of(g, 7)});
  in.memory.last_sent[101] = kNow - 10;
  auto p = make_plan(in);
  CHECK(p.requests.empty());
  CHECK(p.stats.unchanged == 1);
}

TEST_CASE("update: each compared field that differs is a change") {
  const auto base = guest(101);
  struct Case {
    std::string field;
    std::function<void(Guest&)> change;
  };
  const std::vector<Case> cases = {
      {"name", [](Guest& g) { g.name = "renamed"; }},
      {"status", [](Guest& g) { g.status = "paused"; }},
      {"cpu_cores", [](Guest& g) { g.cpus = 4; }},
      {"memory_mb", [](Guest& g) { g.maxmem = 4096LL << 20; }},
      {"disk_gb", [](Guest& g) { g.maxdisk = 64LL << 30; }},
      {"ip_address", [](Guest& g) { g.ip_address = "10.0.0.5"; }},
      {"cpu_usage_percent", [](Guest& g) { g.cpu = 0.16; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    auto changed = base;
    c.change(changed);
    auto in = input({changed}, {101}, {row_of(base, 7)});
    in.memory.last_sent[101] = kNow;
    auto p = make_plan(in);
    REQUIRE(p.requests.size() == 1);
    CHECK(p.requests[0].kind == RequestKind::update);
    CHECK(p.requests[0].id == 7);
    CHECK(p.requests[0].reason.find(c.field) != std::string::npos);
    CHECK(p.requests[0].body["status"].is_string());  // status is always sent
  }
}

TEST_CASE("update: CPU moves inside the dead band are not a change") {
  const auto base = guest(101);  // 10.0 %
  struct Case {
    double cpu;
    double threshold;
    bool sent;
  };
  const std::vector<Case> cases = {
      {0.149, 5, false},  {0.150, 5, true}, {0.051, 5, false}, {0.050, 5, true},
      {0.101, 0, true},    // 10.1 vs 10.0: any change counts with a threshold of 0
      {0.1004, 0, false},  // still 10.0 once rounded as the server stores it
      {0.10, 0, false},   {0.11, 0, true},  {0.50, 50, false}, {0.60, 50, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cpu);
    CAPTURE(c.threshold);
    auto changed = base;
    changed.cpu = c.cpu;
    auto in = input({changed}, {101}, {row_of(base, 7)});
    in.memory.last_sent[101] = kNow;
    in.settings.cpu_change_threshold = c.threshold;
    CHECK(make_plan(in).requests.empty() != c.sent);
  }
}

TEST_CASE("update: a null on our side is no difference - a null stored value is") {
  auto g = guest(101);
  auto row = row_of(g, 7);
  row.ip_address = "10.0.0.9";  // we know no IP: the server keeps its own
  auto in = input({g}, {101}, {row});
  in.memory.last_sent[101] = kNow;
  CHECK(make_plan(in).requests.empty());
  row = row_of(g, 7);
  row.cpu_cores.reset();
  in.rows = {row};
  REQUIRE(make_plan(in).requests.size() == 1);
}

TEST_CASE("full resync: an unchanged guest is sent again after FULL_RESYNC_INTERVAL") {
  const auto g = guest(101);
  auto in = input({g}, {101}, {row_of(g, 7)});
  in.settings.full_resync_interval = 3600;
  in.memory.last_sent[101] = kNow - 3599;
  CHECK(make_plan(in).requests.empty());
  in.memory.last_sent[101] = kNow - 3600;
  auto p = make_plan(in);
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].reason == "full resync");
  in.settings.full_resync_interval = 0;  // never
  in.memory.last_sent[101] = kNow - 999999;
  CHECK(make_plan(in).requests.empty());
}

TEST_CASE("full resync: a guest never sent by this agent starts counting now instead of a burst") {
  const auto g = guest(101);
  auto in = input({g}, {101}, {row_of(g, 7)});
  auto p = make_plan(in);
  CHECK(p.requests.empty());
  CHECK(p.memory.last_sent.at(101) == kNow);
}

TEST_CASE("duplicates in list_vms: the newest row is updated and both ids are named") {
  const auto g = guest(101);
  auto old_row = row_of(g, 7);
  auto new_row = row_of(g, 9);
  new_row.updated_at = "2026-11-02T00:00:00.000000+00:00";
  auto changed = g;
  changed.name = "renamed";
  for (const auto& rows :
       {std::vector<AccountDbRow>{old_row, new_row}, std::vector<AccountDbRow>{new_row, old_row}}) {
    auto p = make_plan(input({changed}, {101}, rows));
    REQUIRE(p.requests.size() == 1);
    CHECK(p.requests[0].id == 9);
    REQUIRE(p.warnings.size() == 1);
    CHECK(p.warnings[0].find("ids 9 and 7") != std::string::npos);
  }
  // Same updated_at: the highest id.
  auto a = row_of(g, 3);
  auto b = row_of(g, 4);
  auto p = make_plan(input({changed}, {101}, {b, a}));
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].id == 4);
}

TEST_CASE("a guest removed from the whitelist is no longer updated") {
  const auto g = guest(101);
  auto changed = g;
  changed.status = "stopped";
  auto p = make_plan(input({changed, guest(102)}, {102}, {row_of(g, 7)}));
  CHECK(request_for(p, 101) == nullptr);
  CHECK(p.stats.filtered_out == 1);
}

TEST_CASE("unknown guests of the fallback source are neither sent nor gone") {
  const auto g = guest(101);
  Guest skeleton;
  skeleton.vmid = 101;
  skeleton.node = "pve1";
  skeleton.status = "unknown";
  skeleton.unknown = true;
  auto in = input({skeleton}, {101}, {row_of(g, 7)});
  in.read_counts_for_missing = false;
  in.memory.missing[101] = 2;
  auto p = make_plan(in);
  CHECK(p.requests.empty());
  CHECK(p.mark_candidates.empty());
  CHECK_FALSE(p.memory.missing.contains(101));
}

TEST_CASE("gone guests: counted over complete reads - marked deleted or migrated once") {
  const auto g = guest(101, "running", "db-1");
  auto in = input({guest(102)}, {101, 102}, {row_of(g, 7), row_of(guest(102), 8)});
  in.settings.missing_after_cycles = 3;
  in.memory.last_sent[102] = kNow;

  auto p1 = make_plan(in);
  CHECK(p1.memory.missing.at(101) == 1);
  CHECK(p1.mark_candidates.empty());
  in.memory = p1.memory;
  auto p2 = make_plan(in);
  CHECK(p2.memory.missing.at(101) == 2);

  // A read that does not count leaves the count alone.
  in.memory = p2.memory;
  in.read_counts_for_missing = false;
  auto partial = make_plan(in);
  CHECK(partial.memory.missing.at(101) == 2);
  CHECK(partial.mark_candidates.empty());

  in.read_counts_for_missing = true;
  auto p3 = make_plan(in);
  CHECK(p3.memory.missing.at(101) == 3);
  REQUIRE(p3.mark_candidates == std::vector<std::int64_t>{101});
  CHECK(p3.requests.empty());

  // After the lookups: nowhere in the cluster, and the token may see it -> deleted.
  in.cluster_locations = std::map<std::int64_t, std::string>{{102, "pve1"}};
  in.visible = std::map<std::int64_t, bool>{{101, true}};
  auto deleted = make_plan(in);
  REQUIRE(deleted.requests.size() == 1);
  CHECK(deleted.requests[0].kind == RequestKind::mark);
  CHECK(deleted.requests[0].id == 7);
  CHECK(deleted.requests[0].body ==
        nlohmann::json({{"vmid", 101}, {"name", "db-1"}, {"status", "deleted"}}));

  // On another node -> migrated.
  in.cluster_locations = std::map<std::int64_t, std::string>{{101, "pve2"}};
  auto migrated = make_plan(in);
  REQUIRE(migrated.requests.size() == 1);
  CHECK(migrated.requests[0].body["status"] == "migrated");
  CHECK(migrated.requests[0].reason == "migrated to pve2");

  // Once: a row already marked is left alone.
  auto marked = row_of(g, 7);
  marked.status = "deleted";
  in.rows = {marked, row_of(guest(102), 8)};
  in.cluster_locations.reset();
  in.visible.reset();
  auto again = make_plan(in);
  CHECK(again.requests.empty());
  CHECK(again.mark_candidates.empty());

  // MARK_MISSING_VMS=false never marks.
  in.rows = {row_of(g, 7), row_of(guest(102), 8)};
  in.settings.mark_missing = false;
  CHECK(make_plan(in).mark_candidates.empty());
}

TEST_CASE(
    "gone guests: a destroy task vouches for the first complete read - not for a partial one") {
  const auto g = guest(101, "running", "db-1");
  auto in = input({guest(102)}, {101, 102}, {row_of(g, 7), row_of(guest(102), 8)});
  in.settings.missing_after_cycles = 3;
  in.memory.last_sent[102] = kNow;
  in.gone_by_task = {101};
  // A read that does not count: the task alone marks nothing.
  in.read_counts_for_missing = false;
  CHECK(make_plan(in).mark_candidates.empty());
  in.read_counts_for_missing = true;
  const auto p = make_plan(in);
  CHECK(p.memory.missing.at(101) == 1);
  REQUIRE(p.mark_candidates == std::vector<std::int64_t>{101});
  // The cluster and the permissions still have their say.
  in.cluster_locations = std::map<std::int64_t, std::string>{{101, "pve1"}};
  in.visible = std::map<std::int64_t, bool>{{101, true}};
  CHECK(make_plan(in).requests.empty());  // the cluster still has it here
  in.cluster_locations = std::map<std::int64_t, std::string>{{102, "pve1"}};
  in.visible = std::map<std::int64_t, bool>{{101, false}};
  CHECK(make_plan(in).requests.empty());  // hidden, not gone
  in.visible = std::map<std::int64_t, bool>{{101, true}};
  const auto marked = make_plan(in);
  REQUIRE(marked.requests.size() == 1);
  CHECK(marked.requests[0].body["status"] == "deleted");
}

TEST_CASE("a guest that comes back starts its missing count again") {
  const auto g = guest(101);
  auto in = input({g}, {101}, {row_of(g, 7)});
  in.memory.missing[101] = 2;
  in.memory.last_sent[101] = kNow;
  auto p = make_plan(in);
  CHECK_FALSE(p.memory.missing.contains(101));
  CHECK(p.requests.empty());
}

TEST_CASE("the cluster still placing a missing guest on this node holds the mark back") {
  const auto g = guest(101);
  auto in = input({}, {101}, {row_of(g, 7)});
  in.memory.missing[101] = 5;
  in.cluster_locations = std::map<std::int64_t, std::string>{{101, "pve1"}};
  in.visible = std::map<std::int64_t, bool>{{101, true}};
  CHECK(make_plan(in).requests.empty());
}

TEST_CASE("decisions: each guest says which create rule keeps it out of AccountDB") {
  auto tmpl = guest(104, "stopped");
  tmpl.is_template = true;
  const auto known = guest(105);
  auto in = input({guest(101), guest(102, "stopped"), guest(103), tmpl, known},
                  {101, 102, 104, 105}, {row_of(known, 9)});
  auto p = make_plan(in);
  REQUIRE(p.decisions.size() == 5);
  CHECK(p.decisions[101].kind == GuestDecisionKind::create);
  CHECK(p.decisions[101].kept_out_by == KeptOutBy::none);
  CHECK(p.decisions[101].whitelisted == true);
  CHECK(p.decisions[102].kind == GuestDecisionKind::kept_out);
  CHECK(p.decisions[102].kept_out_by == KeptOutBy::stopped);
  CHECK(p.decisions[103].kept_out_by == KeptOutBy::not_whitelisted);
  CHECK(p.decisions[103].whitelisted == false);
  CHECK(p.decisions[104].kept_out_by == KeptOutBy::template_guest);
  CHECK(to_string(p.decisions[104].kept_out_by) == "template");
  CHECK(p.decisions[105].kind == GuestDecisionKind::unchanged);
  CHECK(p.decisions[105].row_id == 9);
  in.settings.create_stopped = true;
  p = make_plan(in);
  CHECK(p.decisions[102].kind == GuestDecisionKind::create);
  CHECK(p.decisions[104].kind == GuestDecisionKind::create);
}

TEST_CASE("decisions: an unknown or empty whitelist keeps guests without a row out") {
  const auto known = guest(101);
  auto in = input({known, guest(102)}, {}, {row_of(known, 7)});
  auto p = make_plan(in);
  CHECK(p.decisions[102].kept_out_by == KeptOutBy::not_whitelisted);  // empty: no create
  CHECK(p.decisions[101].kind == GuestDecisionKind::unchanged);
  in.whitelist = {false, {}};
  p = make_plan(in);
  CHECK(p.decisions[102].kept_out_by == KeptOutBy::whitelist_unknown);
  CHECK(!p.decisions[102].whitelisted.has_value());
  CHECK(p.decisions[101].kind == GuestDecisionKind::unchanged);
}

TEST_CASE("decisions: an update names the fields that differ - a gone row counts its reads") {
  const auto g = guest(101);
  auto changed = g;
  changed.name = "renamed";
  changed.maxmem = 4096LL << 20;
  const auto gone = guest(102);
  auto in = input({changed}, {101, 102}, {row_of(g, 7), row_of(gone, 8)});
  in.settings.missing_after_cycles = 2;
  auto p = make_plan(in);
  CHECK(p.decisions[101].kind == GuestDecisionKind::update);
  CHECK(p.decisions[101].changed == std::vector<std::string>{"name", "memory_mb"});
  CHECK(p.decisions[101].reason == "changed: name, memory_mb");
  CHECK(p.decisions[102].kind == GuestDecisionKind::absent);
  CHECK(!p.decisions[102].present);
  CHECK(p.decisions[102].missing_reads == 1);
  in.memory = p.memory;
  in.cluster_locations = std::map<std::int64_t, std::string>{};
  in.visible = std::map<std::int64_t, bool>{{102, true}};
  p = make_plan(in);
  CHECK(p.decisions[102].kind == GuestDecisionKind::mark);
  CHECK(p.decisions[102].reason == "deleted");
  auto marked = row_of(gone, 8);
  marked.status = "deleted";
  in.rows = {row_of(g, 7), marked};
  CHECK(make_plan(in).decisions[102].kind == GuestDecisionKind::marked);
}
