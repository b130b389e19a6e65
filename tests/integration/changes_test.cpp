// Change-driven sync with the real binary (docs/sync.md "Changes seen between
// cycles"): a guest started in the simulator reaches AccountDB without a
// periodic cycle (UPDATE_INTERVAL is an hour here), from the task the start
// leaves in /cluster/tasks; a guest that powers itself off leaves no task
// and is seen in /cluster/resources.

#include <doctest/doctest.h>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;
using namespace std::chrono_literals;

namespace {

Env hourly(const World& w, Env extra = {}) {
  Env e = w.env();
  e["UPDATE_INTERVAL"] = "3600";
  e["HEALTH_CHECK_INTERVAL"] = "300";
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return e;
}

// Waits for AccountDB's row of `vmid` to say `status`.
bool row_says(const World& w, long long vmid, const std::string& status,
              std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    const auto r = w.row_of(vmid);
    if (r && r->status == status) {
      return true;
    }
    std::this_thread::sleep_for(50ms);  // a poll interval, not a wait for an outcome
  }
  return false;
}

}  // namespace

TEST_CASE("changes: a guest started in Proxmox reaches AccountDB without a periodic cycle") {
  World w;
  RunningAgent a(w, hourly(w, {{"CREATE_STOPPED_VMS", "false"}}));
  REQUIRE(a.wait_cycles(1));
  REQUIRE_FALSE(w.row_of(w.stopped));  // stopped: no row yet
  const auto before = a.get_json("/status")["sync"]["cycle_count"].get<std::uint64_t>();
  const auto started = std::chrono::steady_clock::now();
  REQUIRE(w.pve.cluster().start(static_cast<int>(w.stopped)));
  // CHANGE_POLL_INTERVAL 2 s + CHANGE_SETTLE 1 s + the cycle.
  CHECK(row_says(w, w.stopped, "running", 15s));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took < 10s);
  const auto s = a.get_json("/status");
  CHECK(s["sync"]["cycle_count"].get<std::uint64_t>() == before + 1);
  const auto& changes = s["sync"]["changes"];
  CHECK(changes["watching"] == true);
  CHECK(changes["cycles"].get<std::uint64_t>() >= 1);
  CHECK(changes["last_change"].get<std::string>().find("qmstart of " + std::to_string(w.stopped)) !=
        std::string::npos);
  CHECK(changes["behind_seconds"] == 0);
  // One cycle more, so one read more of the node's heavy lists (pvedaemon);
  // the task list is read by the watcher from the cluster file system.
  CHECK(w.pve.host("pve1").count("GET /api2/json/nodes/pve1/qemu") == before + 1);
}

TEST_CASE("changes: a guest that powers off from inside is seen in the cluster's status") {
  World w;
  RunningAgent a(w, hourly(w));
  REQUIRE(a.wait_cycles(1));
  const auto guest = w.running.front();
  REQUIRE(row_says(w, guest, "running", 5s));
  REQUIRE(w.pve.cluster().power_off(static_cast<int>(guest)));  // no task
  // The status read every 10 s, CHANGE_SETTLE, the cycle.
  CHECK(row_says(w, guest, "stopped", 20s));
  const auto changes = a.get_json("/status")["sync"]["changes"];
  CHECK(changes["last_change"] == "status of " + std::to_string(guest));
}

TEST_CASE("changes: CHANGE_POLL_INTERVAL=0 reads nothing between cycles") {
  World w;
  RunningAgent a(w, hourly(w, {{"CHANGE_POLL_INTERVAL", "0"}}));
  REQUIRE(a.wait_cycles(1));
  // A cycle by hand: the agent runs, the watcher never asked.
  REQUIRE(a.post("/sync/trigger")->status == 202);
  REQUIRE(a.wait_cycles(2));
  const auto metrics = a.get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("proxmox_host_agent_change_polls_total{result=\"ok\"} 0") !=
        std::string::npos);
  CHECK(a.get_json("/status")["sync"]["changes"]["watching"] == false);
}
