// Fault injection, AccountDB side (issue 8): the real binary against an
// AccountDB that is down, fails with 5xx, rate-limits, refuses the key, fails
// list_vms, or cannot give the whitelist. Nothing wrong is ever written, and what
// changed on Proxmox meanwhile arrives in the first successful cycle.

#include <filesystem>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/faults.hpp"

using namespace pha;
using namespace pha::test;
using namespace std::chrono_literals;

namespace {

struct Synced {
  World w;
  std::unique_ptr<RunningAgent> a;
  nlohmann::json vms;

  explicit Synced(Env extra = {}) {
    a = std::make_unique<RunningAgent>(w, fast_env(std::move(extra)));
    REQUIRE(a->wait_cycles(1));
    REQUIRE(last_status(a->get_json("/status")) == "ok");
    REQUIRE(w.rows().size() == w.running.size());
    vms = a->get_json("/vms");
  }
  void change_guests() {
    REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "renamed-while-adb-broken"));
    REQUIRE(w.pve.cluster().stop(static_cast<int>(w.running[1])));
    REQUIRE(w.pve.cluster().start(static_cast<int>(w.stopped)));
  }
};

}  // namespace

TEST_CASE(
    "faults accountdb: down for several cycles - every change arrives in the first good one") {
  Synced s(Env{{"MISSING_AFTER_CYCLES", "1"}});
  auto& w = s.w;
  w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  s.change_guests();
  const auto deleted = w.running[2];
  REQUIRE(w.pve.cluster().remove_guest(static_cast<int>(deleted)));
  for (int i = 0; i < 3; ++i) {
    const auto st = cycle(*s.a);
    CHECK(last_status(st) == "error");
    CHECK(st["accountdb"]["connected"] == false);
    answers_within(*s.a, "/health", 1s);
    answers_within(*s.a, "/status", 1s);
  }
  CHECK(s.a->get_json("/status")["sync"]["consecutive_failures"].get<int>() >= 3);
  // Nothing reached AccountDB: its rows are those of the first cycle.
  CHECK(w.rows().size() == w.running.size());
  CHECK(w.row_of(w.running[0])->name != "renamed-while-adb-broken");

  w.adb.clear_fault();
  w.adb.reset_counts();
  const auto st = cycle(*s.a);
  CHECK(last_status(st) == "ok");
  const auto& stats = st["sync"]["last_result"];
  CHECK(stats["created"] == 1);
  CHECK(stats["updated"] == 2);
  CHECK(stats["marked_missing"] == 1);
  CHECK(w.puts() == 4);
  CHECK(w.row_of(deleted)->status == "deleted");
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(s.a->stop().exit_code == 0);
}

TEST_CASE("faults accountdb: 5xx bursts on list_vms and put_vm - no duplicate and in sync after") {
  Synced s;
  auto& w = s.w;
  s.change_guests();
  const auto puts = w.puts();
  // A burst as long as a call's attempts (RETRY_MAX_ATTEMPTS=2) on list_vms fails
  // the cycle before any write. (node_info runs once per UPDATE_INTERVAL and whitelist once
  // per WHITELIST_TTL: the down scenario and the whitelist ones cover them.)
  for (const int status : {500, 502, 503, 504}) {
    CAPTURE(status);
    w.adb.set_fault({.kind = sim::AdbFaultKind::status,
                     .call = sim::AdbCall::list_vms,
                     .count = 2,
                     .status = status});
    CHECK(last_status(cycle(*s.a, 20s)) == "error");
    answers_within(*s.a, "/health", 1s);
    w.adb.clear_fault();
  }
  CHECK(w.puts() == puts);
  // On put_vm: each burst meets the writes of fresh changes. A failed write is an
  // error of that guest only; updates are retried, a create that may have
  // landed is left to the next cycle's list_vms.
  for (const int status : {500, 502, 503}) {
    CAPTURE(status);
    const auto guest = static_cast<int>(w.running[2 + static_cast<std::size_t>(status % 10)]);
    REQUIRE(w.pve.cluster().rename(guest, "burst-" + std::to_string(status)));
    w.adb.set_fault({.kind = sim::AdbFaultKind::status,
                     .call = sim::AdbCall::put_vm,
                     .count = 2,
                     .status = status});
    CHECK(last_status(cycle(*s.a, 20s)) != "error");
    answers_within(*s.a, "/health", 1s);
    w.check_no_duplicates();
    w.adb.clear_fault();
  }
  REQUIRE(sync_until_ok(*s.a) >= 1);
  check_matches_proxmox(w, whitelist_of(w));
  w.adb.reset_counts();
  CHECK(last_status(cycle(*s.a)) == "ok");
  CHECK(w.puts() == 0);  // in sync: nothing left to send
}

TEST_CASE("faults accountdb: a 429 storm with Retry-After is honoured without hammering") {
  Synced s;
  auto& w = s.w;
  s.change_guests();
  w.adb.reset_counts();
  // Every request is rate-limited with Retry-After: 2. When each request
  // arrives is seen by polling the simulator's count every 20 ms.
  w.adb.set_fault({.kind = sim::AdbFaultKind::rate_limit, .retry_after = 2});
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(s.a->post("/sync/trigger")->status == 202);
  std::vector<std::chrono::steady_clock::duration> arrivals;
  std::size_t seen = 0;
  auto last_health = t0;
  while (std::chrono::steady_clock::now() - t0 < 6s) {
    const auto now = std::chrono::steady_clock::now();
    for (const auto n = w.adb.total_requests(); seen < n; ++seen) {
      arrivals.push_back(now - t0);
    }
    if (now - last_health > 500ms) {
      answers_within(*s.a, "/health", 1s);
      last_health = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(20ms);  // the poll interval
  }
  MESSAGE("requests during 6 s of 429 with Retry-After 2: ", arrivals.size());
  // It tried again (the storm is not taken for an outage), and each retry
  // came after Retry-After (less the 20 ms polling error), never sooner.
  REQUIRE(arrivals.size() >= 2);
  CHECK(arrivals.size() <= 4);
  for (std::size_t i = 1; i < arrivals.size(); ++i) {
    CAPTURE(i);
    CHECK(arrivals[i] - arrivals[i - 1] >= 1900ms);
  }
  CHECK(w.puts() == 0);
  w.adb.clear_fault();
  REQUIRE(sync_until_ok(*s.a) == 1);
  check_matches_proxmox(w, whitelist_of(w));
}

TEST_CASE("faults accountdb: 401 then fixed on the server - no writes meanwhile and recovery") {
  Synced s(Env{{"RETRY_MAX_DELAY", "1"}});
  auto& w = s.w;
  s.change_guests();
  w.adb.set_fault({.kind = sim::AdbFaultKind::status, .status = 401});
  w.adb.reset_counts();
  for (int i = 0; i < 2; ++i) {
    const auto st = cycle(*s.a);
    CHECK(last_status(st) == "error");
    CHECK(st["sync"]["last_result"]["message"].get<std::string>().find("401") != std::string::npos);
    answers_within(*s.a, "/health", 1s);
  }
  CHECK(w.puts() == 0);
  // Not retried in a loop: each cycle stops at A.
  CHECK(w.adb.total_requests() <= 2 * 2);
  CHECK(s.a->process().err_so_far().find(kKey) == std::string::npos);
  w.adb.clear_fault();
  REQUIRE(sync_until_ok(*s.a) == 1);
  check_matches_proxmox(w, whitelist_of(w));
}

TEST_CASE("faults accountdb: list_vms failing - no write at all and the changes arrive after") {
  Synced s;
  auto& w = s.w;
  s.change_guests();
  w.adb.set_fault({.kind = sim::AdbFaultKind::list_vms_fails});
  w.adb.reset_counts();
  for (int i = 0; i < 2; ++i) {
    const auto st = cycle(*s.a);
    CHECK(last_status(st) == "error");
    serves_last_state(*s.a, s.a->get_json("/vms"));
  }
  // Without list_vms the agent cannot know what exists: it creates nothing.
  CHECK(w.puts() == 0);
  CHECK(w.adb.count("GET /proxmox-nodes/agent-vms/{node_id}") >= 2);
  w.adb.clear_fault();
  REQUIRE(sync_until_ok(*s.a) == 1);
  check_matches_proxmox(w, whitelist_of(w));
}

TEST_CASE(
    "faults accountdb: C and D failing with a cached whitelist - synced with it and flagged") {
  Synced s;
  auto& w = s.w;
  s.change_guests();
  w.adb.set_whitelist_endpoint(false);  // whitelist answers 404: whitelist_legacy is asked
  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist_legacy, .status = 503});
  const auto refresh = s.a->post("/whitelist/refresh");
  REQUIRE(refresh);
  CHECK(refresh->status == 502);
  const auto st = cycle(*s.a);
  CHECK(last_status(st) == "warning");
  CHECK(st["whitelist"]["stale"] == true);
  CHECK(st["sync"]["last_result"]["used_cached_whitelist"] == true);
  CHECK(st["whitelist"]["count"] == w.running.size() + 1);
  // The cached whitelist allows the create of the started guest.
  check_matches_proxmox(w, whitelist_of(w));

  // And after a restart the state file's copy is used the same way.
  CHECK(s.a->stop().exit_code == 0);
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[2]), "renamed-after-restart"));
  RunningAgent again(w, fast_env());
  REQUIRE(again.wait_cycles(1));
  const auto st2 = again.get_json("/status");
  CHECK(last_status(st2) == "warning");
  CHECK(st2["whitelist"]["source"] == "state-file");
  CHECK(w.row_of(w.running[2])->name == "renamed-after-restart");
  check_matches_proxmox(w, whitelist_of(w));
}

TEST_CASE(
    "faults accountdb: C and D failing without a cached whitelist - updates only, no create") {
  World w;
  // AccountDB already has two of the guests (an earlier agent created them).
  const auto known = w.running[0];
  const auto unknown = w.running[1];
  w.adb.add_row({.vmid = known, .name = "old-name", .status = "running", .proxmox_node_id = kNode});
  w.adb.set_whitelist_endpoint(false);
  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist_legacy, .status = 500});
  std::filesystem::create_directories(w.dir.path() + "/empty-state");
  RunningAgent a(w, fast_env({{"STATE_DIR", w.dir.path() + "/empty-state"}}));
  (void)unknown;
  REQUIRE(a.wait_cycles(1));
  const auto st = a.get_json("/status");
  CHECK(st["whitelist"]["source"] == "none");
  CHECK(st["sync"]["last_result"]["created"] == 0);
  // The whitelist is unknown: the guest AccountDB has is updated, nothing is created.
  REQUIRE(w.rows().size() == 1);
  CHECK(w.row_of(known)->name != "old-name");
  CHECK_FALSE(w.row_of(unknown));
  answers_within(a, "/health", 1s);

  w.adb.clear_fault();
  w.adb.set_whitelist_endpoint(true);
  const auto refreshed = a.post("/whitelist/refresh");
  REQUIRE(refreshed);
  CHECK(refreshed->status == 200);
  REQUIRE(sync_until_ok(a) == 1);
  check_matches_proxmox(w, whitelist_of(w));
}
