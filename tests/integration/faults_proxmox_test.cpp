// Fault injection, Proxmox side (issue 8): the real binary against a Proxmox
// host that hangs, is slow, resets, lies, floods, fails with 5xx, loses its
// credentials or flaps. During the fault the API serves the last read and
// nothing is written or marked; once the host is back the next cycle brings
// every change that happened meanwhile.

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
  nlohmann::json vms;  // /vms after the first good cycle

  explicit Synced(Env extra = {}, const std::vector<std::string>& unset = {},
                  std::vector<std::string> args = {}) {
    a = std::make_unique<RunningAgent>(w, fast_env(std::move(extra)), std::move(args), unset);
    REQUIRE(a->wait_cycles(1));
    REQUIRE(last_status(a->get_json("/status")) == "ok");
    REQUIRE(w.rows().size() == w.running.size());
    vms = a->get_json("/vms");
  }
  sim::PveHost& pve1() { return w.pve.host("pve1"); }
  // Changes Proxmox the next good cycle must bring: a rename, a stop, a start.
  void change_guests() {
    REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "renamed-during-fault"));
    REQUIRE(w.pve.cluster().stop(static_cast<int>(w.running[1])));
    REQUIRE(w.pve.cluster().start(static_cast<int>(w.stopped)));
  }
  // While the fault holds: cycles fail, the API serves the last read, and
  // AccountDB sees no write.
  void fault_holds(int cycles = 1) {
    const auto puts = w.puts();
    for (int i = 0; i < cycles; ++i) {
      const auto s = cycle(*a);
      CHECK(last_status(s) == "error");
      CHECK(s["sync"]["consecutive_failures"].get<int>() >= 1);
      serves_last_state(*a, vms);
    }
    CHECK(w.puts() == puts);
    for (const auto& r : w.rows()) {
      CHECK(r.status != "deleted");
    }
  }
  // Once the host is back: the first good cycle brings everything.
  void recovers() {
    const auto puts = w.puts();
    REQUIRE(sync_until_ok(*a) == 1);
    CHECK(w.puts() - puts == 3);  // the rename, the stop, the create of the started guest
    check_matches_proxmox(w, whitelist_of(w));
    CHECK(a->get_json("/vms").dump().find("renamed-during-fault") != std::string::npos);
    CHECK(a->stop().exit_code == 0);
  }
};

void fault_then_back(const sim::Fault& fault, Env extra = {}) {
  Synced s(std::move(extra));
  s.change_guests();
  s.pve1().set_fault(fault);
  s.fault_holds(2);
  s.pve1().clear_fault();
  s.recovers();
}

}  // namespace

TEST_CASE("faults proxmox: a hanging host - the API answers at once while the cycle waits") {
  Synced s;
  s.change_guests();
  s.pve1().set_fault({.kind = sim::FaultKind::hang});
  REQUIRE(s.a->post("/sync/trigger")->status == 202);
  REQUIRE(
      s.a->wait_status([](const nlohmann::json& j) { return j["sync"]["is_syncing"] == true; }));
  for (int i = 0; i < 5; ++i) {
    serves_last_state(*s.a, s.vms);
  }
  // A hang costs the timeout per attempt, not more.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(s.a->wait_status([](const nlohmann::json& j) { return j["sync"]["is_syncing"] == false; },
                           15s));
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  s.fault_holds(1);
  s.pve1().clear_fault();
  s.recovers();
}

TEST_CASE("faults proxmox: slow just under PROXMOX_TIMEOUT syncs - just over fails cleanly") {
  Synced s;
  s.change_guests();
  // PROXMOX_TIMEOUT=1: 600 ms per answer is slow but in time.
  s.pve1().set_fault({.kind = sim::FaultKind::slow, .delay = 600ms});
  const auto puts = s.w.puts();
  const auto under = cycle(*s.a);
  CHECK(last_status(under) == "ok");
  CHECK(s.w.puts() - puts == 3);
  check_matches_proxmox(s.w, whitelist_of(s.w));
  s.vms = s.a->get_json("/vms");
  // 1400 ms: every attempt times out.
  REQUIRE(s.w.pve.cluster().rename(static_cast<int>(s.w.running[2]), "renamed-while-slow"));
  s.pve1().set_fault({.kind = sim::FaultKind::slow, .delay = 1400ms});
  s.fault_holds(1);
  const auto timed_out = last_message(*s.a);
  CHECK_MESSAGE(timed_out.find("timed out") != std::string::npos, timed_out);
  s.pve1().clear_fault();
  REQUIRE(sync_until_ok(*s.a) == 1);
  CHECK(s.w.row_of(s.w.running[2])->name == "renamed-while-slow");
  check_matches_proxmox(s.w, whitelist_of(s.w));
}

TEST_CASE("faults proxmox: a reset in the middle of the body") {
  fault_then_back({.kind = sim::FaultKind::reset});
}

TEST_CASE("faults proxmox: a truncated body") {
  fault_then_back({.kind = sim::FaultKind::truncated});
}

TEST_CASE("faults proxmox: a body that is not JSON") {
  fault_then_back({.kind = sim::FaultKind::non_json});
}

TEST_CASE("faults proxmox: a 50 MB body is refused at the limit without buffering it") {
  Synced s;
  const int pid = s.a->process().pid();
  const auto hwm_before = proc_status_kb(pid, "VmHWM");
  REQUIRE(hwm_before > 0);
  s.change_guests();
  s.pve1().set_fault({.kind = sim::FaultKind::oversized, .oversized_bytes = 50u << 20});
  s.fault_holds(1);
  // At most the 16 MiB limit is held (with a copy while it grows), never 50 MB.
  const auto grew_kb = proc_status_kb(pid, "VmHWM") - hwm_before;
  MESSAGE("peak RSS grew by ", grew_kb, " kB for a 50 MB body");
  CHECK(grew_kb < 40 * 1024);
  const auto refused = last_message(*s.a);
  CHECK_MESSAGE(refused.find("16 MiB") != std::string::npos, refused);
  s.pve1().clear_fault();
  s.recovers();
}

TEST_CASE("faults proxmox: bursts of 500 595 and 596 never mark or write and end in sync") {
  Synced s;
  s.change_guests();
  const auto puts = s.w.puts();
  for (const int status : {500, 595, 596}) {
    CAPTURE(status);
    // A burst as long as a cycle's attempts (RETRY_MAX_ATTEMPTS=2): the cycle fails.
    s.pve1().set_fault({.kind = sim::FaultKind::status, .count = 2, .status = status});
    const auto st = cycle(*s.a);
    CHECK(last_status(st) == "error");
    serves_last_state(*s.a, s.vms);
    CHECK(s.w.puts() == puts);
    s.pve1().clear_fault();
  }
  for (const auto& r : s.w.rows()) {
    CHECK(r.status != "deleted");
  }
  CHECK(s.pve1().count("GET /api2/json/nodes/pve1/qemu") >= 2 * 3);  // each burst was seen
  REQUIRE(sync_until_ok(*s.a) == 1);
  CHECK(s.w.puts() - puts == 3);
  check_matches_proxmox(s.w, whitelist_of(s.w));
}

TEST_CASE("faults proxmox: a flapping host ends in sync without a request storm") {
  Synced s;
  s.change_guests();
  s.pve1().reset_counts();
  s.pve1().set_fault({.kind = sim::FaultKind::flap, .status = 500, .every = 1});
  int ok = 0;
  const auto puts = s.w.puts();
  for (int i = 0; i < 6; ++i) {
    const auto st = cycle(*s.a);
    serves_last_state(*s.a,
                      st["sync"]["last_result"]["status"] == "ok" ? s.a->get_json("/vms") : s.vms);
    if (last_status(st) == "ok") {
      ++ok;
      s.vms = s.a->get_json("/vms");
    }
  }
  CHECK(ok >= 1);
  // Two list calls per cycle and at most RETRY_MAX_ATTEMPTS=2 tries of each.
  CHECK(s.pve1().total_requests() <= 6 * 2 * 2);
  s.pve1().clear_fault();
  REQUIRE(sync_until_ok(*s.a) >= 1);
  CHECK(s.w.puts() - puts == 3);  // each change sent once, however often it flapped
  check_matches_proxmox(s.w, whitelist_of(s.w));
}

TEST_CASE("faults proxmox: 401 after a password change - no login loop - fixed by SIGHUP") {
  const std::string user = "agent@pam";
  World w;
  w.pve.cluster().add_user({.userid = user, .password = "first-password-1"});
  const auto env_file =
      w.dir.write("agent.env", "PROXMOX_USER=" + user + "\nPROXMOX_PASSWORD=first-password-1\n");
  RunningAgent a(w, fast_env(), {"--env-file", env_file},
                 {"PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET"});
  REQUIRE(a.wait_cycles(1));
  REQUIRE(last_status(a.get_json("/status")) == "ok");
  const auto vms = a.get_json("/vms");
  auto& pve1 = w.pve.host("pve1");
  CHECK(pve1.count("POST /api2/json/access/ticket") == 1);

  // An operator changes the password. The ticket stays valid until it
  // expires (as on Proxmox); then every login with the old password fails.
  w.pve.cluster().add_user({.userid = user, .password = "second-password-2"});
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "renamed-after-401"));
  CHECK(last_status(cycle(a)) == "ok");
  w.pve.cluster().advance(std::chrono::hours(2) + 1min);
  pve1.reset_counts();
  const auto puts = w.puts();
  for (int i = 0; i < 3; ++i) {
    const auto s = cycle(a);
    CHECK(last_status(s) == "error");
    serves_last_state(a, a.get_json("/vms"));
  }
  // One fresh login per failed cycle at most: no hot loop, nothing written.
  CHECK(pve1.count("POST /api2/json/access/ticket") <= 3 * 2);
  CHECK(pve1.count("POST /api2/json/access/ticket") >= 1);
  CHECK(w.puts() == puts);
  const auto st = a.get_json("/status");
  CHECK(st["current"]["status"] == "error");
  const auto err = a.process().err_so_far();
  CHECK(err.find("first-password-1") == std::string::npos);
  CHECK(st.dump().find("first-password-1") == std::string::npos);

  // The operator fixes the env file: a reload, and the next cycle logs in.
  w.dir.write("agent.env", "PROXMOX_USER=" + user + "\nPROXMOX_PASSWORD=second-password-2\n");
  a.process().signal(SIGHUP);
  REQUIRE(a.process().wait_for_output("config_reloaded", 10s));
  REQUIRE(sync_until_ok(a) == 1);
  CHECK(w.row_of(w.running[0])->name == "renamed-after-401");
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(a.stop().err.find("second-password-2") == std::string::npos);
  (void)vms;
}

TEST_CASE("faults proxmox: a revoked API token is an auth error until a token is back") {
  Synced s;
  s.change_guests();
  REQUIRE(s.w.pve.cluster().remove_token(kTokenId));
  s.pve1().reset_counts();
  s.fault_holds(2);
  // An auth failure is not retried in a loop: one list call per cycle.
  CHECK(s.pve1().total_requests() <= 2 * 2);
  const auto rejected = last_message(*s.a);
  CHECK_MESSAGE(rejected.find("check PROXMOX_TOKEN_ID") != std::string::npos, rejected);
  CHECK(rejected.find(kTokenSecret) == std::string::npos);
  s.w.pve.cluster().add_token({.id = kTokenId, .secret = kTokenSecret});
  s.recovers();
}
