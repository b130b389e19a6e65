// The semantic-fault suite (issue 32): answers that are well-formed and
// wrong, from either upstream, against the real binary with the change brake
// at its defaults. The fault suite (faults_*_test.cpp) breaks the protocol;
// here every answer is one a working server could give. Each case checks
// that no row is marked, doubled or lost, and that /status says why
// (docs/sync.md "Evidence" and "The change brake").
//
// The node starts with its rows in AccountDB (as after the old agent, or an
// earlier run): the agent learns them from list_vms in its first cycle.

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/faults.hpp"

using namespace pha;
using namespace pha::test;
using namespace std::chrono_literals;

namespace {

// The brake as it ships, and three complete reads before a mark (two would
// do; three leaves room for a cycle that proves nothing).
Env semantic_env(Env extra = {}) {
  Env e = fast_env({{"CHANGE_BRAKE_MIN", "3"},
                    {"CHANGE_BRAKE_PERCENT", "20"},
                    {"MISSING_AFTER_CYCLES", "2"},
                    {"PROXMOX_NODE_NAME", "pve1"}});
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return e;
}

struct Populated {
  World w;
  std::unique_ptr<RunningAgent> a;
  std::map<long long, long long> row_ids;  // vmid -> the row's id before the fault

  explicit Populated(Env extra = {}) {
    // AccountDB holds a row for every whitelisted running guest of pve1.
    for (const auto& g : w.pve.cluster().guests_on("pve1")) {
      if (g.status != sim::GuestStatus::stopped && !g.template_ &&
          std::find(w.running.begin(), w.running.end(), g.vmid) != w.running.end()) {
        const auto row = w.adb.add_row({.vmid = g.vmid,
                                        .name = expected_name(g),
                                        .status = expected_status(g),
                                        .proxmox_node_id = kNode,
                                        .owner_id = 7});
        row_ids[g.vmid] = row.id;
      }
    }
    REQUIRE(row_ids.size() == w.running.size());
    a = std::make_unique<RunningAgent>(w, semantic_env(std::move(extra)));
    REQUIRE(a->wait_cycles(1));
    REQUIRE_MESSAGE(last_status(a->get_json("/status")) != "error", log_tail(*a));
    CHECK(creates() == 0);  // the agent learnt the rows: nothing is created again
  }
  sim::PveHost& pve1() { return w.pve.host("pve1"); }

  // Nothing marked, doubled or lost: every row of before is there, with its
  // id, its owner and a live status, and no VMID has two rows.
  void rows_intact() {
    w.check_no_duplicates();
    std::map<long long, sim::AdbRow> now;
    for (const auto& r : w.rows()) {
      now[r.vmid] = r;
    }
    for (const auto& [vmid, id] : row_ids) {
      CAPTURE(vmid);
      REQUIRE(now.contains(vmid));
      CHECK(now[vmid].id == id);
      CHECK(now[vmid].owner_id == 7);
      CHECK(now[vmid].status != "deleted");
      CHECK(now[vmid].status != "migrated");
    }
  }
  // PUTs to a negative id: creates (docs/accountdb.md "put_vm").
  std::size_t creates() const {
    std::size_t n = 0;
    for (const auto& r : w.adb.requests()) {
      n += r.method == "PUT" && r.path.starts_with("/vms/agent/-") ? 1U : 0U;
    }
    return n;
  }
  nlohmann::json cycles(int n) {
    nlohmann::json s;
    for (int i = 0; i < n; ++i) {
      s = cycle(*a);
    }
    return s;
  }
};

bool warns(const nlohmann::json& status, const std::string& part) {
  return status["sync"]["last_result"].value("message", std::string()).find(part) !=
         std::string::npos;
}

}  // namespace

TEST_CASE("semantic proxmox: empty lists with every privilege - the marks are held not written") {
  Populated p;
  // Every guest list of pve1, the node's and the cluster's, is empty.
  p.pve1().set_fault({.kind = sim::FaultKind::empty_list});
  auto s = p.cycles(6);
  p.rows_intact();
  // The reads count (the token may see every guest), the guests are absent
  // long enough, the cluster shows them nowhere and the token may see each...
  // but the read dropped from N guests to none: the brake holds every
  // deleted mark, and only an operator can release them.
  const auto& held = s["sync"]["held"];
  INFO(s.dump());
  REQUIRE(held.is_object());
  CHECK(held["holds"][0]["kind"] == "mark_deleted");
  CHECK(held["holds"][0]["reason"].get<std::string>().find("to none") != std::string::npos);
  CHECK(held["holds"][0]["vmids"].size() == p.row_ids.size());
  const auto metrics = p.a->get("/metrics")->body;
  CHECK(metrics.find("proxmox_host_agent_sync_held_changes{kind=\"mark_deleted\"} " +
                     std::to_string(p.row_ids.size())) != std::string::npos);
  // The lists come back: the hold ends, nothing was written.
  p.pve1().clear_fault();
  s = p.cycles(1);
  CHECK(s["sync"]["held"].is_null());
  p.rows_intact();
}

TEST_CASE("semantic proxmox: the token loses VM.Audit mid-run - nothing is counted nor marked") {
  Populated p;
  REQUIRE(p.w.pve.cluster().set_acls("agent@pve", {{.path = "/", .privileges = {"Sys.Audit"}}}));
  auto s = p.cycles(4);
  p.rows_intact();
  INFO(s.dump());
  CHECK(s["sync"]["read"]["counts_for_missing"] == false);
  CHECK(s["sync"]["read"]["reason"].get<std::string>().find("VM.Audit") != std::string::npos);
  CHECK(s["sync"]["last_result"]["marked_missing"] == 0);
  CHECK(p.a->get("/metrics")->body.find("proxmox_host_agent_sync_read_complete 0") !=
        std::string::npos);
  // The privilege comes back: the read counts again.
  REQUIRE(p.w.pve.cluster().set_acls("agent@pve", {{.path = "/", .role = "PVEAuditor"}}));
  s = p.cycles(1);
  CHECK(s["sync"]["read"]["counts_for_missing"] == true);
  p.rows_intact();
}

TEST_CASE("semantic proxmox: guests hidden behind NoAccess are hidden - not marked") {
  Populated p;
  REQUIRE(p.w.pve.cluster().set_acls("agent@pve", {{.path = "/", .role = "PVEAuditor"}}));
  const auto a = static_cast<int>(p.w.running[0]);
  const auto b = static_cast<int>(p.w.running[1]);
  for (const auto vmid : {a, b}) {
    REQUIRE(p.w.pve.cluster().add_acl(
        "agent@pve", {.path = "/vms/" + std::to_string(vmid), .role = "NoAccess"}));
  }
  auto s = p.cycles(4);
  p.rows_intact();
  INFO(s.dump());
  CHECK(s["sync"]["read"]["counts_for_missing"] == true);
  CHECK(s["sync"]["read"]["hidden"] == nlohmann::json::array({std::min(a, b), std::max(a, b)}));
  const auto vm = p.a->get_json("/vms/" + std::to_string(a));
  CHECK(vm["accountdb"]["decision"] == "hidden");
}

TEST_CASE("semantic proxmox: a shrunken list the cluster contradicts marks nothing") {
  Populated p;
  const auto gone = static_cast<int>(p.w.running[0]);
  p.pve1().set_fault(
      {.kind = sim::FaultKind::drop_entries, .path_prefix = "/nodes/pve1/", .drop_vmids = {gone}});
  auto s = p.cycles(4);
  p.rows_intact();
  const auto vm = p.a->get_json("/vms/" + std::to_string(gone));
  CHECK(vm["accountdb"]["decision"] == "absent");
  CHECK(vm["accountdb"]["missing"]["reads"].get<int>() >= 2);
}

TEST_CASE("semantic proxmox: out-of-range values of a real node are clamped - the guest syncs") {
  Populated p;
  // A running container whose CPU share dips below zero (pve-container).
  long long ct = 0;
  for (const auto& g : p.w.pve.cluster().guests_on("pve1")) {
    if (g.type == sim::GuestType::lxc && g.status == sim::GuestStatus::running &&
        p.row_ids.contains(g.vmid)) {
      ct = g.vmid;
      break;
    }
  }
  REQUIRE(ct != 0);
  REQUIRE(p.w.pve.cluster().set_usage(static_cast<int>(ct), -0.0001, std::nullopt));
  auto s = p.cycles(2);
  p.rows_intact();
  CHECK(s["sync"]["read"]["counts_for_missing"] == true);
  const auto metrics = p.a->get("/metrics")->body;
  CHECK(metrics.find("proxmox_host_agent_proxmox_values_clamped_total{field=\"cpu\"} 0\n") ==
        std::string::npos);
  CHECK(p.a->get_json("/vms/" + std::to_string(ct))["accountdb"]["in_accountdb"] == true);
}

TEST_CASE("semantic accountdb: an empty list_vms creates no second row") {
  Populated p;
  const auto creates = p.creates();
  p.w.adb.set_fault({.kind = sim::AdbFaultKind::list_vms_empty});
  // Something changes meanwhile: written to the known row, not created.
  REQUIRE(p.w.pve.cluster().rename(static_cast<int>(p.w.running[0]), "renamed-while-lying"));
  auto s = p.cycles(4);
  CHECK(p.creates() == creates);
  p.rows_intact();
  CHECK(p.w.row_of(p.w.running[0])->name == "renamed-while-lying");
  INFO(s.dump());
  CHECK(warns(s, "list_vms left out"));
  const auto vm = p.a->get_json("/vms/" + std::to_string(p.w.running[0]));
  CHECK(vm["accountdb"]["row_listed"] == false);
  CHECK(vm["accountdb"]["row_id"] == p.row_ids[p.w.running[0]]);
  p.w.adb.clear_fault();
  p.cycles(1);
  p.rows_intact();
  CHECK(p.creates() == creates);
}

TEST_CASE("semantic accountdb: a list_vms that drops rows creates none of them again") {
  Populated p;
  const auto creates = p.creates();
  p.w.adb.set_fault({.kind = sim::AdbFaultKind::list_vms_drop, .drop = 3});
  p.cycles(4);
  CHECK(p.creates() == creates);
  p.rows_intact();
}

TEST_CASE("semantic accountdb: rows of another node are left out - none is written") {
  Populated p;
  const auto puts = p.w.puts();
  p.w.adb.set_fault({.kind = sim::AdbFaultKind::list_vms_other_node});
  auto s = p.cycles(3);
  CHECK(p.w.puts() == puts);
  p.rows_intact();
  INFO(s.dump());
  CHECK(warns(s, "another AccountDB node"));
}

TEST_CASE("semantic accountdb: a whitelist that empties creates and marks nothing") {
  Populated p;
  const auto creates = p.creates();
  p.w.adb.set_fault({.kind = sim::AdbFaultKind::whitelist_empty});
  REQUIRE(p.a->post("/whitelist/refresh")->status == 200);  // not after WHITELIST_TTL: now
  REQUIRE(p.w.pve.cluster().start(static_cast<int>(p.w.stopped)));
  auto s = p.cycles(3);
  CHECK(p.creates() == creates);  // an empty whitelist allows no create
  p.rows_intact();
  CHECK(s["whitelist"]["enabled"] == false);
}

TEST_CASE(
    "semantic accountdb: a new node's first population is held - then written when confirmed") {
  World w;
  Env env = semantic_env();
  env["AGENT_API_TOKEN"] = "control-token-control-token";
  RunningAgent a(w, env);
  REQUIRE(a.wait_cycles(1));
  auto s = a.get_json("/status");
  INFO(s.dump());
  REQUIRE(s["sync"]["held"].is_object());
  CHECK(w.rows().empty());
  const auto id = s["sync"]["held"]["id"].get<std::string>();
  const httplib::Headers control = {{"Authorization", "Bearer control-token-control-token"}};
  // A stale or foreign id is refused; the right one is written at once.
  CHECK(a.post("/sync/confirm", control, R"({"hold":"h000000000000"})")->status == 409);
  CHECK(a.post("/sync/confirm", control, "not json")->status == 400);
  const auto before = s["sync"]["cycle_count"].get<std::uint64_t>();
  REQUIRE(a.post("/sync/confirm", control, nlohmann::json{{"hold", id}}.dump())->status == 200);
  REQUIRE(a.wait_cycles(before + 1));
  CHECK(w.rows().size() == w.running.size());
  w.check_no_duplicates();
  CHECK(a.get_json("/status")["sync"]["held"].is_null());
  CHECK(a.post("/sync/confirm", control, nlohmann::json{{"hold", id}}.dump())->status == 404);
}

// A renamed node, or a PROXMOX_NODE_NAME that names none: Proxmox answers
// 500 "hostname lookup 'pve9' failed" from every host. A wrong setting, not
// a host outage: no retry, no failover to the cluster's view of a node that
// does not exist, nothing written, and the cycle says which setting.
TEST_CASE("semantic proxmox: a node name Proxmox does not know - no failover and nothing written") {
  World w;
  for (const auto vmid : w.running) {
    w.adb.add_row({.vmid = vmid, .name = "row", .status = "running", .proxmox_node_id = kNode});
  }
  RunningAgent a(w, semantic_env({{"PROXMOX_NODE_NAME", "pve9"},
                                  {"PROXMOX_HOSTS", w.pve.host("pve2").url()}}));
  REQUIRE(a.wait_cycles(1));
  const auto s = cycle(a);
  INFO(s.dump());
  CHECK(last_status(s) == "error");
  CHECK(last_message(a).find("PROXMOX_NODE_NAME") != std::string::npos);
  CHECK(a.get_json("/failover/events")["events"].empty());
  CHECK(w.pve.host("pve1").count("GET /api2/json/nodes/pve9/qemu") == 2);  // once a cycle: no retry
  CHECK(w.pve.host("pve2").count("GET /api2/json/cluster/resources") == 0);
  CHECK(w.puts() == 0);
  for (const auto& r : w.rows()) {
    CHECK(r.status == "running");
  }
}
