// Fault injection on the agent itself (issue 8): kill -9 in the middle of a
// cycle and of state-file writes, a state directory that is read-only or
// gone, and SIGHUP storms. The state files always parse, AccountDB never gets
// a duplicate row, and the agent keeps running with valid settings.

#include <csignal>
#include <filesystem>
#include <random>
#include <sys/mount.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/faults.hpp"

using namespace pha;
using namespace pha::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Every file in the state directory: the JSON ones must parse; returns their
// names (temporary files included, so a test can say which are left).
std::vector<std::string> check_state_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    names.push_back(name);
    if (e.path().extension() == ".json") {
      std::ifstream in(e.path());
      std::stringstream text;
      text << in.rdbuf();
      CHECK_MESSAGE(!nlohmann::json::parse(text.str(), nullptr, false).is_discarded(), name,
                    " does not parse: ", text.str().substr(0, 200));
    }
  }
  return names;
}

void kill9(RunningAgent& a) {
  a.process().signal(SIGKILL);
  const auto r = a.stop();
  CHECK(r.exit_code == -1);  // killed, not exited
}

}  // namespace

TEST_CASE("faults agent: kill -9 while AccountDB holds the creates - no duplicate after restart") {
  World w;
  const auto state = w.dir.path() + "/state";
  // AccountDB stores each create and answers 30 s later: the agent is killed
  // while it waits, with rows it has not heard about.
  w.adb.set_fault({.kind = sim::AdbFaultKind::slow, .call = sim::AdbCall::put_vm, .delay = 30s});
  {
    RunningAgent a(w, fast_env({{"ACCOUNTDB_TIMEOUT", "60"}}));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (w.rows().size() < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);  // a poll interval
    }
    REQUIRE(w.rows().size() >= 4);
    answers_within(a, "/health", 1s);
    kill9(a);
  }
  check_state_files(state);
  w.adb.clear_fault();
  RunningAgent again(w, fast_env());
  REQUIRE(again.wait_cycles(1));
  CHECK(last_status(again.get_json("/status")) == "ok");
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(w.rows().size() == w.running.size());
  CHECK(again.stop().exit_code == 0);
}

TEST_CASE("faults agent: kill -9 at random moments of back-to-back cycles - state always parses") {
  World w;
  const auto state = w.dir.path() + "/state";
  std::mt19937 rng(8);  // fixed seed: the same kill moments on every run
  std::uniform_int_distribution<int> delay_ms(0, 250);
  for (int round = 0; round < 12; ++round) {
    CAPTURE(round);
    // Something to write every cycle: a rename (sync state) and a new
    // whitelist (whitelist file).
    REQUIRE(w.pve.cluster().rename(
        static_cast<int>(w.running[static_cast<std::size_t>(round) % w.running.size()]),
        "round-" + std::to_string(round)));
    auto whitelist = whitelist_of(w);
    if (round % 2 == 1) {
      whitelist.erase(w.running.back());
    }
    w.adb.set_whitelist(kNode, {whitelist.begin(), whitelist.end()});
    RunningAgent a(w, fast_env({{"WHITELIST_TTL", "10"}}));
    for (int i = 0; i < 3; ++i) {
      a.post("/sync/trigger");
      a.post("/whitelist/refresh");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));  // the kill moment
    kill9(a);
    check_state_files(state);
    w.check_no_duplicates();
  }
  const auto whitelist = whitelist_of(w);
  w.adb.set_whitelist(kNode, {whitelist.begin(), whitelist.end()});
  RunningAgent last(w, fast_env());
  REQUIRE(last.wait_cycles(1));
  REQUIRE(sync_until_ok(last) >= 1);
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(last.stop().exit_code == 0);
  // Temporary files of killed writes do not pile up.
  for (const auto& name : check_state_files(state)) {
    CHECK_MESSAGE(name.find(".tmp") == std::string::npos, "left behind: ", name);
  }
}

TEST_CASE("faults agent: the state directory removed while running - a warning and sync goes on") {
  World w;
  const auto state = w.dir.path() + "/state";
  RunningAgent a(w, fast_env());
  REQUIRE(a.wait_cycles(1));
  REQUIRE(fs::exists(state + "/sync-state.json"));
  fs::remove_all(state);
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "renamed-without-state"));
  REQUIRE(a.post("/whitelist/refresh")->status == 200);
  const auto st = cycle(a);
  CHECK(last_status(st) != "error");
  CHECK(w.row_of(w.running[0])->name == "renamed-without-state");
  CHECK(a.process().wait_for_output("state_write_failed", 5s));
  answers_within(a, "/health", 1s);
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(a.stop().exit_code == 0);
}

TEST_CASE(
    "faults agent: a state directory that is missing at start - a warning and no persistence") {
  World w;
  const auto missing = w.dir.path() + "/no-such-dir";
  RunningAgent a(w, fast_env({{"STATE_DIR", missing}}));
  REQUIRE(a.wait_cycles(1));
  CHECK(last_status(a.get_json("/status")) == "ok");
  const auto err = a.process().err_so_far();
  CHECK(err.find("STATE_DIR") != std::string::npos);
  CHECK(err.find("nothing is persisted") != std::string::npos);
  CHECK_FALSE(fs::exists(missing));
  check_matches_proxmox(w, whitelist_of(w));
  CHECK(a.stop().exit_code == 0);
}

TEST_CASE("faults agent: a read-only state directory - a warning and no persistence") {
  World w;
  const auto src = w.dir.path() + "/ro-src";
  const auto ro = w.dir.path() + "/ro";
  fs::create_directories(src);
  fs::create_directories(ro);
  // A read-only bind mount (root in the test container); without the
  // privilege a directory without write permission for a non-root user.
  bool mounted =
      ::mount(src.c_str(), ro.c_str(), nullptr, MS_BIND, nullptr) == 0 &&
      ::mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) == 0;
  if (!mounted) {
    ::umount(ro.c_str());
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    if (::geteuid() == 0) {
      MESSAGE("neither a read-only mount nor a permission check is possible here: skipped");
      return;
    }
  }
  struct Unmount {
    std::string path;
    bool active;
    ~Unmount() {
      if (active) {
        ::umount(path.c_str());
      }
    }
  } unmount{ro, mounted};
  {
    RunningAgent a(w, fast_env({{"STATE_DIR", ro}}));
    REQUIRE(a.wait_cycles(1));
    CHECK(last_status(a.get_json("/status")) == "ok");
    const auto err = a.process().err_so_far();
    CHECK(err.find("STATE_DIR") != std::string::npos);
    CHECK(err.find("nothing is persisted") != std::string::npos);
    check_matches_proxmox(w, whitelist_of(w));
    CHECK(a.stop().exit_code == 0);
  }
  CHECK(fs::is_empty(src));
}

TEST_CASE("faults agent: a SIGHUP storm while cycles run - no crash and the settings stay valid") {
  World w;
  const auto env_file = w.dir.write("agent.env", "UPDATE_INTERVAL=77\n");
  auto env = fast_env();
  env.erase("UPDATE_INTERVAL");
  RunningAgent a(w, env, {"--env-file", env_file});
  REQUIRE(a.wait_cycles(1));
  const auto cycles = cycles_of(a);
  for (int i = 0; i < 300; ++i) {
    a.process().signal(SIGHUP);
    if (i % 30 == 0) {
      REQUIRE(a.post("/sync/trigger"));
      // Half-way, the file is broken for a while: the old settings stay.
      w.dir.write("agent.env", i == 150 ? "UPDATE_INTERVAL=banana\n" : "UPDATE_INTERVAL=77\n");
    }
    if (i % 50 == 0) {
      answers_within(a, "/health", 1s);
    }
  }
  w.dir.write("agent.env", "UPDATE_INTERVAL=78\n");
  a.process().signal(SIGHUP);
  REQUIRE(a.wait_status([](const nlohmann::json& s) { return s["sync"]["update_interval"] == 78; },
                        10s));
  REQUIRE(a.wait_cycles(cycles + 1));
  CHECK(last_status(cycle(a)) == "ok");
  const auto config = a.get_json("/config");
  CHECK(config["settings"]["UPDATE_INTERVAL"]["value"] == 78);
  check_matches_proxmox(w, whitelist_of(w));
  const auto r = a.stop();
  CHECK(r.exit_code == 0);
}
