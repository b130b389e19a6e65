// The agent's main job: the real binary against the Proxmox and AccountDB
// simulators over loopback (docs/sync.md "The cycle" and "Guests that are gone").

#include <csignal>
#include <filesystem>
#include <set>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::Env;
using test::kKey;
using test::kNode;
using test::World;

TEST_CASE(
    "the first cycle creates exactly the whitelisted running guests and the second sends nothing") {
  World w;
  auto first = w.once();
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(first.report["status"] == "ok");
  CHECK(first.report["stats"]["created"] == w.running.size());
  CHECK(w.puts() == w.running.size());
  std::set<long long> created;
  for (const auto& r : w.rows()) {
    created.insert(r.vmid);
    CHECK(r.status == "running");
  }
  CHECK(created == std::set<long long>(w.running.begin(), w.running.end()));
  CHECK_FALSE(w.row_of(w.stopped));  // stopped: not created
  CHECK_FALSE(w.row_of(w.outside));  // not whitelisted

  w.adb.reset_counts();
  auto second = w.once();
  REQUIRE(second.exit_code == 0);
  CHECK(second.report["stats"]["requests_sent"] == 0);
  CHECK(second.report["stats"]["unchanged"] == w.running.size());
  CHECK(w.puts() == 0);
  CHECK(w.pve.host("pve1").count("GET /api2/json/nodes/pve1/qemu") == 2);
  w.check_no_duplicates();
}

TEST_CASE("a rename sends one put_vm and a stopped guest sends one put_vm") {
  World w;
  REQUIRE(w.once().exit_code == 0);
  const auto renamed = w.running[0];
  const auto stopped = w.running[1];
  REQUIRE(w.pve.cluster().rename(static_cast<int>(renamed), "renamed-guest"));
  REQUIRE(w.pve.cluster().stop(static_cast<int>(stopped)));
  w.adb.reset_counts();
  auto r = w.once();
  REQUIRE(r.exit_code == 0);
  CHECK(r.report["stats"]["updated"] == 2);
  CHECK(w.puts() == 2);
  CHECK(w.row_of(renamed)->name == "renamed-guest");
  CHECK(w.row_of(stopped)->status == "stopped");
  w.check_no_duplicates();
}

TEST_CASE("a guest removed from the whitelist is no longer updated") {
  World w;
  REQUIRE(w.once().exit_code == 0);
  const auto dropped = w.running[0];
  std::vector<long long> whitelist(w.running.begin() + 1, w.running.end());
  w.adb.set_whitelist(kNode, whitelist);
  REQUIRE(w.pve.cluster().rename(static_cast<int>(dropped), "not-sent"));
  w.adb.reset_counts();
  auto r = w.once();
  REQUIRE(r.exit_code == 0);
  CHECK(w.puts() == 0);
  CHECK(w.row_of(dropped)->name != "not-sent");
}

TEST_CASE("list_vms failing fails the cycle and creates nothing") {
  World w;
  w.adb.set_fault({.kind = sim::AdbFaultKind::list_vms_fails});
  auto r = w.once();
  CHECK(r.exit_code == 1);
  CHECK(r.report["status"] == "error");
  CHECK(w.puts() == 0);
  CHECK(w.rows().empty());
}

TEST_CASE(
    "the whitelist endpoint down after a restart: the state file's copy is used and flagged") {
  World w;
  REQUIRE(w.once().exit_code == 0);
  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist, .status = 503});
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "still-synced"));
  auto r = w.once();
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.report["status"] == "warning");
  CHECK(r.report["stats"]["used_cached_whitelist"] == true);
  CHECK(r.report["stats"]["whitelist_count"] == w.running.size() + 1);
  CHECK(w.row_of(w.running[0])->name == "still-synced");
  // Without a state directory there is nothing to fall back on: unknown, no creates.
  World fresh;
  fresh.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist, .status = 503});
  auto unknown = fresh.once({{"STATE_DIR", ""}});
  REQUIRE(unknown.exit_code == 0);
  CHECK(fresh.rows().empty());
  CHECK(unknown.report["stats"]["created"] == 0);
}

TEST_CASE("an older server without whitelist: the whitelist comes from whitelist_legacy") {
  World w;
  w.adb.set_whitelist_endpoint(false);
  auto r = w.once();
  REQUIRE(r.exit_code == 0);
  CHECK(r.report["stats"]["created"] == w.running.size());
  CHECK(w.adb.count("GET /proxmox-nodes/agent-whitelist/{node_id}") == 1);
}

TEST_CASE("a dry run reads everything and writes nothing") {
  World w;
  auto r = w.once({}, {"--once", "--dry-run"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.report["dry_run"] == true);
  CHECK(r.report["planned"].size() == w.running.size());
  CHECK(w.puts() == 0);
  CHECK(w.adb.count("POST /proxmox-nodes/heartbeat") == 0);
  CHECK(w.rows().empty());
}

TEST_CASE("429 is respected: the create waits Retry-After and lands once") {
  World w;
  w.adb.set_fault({.kind = sim::AdbFaultKind::rate_limit,
                   .call = sim::AdbCall::put_vm,
                   .count = 1,
                   .retry_after = 1});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = w.once();
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(std::chrono::steady_clock::now() - t0 >= 1s);
  CHECK(r.report["stats"]["created"] == w.running.size());
  CHECK(r.report["stats"]["errors"] == 0);
  CHECK(w.rows().size() == w.running.size());
  w.check_no_duplicates();
}

TEST_CASE("a deleted guest is marked deleted once and a migrated one migrated") {
  World w;
  REQUIRE(w.once().exit_code == 0);
  const auto deleted = w.running[0];
  const auto migrated = w.running[1];
  REQUIRE(w.pve.cluster().remove_guest(static_cast<int>(deleted)));
  REQUIRE(w.pve.cluster().migrate(static_cast<int>(migrated), "pve2"));
  // MISSING_AFTER_CYCLES=2: the first complete read without them only counts.
  auto c1 = w.once();
  REQUIRE(c1.exit_code == 0);
  CHECK(c1.report["stats"]["marked_missing"] == 0);
  auto c2 = w.once();
  REQUIRE(c2.exit_code == 0);
  CHECK(c2.report["stats"]["marked_missing"] == 2);
  CHECK(w.row_of(deleted)->status == "deleted");
  CHECK(w.row_of(migrated)->status == "migrated");
  w.adb.reset_counts();
  auto c3 = w.once();
  REQUIRE(c3.exit_code == 0);
  CHECK(c3.report["stats"]["marked_missing"] == 0);
  CHECK(w.puts() == 0);
  w.check_no_duplicates();
}

TEST_CASE("a failed Proxmox read never marks anything") {
  World w;
  REQUIRE(w.once().exit_code == 0);
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::status, .status = 500});
  for (int i = 0; i < 3; ++i) {
    CHECK(w.once().exit_code == 1);
  }
  w.pve.host("pve1").clear_fault();
  auto r = w.once();
  REQUIRE(r.exit_code == 0);
  CHECK(r.report["stats"]["marked_missing"] == 0);
  for (const auto& row : w.rows()) {
    CHECK(row.status == "running");
  }
}

TEST_CASE("401: no writes and a clear status - then recovery when the key is fixed and SIGHUP") {
  World w;
  const auto env_file =
      w.dir.write("agent.env", "ACCOUNTDB_API_KEY=wrong-key-wrong-key-wrong-key\n");
  auto env = w.env();
  env.erase("ACCOUNTDB_API_KEY");
  env["UPDATE_INTERVAL"] = "10";
  env["RETRY_MAX_DELAY"] = "1";
  test::Process agent(PHA_AGENT_BINARY, {{"--env-file", env_file}, env, w.dir.path()});
  REQUIRE(agent.wait_for_output("check ACCOUNTDB_API_KEY and ACCOUNTDB_NODE_ID", 20s));
  CHECK(w.puts() == 0);
  CHECK(agent.err_so_far().find("wrong-key-wrong-key") == std::string::npos);

  w.dir.write("agent.env", "ACCOUNTDB_API_KEY=" + kKey + "\n");
  agent.signal(SIGHUP);
  REQUIRE(agent.wait_for_output("config_reloaded", 10s));
  REQUIRE(agent.wait_for_output("sync_cycle: synced: ", 20s));
  agent.signal(SIGTERM);
  auto r = agent.wait(15s);
  CHECK(r.exit_code == 0);
  CHECK(w.rows().size() == w.running.size());
  CHECK(r.err.find(kKey) == std::string::npos);
  w.check_no_duplicates();
}
