// Failover against a three-node Proxmox simulator and two AccountDB
// endpoints, with the real binary (docs/failover.md): the local API refused or
// hanging, breakers that keep a dead host out, the return to the primary,
// AccountDB endpoints, manual failover and reset, events across a restart.

#include <doctest/doctest.h>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

struct Cluster : World {
  Cluster() : World({"pve1", "pve2", "pve3"}, 36) {}
  std::string host(const std::string& node) { return pve.host(node).url(); }
  // pve2 and pve3 as configured failover hosts; discovery is tested on its own.
  Env failover_env(Env extra = {}) {
    Env e = {{"PROXMOX_HOSTS", host("pve2") + "," + host("pve3")},
             {"PROXMOX_DISCOVER_HOSTS", "false"},
             {"PROXMOX_NODE_NAME", "pve1"},
             {"HEALTH_CHECK_INTERVAL", "10"},
             {"HEALTHY_THRESHOLD", "1"},
             {"UPDATE_INTERVAL", "3600"},
             {"PROXMOX_TIMEOUT", "2"},
             {"PROXMOX_CONNECT_TIMEOUT", "1"}};
    for (auto& [k, v] : extra) {
      e[k] = v;
    }
    return e;
  }
  std::size_t cluster_reads(const std::string& node) {
    return pve.host(node).count("GET /api2/json/cluster/resources");
  }
  // Which peer takes over depends on their scores (response times): either.
  bool is_peer(const nlohmann::json& url) { return url == host("pve2") || url == host("pve3"); }
  std::string node_of(const nlohmann::json& url) { return url == host("pve2") ? "pve2" : "pve3"; }
};

nlohmann::json events_of(const RunningAgent& a) {
  return a.get_json("/failover/events")["events"];
}

}  // namespace

TEST_CASE("failover: the local API refused - the same cycle reads a peer's cluster resources") {
  Cluster w;
  RunningAgent a(w, w.failover_env());
  REQUIRE(a.wait_cycles(1));
  CHECK(a.get_json("/status")["proxmox"]["host"] == w.host("pve1"));
  CHECK(events_of(a).empty());
  const auto rows_before = w.rows().size();

  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  const auto s = cycle(a);
  CHECK(s["sync"]["last_result"]["status"] != "error");
  const auto peer = s["proxmox"]["host"];
  CHECK(w.is_peer(peer));
  CHECK(s["proxmox"]["preferred"] == peer);
  CHECK(s["proxmox"]["primary"] == w.host("pve1"));
  CHECK(w.cluster_reads(w.node_of(peer)) >= 1);
  const auto ev = events_of(a);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["target"] == "proxmox");
  CHECK(ev[0]["from"] == w.host("pve1"));
  CHECK(ev[0]["to"] == peer);
  CHECK(ev[0]["kind"] == "automatic");
  CHECK(ev[0]["status"] == "completed");
  CHECK(ev[0]["reason"].get<std::string>().find("network") != std::string::npos);
  // The fallback read never marks a guest missing and creates nothing twice.
  CHECK(w.rows().size() == rows_before);
  w.check_no_duplicates();
  for (const auto& r : w.rows()) {
    CHECK(r.status != "deleted");
  }
  // The history has an entry for the failover.
  bool in_history = false;
  for (const auto& e : s["history"]) {
    in_history |= e["message"].get<std::string>().find("failed over") != std::string::npos;
  }
  CHECK(in_history);
}

TEST_CASE("failover: an open breaker keeps the dead primary out until its period ends") {
  Cluster w;
  // The primary answers 595 (its pveproxy cannot reach pvedaemon): counted
  // by the simulator, a host failure for the agent.
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::status, .status = 595});
  RunningAgent a(
      w, w.failover_env({{"CIRCUIT_BREAKER_THRESHOLD", "2"}, {"CIRCUIT_BREAKER_RESET", "3600"}}));
  REQUIRE(a.wait_status([&](const nlohmann::json& s) {
    for (const auto& h : s["proxmox"]["hosts"]) {
      if (h["url"] == w.host("pve1")) {
        return h["circuit"] == "open";
      }
    }
    return false;
  }));
  REQUIRE(a.wait_cycles(1));
  const auto contacted = w.pve.host("pve1").total_requests();
  for (int i = 0; i < 3; ++i) {
    const auto s = cycle(a);
    CHECK(s["sync"]["last_result"]["status"] != "error");
  }
  // A health round passes as well (pve2 is checked again): the open host
  // is skipped there too.
  const auto checks = w.pve.host("pve2").count("GET /api2/json/version");
  REQUIRE(a.wait_status(
      [&](const nlohmann::json&) {
        return w.pve.host("pve2").count("GET /api2/json/version") > checks;
      },
      20s));
  CHECK(w.pve.host("pve1").total_requests() == contacted);
  CHECK(w.is_peer(a.get_json("/status")["proxmox"]["host"]));
}

// The hedged read (docs/failover.md "Hedged requests"): after HEDGE_DELAY_MAX
// (400 ms, no history of the lists yet) a peer's cluster-wide read answers.
TEST_CASE(
    "failover: a hung primary is answered from a peer in under a second - later cycles do not wait "
    "on it") {
  Cluster w;
  RunningAgent a(w, w.failover_env());
  REQUIRE(a.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::hang});
  const auto first = cycle(a);
  CHECK(first["sync"]["last_result"]["status"] != "error");
  CHECK(w.is_peer(first["proxmox"]["host"]));
  const auto first_ms = first["sync"]["last_result"]["duration_ms"].get<double>();
  CHECK(first_ms < 1000.0);
  const auto metrics = a.get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find(
            "proxmox_host_agent_hedges_total{upstream=\"proxmox\",result=\"won\"} 1") !=
        std::string::npos);
  // The lost race failed the node over at once: an automatic event from pve1
  // to the peer that answered (newest first).
  const auto ev = events_of(a);
  REQUIRE(!ev.empty());
  CHECK(ev[0]["kind"] == "automatic");
  CHECK(ev[0]["from"] == w.host("pve1"));
  CHECK(ev[0]["to"] == first["proxmox"]["host"]);
  for (int i = 0; i < 3; ++i) {
    const auto later = cycle(a);
    CHECK(later["sync"]["last_result"]["duration_ms"].get<double>() < 1000.0);
  }
  w.pve.host("pve1").clear_fault();
}

// The agent before hedged requests, and with HEDGE_BUDGET_PERCENT=0 today.
TEST_CASE("failover: without hedging a hung primary costs one timeout and only one") {
  Cluster w;
  RunningAgent a(w, w.failover_env({{"HEDGE_BUDGET_PERCENT", "0"}}));
  REQUIRE(a.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::hang});
  const auto first = cycle(a);
  CHECK(first["sync"]["last_result"]["status"] != "error");
  CHECK(w.is_peer(first["proxmox"]["host"]));
  const auto first_ms = first["sync"]["last_result"]["duration_ms"].get<double>();
  CHECK(first_ms >= 1900.0);  // one PROXMOX_TIMEOUT (2 s) on the hung host
  CHECK(first_ms < 5000.0);   // and only one
  for (int i = 0; i < 3; ++i) {
    const auto later = cycle(a);
    CHECK(later["sync"]["last_result"]["duration_ms"].get<double>() < 1500.0);
  }
  w.pve.host("pve1").clear_fault();
}

TEST_CASE("failover: the primary is preferred again once it is healthy") {
  Cluster w;
  RunningAgent a(w, w.failover_env());
  REQUIRE(a.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  REQUIRE(w.is_peer(cycle(a)["proxmox"]["host"]));
  w.pve.host("pve1").clear_fault();
  // HEALTHY_THRESHOLD=1 and a 10 s interval: one good check, a hold of at
  // most one interval, and the next round.
  CHECK(a.wait_status(
      [&](const nlohmann::json& s) { return s["proxmox"]["preferred"] == w.host("pve1"); }, 45s));
  const auto before = w.pve.host("pve1").count("GET /api2/json/nodes/pve1/qemu");
  cycle(a);
  CHECK(w.pve.host("pve1").count("GET /api2/json/nodes/pve1/qemu") == before + 1);
  const auto ev = events_of(a);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["kind"] == "recovery");  // newest first
  CHECK(ev[0]["to"] == w.host("pve1"));
}

TEST_CASE("failover: AccountDB writes go to the second endpoint and back") {
  Cluster w;
  const auto second = w.adb.add_endpoint();
  const auto url0 = w.adb.url(0);
  const auto url1 = w.adb.url(second);
  RunningAgent a(w, w.failover_env({{"ACCOUNTDB_URL", url0 + ", " + url1}}));
  REQUIRE(a.wait_cycles(1));
  CHECK(a.get_json("/status")["accountdb"]["url"] == url0);

  w.adb.set_fault({.kind = sim::AdbFaultKind::down}, 0);
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "written-to-the-second"));
  const auto puts1 = w.adb.count("PUT /vms/agent/{id}", second);
  auto s = cycle(a);
  CHECK(s["sync"]["last_result"]["status"] != "error");
  CHECK(s["accountdb"]["url"] == url1);
  CHECK(w.adb.count("PUT /vms/agent/{id}", second) == puts1 + 1);
  CHECK(w.row_of(w.running[0])->name == "written-to-the-second");
  auto ev = events_of(a);
  REQUIRE_FALSE(ev.empty());
  CHECK(ev[0]["target"] == "accountdb");
  CHECK(ev[0]["from"] == url0);
  CHECK(ev[0]["to"] == url1);

  w.adb.clear_fault(0);
  // A recovery check (node_info) each health round finds it back.
  REQUIRE(a.wait_status(
      [&](const nlohmann::json& st) {
        for (const auto& e : st["accountdb"]["endpoints"]) {
          if (e["url"] == url0) {
            return e["consecutive_failures"] == 0;
          }
        }
        return false;
      },
      30s));
  REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[0]), "written-to-the-first"));
  const auto puts0 = w.adb.count("PUT /vms/agent/{id}", 0);
  s = cycle(a);
  CHECK(s["accountdb"]["url"] == url0);
  CHECK(w.adb.count("PUT /vms/agent/{id}", 0) == puts0 + 1);
  CHECK(w.row_of(w.running[0])->name == "written-to-the-first");
  ev = events_of(a);
  CHECK(ev[0]["kind"] == "recovery");
  CHECK(ev[0]["to"] == url0);
  w.check_no_duplicates();
}

TEST_CASE("failover: manual failover and reset through the API - and events survive a restart") {
  Cluster w;
  const auto second = w.adb.add_endpoint();
  const auto url1 = w.adb.url(second);
  const auto env = w.failover_env({{"ACCOUNTDB_URL", w.adb.url(0) + ", " + url1}});
  {
    RunningAgent a(w, env);
    REQUIRE(a.wait_cycles(1));
    auto r = a.post("/failover/proxmox", {}, R"({"host":")" + w.host("pve3") + R"("})");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(a.get_json("/status")["proxmox"]["preferred"] == w.host("pve3"));
    r = a.post("/failover/proxmox", {}, R"({"host":"https://nowhere:8006"})");
    REQUIRE(r);
    CHECK(r->status == 409);
    r = a.post("/failover/proxmox", {}, "not json");
    REQUIRE(r);
    CHECK(r->status == 400);
    r = a.post("/failover/accountdb", {}, R"({"url":")" + url1 + R"("})");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(a.get_json("/status")["accountdb"]["url"] == url1);
    // The next cycle reads through pve3 and writes through the second endpoint.
    REQUIRE(w.pve.cluster().rename(static_cast<int>(w.running[1]), "manual"));
    cycle(a);
    CHECK(w.cluster_reads("pve3") >= 1);
    CHECK(w.adb.count("PUT /vms/agent/{id}", second) >= 1);
    r = a.post("/failover/reset");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(a.get_json("/status")["proxmox"]["preferred"] == w.host("pve1"));
    CHECK(events_of(a).size() == 3);
  }
  RunningAgent again(w, env);
  const auto ev = events_of(again);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0]["reason"] == "failover reset through the API");
  CHECK(ev[2]["to"] == w.host("pve3"));
  CHECK(ev[0]["id"].get<long long>() > ev[2]["id"].get<long long>());
}

TEST_CASE("failover: POST /failover needs the token when one is set") {
  Cluster w;
  RunningAgent a(w, w.failover_env({{"AGENT_API_TOKEN", "a-token-of-32-characters-or-more!"}}));
  auto r = a.post("/failover/reset");
  REQUIRE(r);
  CHECK(r->status == 401);
  r = a.post("/failover/reset", {{"Authorization", "Bearer wrong"}});
  REQUIRE(r);
  CHECK(r->status == 403);
  r = a.post("/failover/reset", {{"Authorization", "Bearer a-token-of-32-characters-or-more!"}});
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("failover: discovered peers from /cluster/status take over") {
  Cluster w;
  RunningAgent a(w, w.failover_env({{"PROXMOX_HOSTS", ""}, {"PROXMOX_DISCOVER_HOSTS", "true"}}));
  REQUIRE(a.wait_status([](const nlohmann::json& s) { return s["proxmox"]["hosts"].size() == 3; }));
  const auto status = a.get_json("/status");
  for (const auto& h : status["proxmox"]["hosts"]) {
    if (h["url"] != w.host("pve1")) {
      CHECK(h["source"] == "discovered");
    }
  }
  REQUIRE(a.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  const auto s = cycle(a);
  CHECK(s["sync"]["last_result"]["status"] != "error");
  CHECK(s["proxmox"]["host"] != w.host("pve1"));
}

TEST_CASE("switches: AUTO_FAILOVER=false keeps the dead host in use until a manual failover") {
  Cluster w;
  RunningAgent a(w, w.failover_env({{"AUTO_FAILOVER", "false"}}));
  REQUIRE(a.wait_cycles(1));
  CHECK(a.get_json("/status")["proxmox"]["auto_failover"] == false);
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  auto s = cycle(a);
  CHECK(s["sync"]["last_result"]["status"] == "error");
  CHECK(s["proxmox"]["host"] == w.host("pve1"));
  CHECK(w.cluster_reads("pve2") + w.cluster_reads("pve3") == 0);
  CHECK(events_of(a).empty());
  auto r = a.post("/failover/proxmox", {}, R"({"host":")" + w.host("pve2") + R"("})");
  REQUIRE(r);
  CHECK(r->status == 200);
  s = cycle(a);
  CHECK(s["sync"]["last_result"]["status"] != "error");
  CHECK(s["proxmox"]["host"] == w.host("pve2"));
  CHECK(w.cluster_reads("pve2") >= 1);
}

TEST_CASE("switches: AUTO_RECOVERY=false stays on the backup after the primary recovers") {
  Cluster w;
  RunningAgent a(w, w.failover_env({{"AUTO_RECOVERY", "false"}}));
  REQUIRE(a.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  const auto peer = cycle(a)["proxmox"]["host"];
  REQUIRE(w.is_peer(peer));
  w.pve.host("pve1").clear_fault();
  REQUIRE(a.wait_status(
      [&](const nlohmann::json& s) {
        for (const auto& h : s["proxmox"]["hosts"]) {
          if (h["url"] == w.host("pve1")) {
            return h["status"] == "healthy";
          }
        }
        return false;
      },
      30s));
  // Two more health rounds: with AUTO_RECOVERY the primary would be back by then.
  const auto checks = w.pve.host("pve1").count("GET /api2/json/version");
  REQUIRE(a.wait_status(
      [&](const nlohmann::json&) {
        return w.pve.host("pve1").count("GET /api2/json/version") >= checks + 2;
      },
      30s));
  CHECK(a.get_json("/status")["proxmox"]["preferred"] == peer);
  auto r = a.post("/failover/reset");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(a.get_json("/status")["proxmox"]["preferred"] == w.host("pve1"));
}
