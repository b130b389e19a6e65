#pragma once
// What every fault scenario checks (docs/failover.md "What must survive"): the
// agent keeps serving its API with the last known state while a path is
// broken, syncs again as soon as it is back, never writes anything wrong to
// AccountDB, and ends with AccountDB matching Proxmox. Cycles are triggered
// through the API; every wait has a timeout.

#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"
#include "tests/sim/pve_render.hpp"

namespace pha::test {

// The smallest timeouts the settings allow; cycles only when triggered (and
// at start-up), no health rounds or heartbeats to disturb the counts.
inline Env fast_env(Env extra = {}) {
  Env e = {{"PROXMOX_TIMEOUT", "1"},
           {"PROXMOX_CONNECT_TIMEOUT", "1"},
           {"ACCOUNTDB_TIMEOUT", "2"},
           {"PROXMOX_DISCOVER_HOSTS", "false"},
           {"PROXMOX_NODE_NAME", "pve1"},
           {"UPDATE_INTERVAL", "3600"},
           {"HEARTBEAT_INTERVAL", "3600"},
           {"HEALTH_CHECK_INTERVAL", "300"},
           {"VM_DETAILS", "false"},
           {"RETRY_MAX_ATTEMPTS", "2"},
           // Breakers stay closed through the short faults here (each cycle
           // would otherwise open them and wait CIRCUIT_BREAKER_RESET); the
           // burst scenario and failover_test run them at their threshold.
           {"CIRCUIT_BREAKER_THRESHOLD", "10"},
           {"CIRCUIT_BREAKER_RESET", "5"},
           {"RETRY_BASE_DELAY", "0.05"},
           {"RETRY_MAX_DELAY", "1"}};
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return e;
}

inline std::uint64_t cycles_of(const RunningAgent& a) {
  return a.get_json("/status")["sync"]["cycle_count"].get<std::uint64_t>();
}

inline std::string last_status(const nlohmann::json& status) {
  return status["sync"]["last_result"].value("status", std::string());
}

// The message of the last cycle ("Proxmox: GET ... timed out").
inline std::string last_message(const RunningAgent& a) {
  return a.get_json("/status")["sync"]["last_result"].value("message", std::string());
}

// Triggers cycles until one ends "ok"; returns how many it took (0: none did
// within `max_cycles`). A failed one is followed by a short pause, so that a
// breaker's open period (CIRCUIT_BREAKER_RESET=5) can pass.
inline int sync_until_ok(RunningAgent& a, int max_cycles = 8) {
  for (int i = 1; i <= max_cycles; ++i) {
    if (last_status(cycle(a)) == "ok") {
      return i;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(750));  // a retry pace
  }
  return 0;
}

// GET `path` must answer 200 within `bound`.
inline void answers_within(const RunningAgent& a, const std::string& path,
                           std::chrono::milliseconds bound) {
  const auto start = std::chrono::steady_clock::now();
  auto r = a.get(path);
  const auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_MESSAGE(r, "GET ", path, ": ", httplib::to_string(r.error()));
  CHECK_MESSAGE(r->status == 200, "GET ", path, " answered ", r->status);
  CHECK_MESSAGE(took < bound, "GET ", path, " took ",
                std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), " ms");
}

// The API keeps serving the last known state: /health and /status answer at
// once, and /vms still lists the guests of the last good read.
inline void serves_last_state(const RunningAgent& a, const nlohmann::json& vms_before,
                              std::chrono::milliseconds bound = std::chrono::seconds(1)) {
  answers_within(a, "/health", bound);
  answers_within(a, "/status", bound);
  const auto vms = a.get_json("/vms");
  CHECK(vms["count"] == vms_before["count"]);
  CHECK(vms["as_of"] == vms_before["as_of"]);
}

// The name Proxmox lists (`VM <vmid>`, `CT<vmid>` for a guest without one,
// tests/sim/pve_render.hpp), which the agent sends as it is.
inline std::string expected_name(const sim::Guest& g) {
  return sim::display_name(g);
}

inline std::string expected_status(const sim::Guest& g) {
  // /nodes/{node}/qemu shows a paused guest as running.
  return g.status == sim::GuestStatus::stopped ? "stopped" : "running";
}

// AccountDB matches Proxmox: one row per VMID; every row of a guest that is
// still on pve1 has its name and status; every whitelisted running guest of
// pve1 has a row; a row of a guest that is gone says so.
inline void check_matches_proxmox(World& w, const std::set<long long>& whitelist) {
  w.check_no_duplicates();
  std::map<long long, sim::Guest> on_node;
  for (const auto& g : w.pve.cluster().guests_on("pve1")) {
    on_node[g.vmid] = g;
  }
  std::set<long long> with_row;
  for (const auto& r : w.rows()) {
    CAPTURE(r.vmid);
    with_row.insert(r.vmid);
    const auto it = on_node.find(r.vmid);
    if (it == on_node.end()) {
      CHECK((r.status == "deleted" || r.status == "migrated"));
      continue;
    }
    CHECK(whitelist.count(r.vmid) == 1);
    CHECK(r.name == expected_name(it->second));
    CHECK(r.status == expected_status(it->second));
  }
  for (const auto& [vmid, g] : on_node) {
    if (whitelist.count(vmid) == 1 && g.status != sim::GuestStatus::stopped && !g.template_) {
      CHECK_MESSAGE(with_row.count(vmid) == 1, "no row for running whitelisted guest ", vmid);
    }
  }
}

inline std::set<long long> whitelist_of(const World& w) {
  std::set<long long> s(w.running.begin(), w.running.end());
  s.insert(w.stopped);
  return s;
}

// A field of /proc/PID/status in kB (VmRSS, VmHWM), -1 when unreadable.
inline long proc_status_kb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream s(line.substr(field.size() + 1));
      long kb = -1;
      s >> kb;
      return kb;
    }
  }
  return -1;
}

}  // namespace pha::test
