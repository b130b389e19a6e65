// Webhooks with the real binary: a small receiver in the test records every
// call; failover, redundancy, recovery, sync and auth events each arrive
// once with the documented body and a valid signature; a receiver that never
// answers costs a sync cycle nothing, and a full queue drops the oldest.

#include "agent/notify/webhook.hpp"

#include <doctest/doctest.h>

#include "tests/integration/webhook_receiver.hpp"
#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

const std::string kHookToken = "hook-token-7f3a9c";

// Every call is signed with the token and carries the four common keys.
void check_envelope(const Call& c, const std::string& event) {
  CAPTURE(c.body);
  REQUIRE(c.json.is_object());
  CHECK(c.json["event"] == event);
  CHECK(c.json["timestamp"].is_number_integer());
  CHECK(c.json["node"] == "pve1");
  CHECK(c.json["agent_version"].is_string());
  CHECK(c.headers.at("Content-Type") == "application/json");
  CHECK(c.headers.at("Authorization") == "Bearer " + kHookToken);
  CHECK(c.headers.at("X-Signature") == webhook_signature(kHookToken, c.body));
}

Env hook_env(const Receiver& receiver, Env extra = {}) {
  Env e = {{"WEBHOOK_URLS", receiver.url()},
           {"WEBHOOK_TOKEN", kHookToken},
           {"WEBHOOK_TIMEOUT", "2"},
           {"PROXMOX_NODE_NAME", "pve1"},
           {"UPDATE_INTERVAL", "3600"}};
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return e;
}

}  // namespace

TEST_CASE("webhooks: a failover - a redundancy change and a recovery each produce one call") {
  World w({"pve1", "pve2"}, 24);
  Receiver receiver;
  const auto pve1 = w.pve.host("pve1").url();
  const auto pve2 = w.pve.host("pve2").url();
  RunningAgent a(w, hook_env(receiver, {{"PROXMOX_HOSTS", pve2},
                                        {"PROXMOX_DISCOVER_HOSTS", "false"},
                                        {"HEALTH_CHECK_INTERVAL", "10"},
                                        {"HEALTHY_THRESHOLD", "1"},
                                        {"CIRCUIT_BREAKER_THRESHOLD", "1"},
                                        {"CIRCUIT_BREAKER_RESET", "5"},
                                        {"PROXMOX_TIMEOUT", "2"},
                                        {"PROXMOX_CONNECT_TIMEOUT", "1"}}));
  // The baseline: both hosts checked and healthy, nothing sent for it.
  REQUIRE(a.wait_status([](const nlohmann::json& s) {
    for (const auto& h : s["proxmox"]["hosts"]) {
      if (h["status"] != "healthy") {
        return false;
      }
    }
    return s["proxmox"]["hosts"].size() == 2 && s["sync"]["cycle_count"] >= 1;
  }));
  CHECK(receiver.calls().empty());

  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  const auto s = cycle(a);
  CHECK(s["proxmox"]["host"] == pve2);
  REQUIRE(receiver.wait_for("failover", 1));
  REQUIRE(receiver.wait_for("redundancy", 1));
  const auto failover = receiver.calls("failover").at(0);
  check_envelope(failover, "failover");
  const auto event = a.get_json("/failover/events")["events"].at(0);
  for (const auto* key : {"id", "target", "from", "to", "reason", "kind", "status"}) {
    CHECK_MESSAGE(failover.json[key] == event[key], key);
  }
  CHECK(failover.json["from"] == pve1);
  CHECK(failover.json["to"] == pve2);
  CHECK(failover.json["kind"] == "automatic");
  const auto degraded = receiver.calls("redundancy").at(0);
  check_envelope(degraded, "redundancy");
  CHECK(degraded.json["upstream"] == "proxmox");
  CHECK(degraded.json["old_level"] == "dual");
  CHECK(degraded.json["new_level"] == "dual");
  CHECK(degraded.json["was_degraded"] == false);
  CHECK(degraded.json["degraded"] == true);

  // The primary comes back: healthy again (redundancy restored), then the
  // agent returns to it after its hold.
  w.pve.host("pve1").clear_fault();
  REQUIRE(receiver.wait_for("recovery", 1, 60s));
  REQUIRE(receiver.wait_for("redundancy", 2));
  const auto recovery = receiver.calls("recovery").at(0);
  check_envelope(recovery, "recovery");
  CHECK(recovery.json["from"] == pve2);
  CHECK(recovery.json["to"] == pve1);
  CHECK(recovery.json["kind"] == "recovery");
  const auto restored = receiver.calls("redundancy").at(1);
  CHECK(restored.json["was_degraded"] == true);
  CHECK(restored.json["degraded"] == false);
  CHECK(receiver.calls("failover").size() == 1);
  CHECK(receiver.calls("recovery").size() == 1);
  CHECK(receiver.calls("redundancy").size() == 2);

  // The receiver records a call before it answers, and the agent counts a
  // delivery once the answer is in: wait for the count to catch up.
  REQUIRE(a.wait_status([](const nlohmann::json& status) {
    return status["webhooks"]["receivers"][0]["delivered"].get<int>() >= 4;
  }));
  const auto st = a.get_json("/status")["webhooks"];
  CHECK(st["enabled"] == true);
  REQUIRE(st["receivers"].size() == 1);
  CHECK(st["receivers"][0]["url"] ==
        "http://127.0.0.1:" + std::to_string(receiver.port()) + "/...");
  // The receiver's path (its secret) and the token appear nowhere.
  for (const auto* path : {"/status", "/config", "/metrics"}) {
    const auto r = a.get(path);
    REQUIRE(r);
    CHECK_MESSAGE(r->body.find("s3cr3t-path") == std::string::npos, path);
    CHECK_MESSAGE(r->body.find(kHookToken) == std::string::npos, path);
  }
  const auto log = a.stop();
  CHECK(log.err.find("s3cr3t-path") == std::string::npos);
  CHECK(log.err.find(kHookToken) == std::string::npos);
}

TEST_CASE(
    "webhooks: sync_failed after the configured failures - sync_recovered - auth_failed once") {
  World w;
  Receiver receiver;
  RunningAgent a(w, hook_env(receiver, {{"WEBHOOK_SYNC_FAILURES", "2"},
                                        {"RETRY_MAX_ATTEMPTS", "1"},
                                        {"PROXMOX_DISCOVER_HOSTS", "false"}}));
  REQUIRE(a.wait_cycles(1));
  w.adb.set_fault({.kind = sim::AdbFaultKind::status, .status = 503});
  cycle(a);
  cycle(a);
  REQUIRE(receiver.wait_for("sync_failed", 1));
  cycle(a);  // still failing: said once
  w.adb.clear_fault();
  cycle(a);
  REQUIRE(receiver.wait_for("sync_recovered", 1));
  const auto failed = receiver.calls("sync_failed");
  REQUIRE(failed.size() == 1);
  check_envelope(failed[0], "sync_failed");
  CHECK(failed[0].json["consecutive_failures"] == 2);
  CHECK(failed[0].json["error"].get<std::string>().find("503") != std::string::npos);
  CHECK(failed[0].json["last_success"].is_number_integer());
  const auto recovered = receiver.calls("sync_recovered");
  REQUIRE(recovered.size() == 1);
  CHECK(recovered[0].json["failed_cycles"] == 3);

  // The API key refused: one auth_failed, however many cycles it lasts.
  w.adb.set_fault({.kind = sim::AdbFaultKind::status, .status = 401});
  cycle(a);
  cycle(a);
  REQUIRE(receiver.wait_for("auth_failed", 1));
  const auto auth = receiver.calls("auth_failed");
  REQUIRE(auth.size() == 1);
  check_envelope(auth[0], "auth_failed");
  CHECK(auth[0].json["upstream"] == "accountdb");
  CHECK(auth[0].json["target"] == w.adb.url());
  CHECK(auth[0].json["error"].get<std::string>().find("401") != std::string::npos);
  CHECK(auth[0].json.dump().find(kKey) == std::string::npos);
}

TEST_CASE(
    "webhooks: a receiver that never answers costs a cycle nothing - the queue drops the oldest") {
  World w;
  Receiver receiver(/*hang=*/true);
  RunningAgent a(w, hook_env(receiver, {{"WEBHOOK_SYNC_FAILURES", "1"},
                                        {"WEBHOOK_TIMEOUT", "30"},
                                        {"WEBHOOK_QUEUE_SIZE", "1"},
                                        {"RETRY_MAX_ATTEMPTS", "1"},
                                        {"PROXMOX_DISCOVER_HOSTS", "false"}}));
  REQUIRE(a.wait_cycles(1));
  // Each failed cycle after a good one sends sync_failed, each good one after
  // it sync_recovered: six events, the first of which hangs in delivery.
  for (int i = 0; i < 3; ++i) {
    w.adb.set_fault({.kind = sim::AdbFaultKind::status, .status = 503});
    const auto bad = cycle(a);
    CHECK(bad["sync"]["last_result"]["duration_ms"].get<double>() < 2000.0);
    w.adb.clear_fault();
    const auto good = cycle(a);
    CHECK(good["sync"]["last_result"]["status"] != "error");
    CHECK(good["sync"]["last_result"]["duration_ms"].get<double>() < 2000.0);
  }
  REQUIRE(receiver.wait_for("sync_failed", 1));
  const auto st = a.get_json("/status")["webhooks"];
  CHECK(st["published"] == 6);
  const auto& r = st["receivers"][0];
  CHECK(r["delivered"] == 0);
  CHECK(r["queued"] == 1);
  CHECK(r["dropped_queue_full"] == 5);
  const auto metrics = a.get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("webhook_dropped_total{receiver=\"http://127.0.0.1:") !=
        std::string::npos);
  CHECK(metrics->body.find("reason=\"queue_full\"} 5") != std::string::npos);
  // The API answers at once while the delivery hangs.
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(a.get_json("/health")["status"] == "ok");
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  // Nor does it hold up a stop: the delivery is cancelled.
  const auto stopping = std::chrono::steady_clock::now();
  const auto end = a.stop();
  CHECK(end.exit_code == 0);
  CHECK(std::chrono::steady_clock::now() - stopping < 5s);
  CHECK(end.err.find("stop_deadline") == std::string::npos);
}
