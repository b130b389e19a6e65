// The HTTP API's routing, authorisation and liveness, with a fake context and
// a fake clock (no server, no upstream): what docs/http-api.md "Authorisation"
// and "GET /health" say, including the cases a loopback test cannot reach.

#include "agent/http/api.hpp"

#include <stdexcept>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/api_world.hpp"

using namespace pha;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using Harness = test::ApiWorld;

Settings with_token(bool read_auth = false) {
  auto s = Harness::defaults();
  s.agent_api_token = "s3cret-token";
  s.agent_read_auth = read_auth;
  return s;
}

}  // namespace

TEST_CASE("api unit: POST without a token configured is for loopback clients only") {
  Harness h;
  CHECK(h.call("POST", "/sync/trigger", true).status == 202);
  CHECK(h.triggers == 1);
  const auto remote = h.call("POST", "/sync/trigger", false);
  CHECK(remote.status == 403);
  CHECK(json::parse(remote.body)["error"] == "forbidden");
  CHECK(h.triggers == 1);
  // GETs stay open to every client.
  CHECK(h.call("GET", "/status", false).status == 200);
}

TEST_CASE("api unit: with a token POST needs it from every client") {
  Harness h(with_token());
  CHECK(h.call("POST", "/sync/trigger", true).status == 401);
  CHECK(h.call("POST", "/sync/trigger", false, "Bearer wrong").status == 403);
  CHECK(h.call("POST", "/sync/trigger", false, "Bearer s3cret-token").status == 202);
  CHECK(h.call("POST", "/sync/trigger", false, "bearer s3cret-token").status == 202);
  CHECK(h.call("POST", "/sync/trigger", true, "Token s3cret-token").status == 401);
  CHECK(h.call("POST", "/sync/trigger", true, "Bearer ").status == 401);
  CHECK(h.triggers == 2);
  CHECK(h.refreshes == 0);
  CHECK(h.call("POST", "/whitelist/refresh", true, "Bearer nope").status == 403);
  CHECK(h.refreshes == 0);  // refused before any upstream call
}

TEST_CASE("api unit: read auth covers every GET but health and the page") {
  Harness h(with_token(true));
  CHECK(h.call("GET", "/health", false).status == 200);
  CHECK(h.call("GET", "/", false).status == 200);
  for (const char* path :
       {"/status", "/metrics", "/vms", "/vms/101", "/config", "/sync/status", "/health/proxmox"}) {
    CAPTURE(path);
    CHECK(h.call("GET", path, true).status == 401);
    CHECK(h.call("GET", path, true, "Bearer s3cret-tokeN").status == 403);
    const auto ok = h.call("GET", path, true, "Bearer s3cret-token");
    CHECK(ok.status != 401);
    CHECK(ok.status != 403);
  }
}

TEST_CASE("api unit: customer data is for loopback clients while no read token is set") {
  Harness h;
  for (const char* path : {"/vms", "/vms/101", "/config"}) {
    CAPTURE(path);
    CHECK(h.call("GET", path, true).status != 401);
    const auto remote = h.call("GET", path, false);
    CHECK(remote.status == 401);
    CHECK(json::parse(remote.body)["message"].get<std::string>().find("AGENT_READ_TOKEN") !=
          std::string::npos);
  }
  for (const char* path : {"/status", "/metrics", "/health/proxmox", "/sync/status", "/"}) {
    CAPTURE(path);
    const auto r = h.call("GET", path, false);
    CHECK(r.status != 401);
    CHECK(r.status != 403);
  }
}

TEST_CASE("api unit: the read token reads and never controls") {
  auto s = with_token();
  s.agent_read_token = "read-only-token";
  Harness h(s);
  for (const bool loopback : {true, false}) {
    CAPTURE(loopback);
    CHECK(h.call("GET", "/vms", loopback).status == 401);  // a token is set: every client needs it
    CHECK(h.call("GET", "/vms", loopback, "Bearer read-only-tokeN").status == 403);
    CHECK(h.call("GET", "/vms", loopback, "Bearer read-only-token").status == 200);
    CHECK(h.call("GET", "/config", loopback, "Bearer s3cret-token").status == 200);
    CHECK(h.call("GET", "/metrics", loopback).status == 200);  // monitoring stays open
    const auto control = h.call("POST", "/sync/trigger", loopback, "Bearer read-only-token");
    CHECK(control.status == 403);
    CHECK(json::parse(control.body)["message"].get<std::string>().find("AGENT_API_TOKEN") !=
          std::string::npos);
  }
  CHECK(h.triggers == 0);
  CHECK(h.call("POST", "/sync/trigger", false, "Bearer s3cret-token").status == 202);
  CHECK(h.triggers == 1);
}

TEST_CASE("api unit: AGENT_OPEN_CUSTOMER_DATA opens customer data and nothing else") {
  auto s = Harness::defaults();
  s.agent_open_customer_data = true;
  Harness h(s);
  CHECK(h.call("GET", "/vms", false).status == 200);
  CHECK(h.call("GET", "/config", false).status == 200);
  CHECK(h.call("POST", "/sync/trigger", false).status == 403);
  CHECK(h.triggers == 0);
}

TEST_CASE("api unit: unknown paths are 404 and wrong methods 405 with Allow") {
  Harness h;
  auto r = h.call("GET", "/sync");
  CHECK(r.status == 404);
  CHECK(json::parse(r.body)["error"] == "not_found");
  r = h.call("DELETE", "/status");
  CHECK(r.status == 405);
  bool allow = false;
  for (const auto& [k, v] : r.headers) {
    allow = allow || (k == "Allow" && v == "GET, HEAD");
  }
  CHECK(allow);
  CHECK(h.call("GET", "/whitelist/refresh").status == 405);
  CHECK(h.call("HEAD", "/status").status == 200);
  CHECK(h.call("GET", "/vms/abc").status == 404);
  CHECK(h.call("GET", "/vms/").status == 404);
}

TEST_CASE("api unit: a failed whitelist refresh is 502 with the reason") {
  Harness h;
  const auto r = h.call("POST", "/whitelist/refresh");
  CHECK(r.status == 502);
  CHECK(json::parse(r.body)["message"] == "AccountDB: GET /vm-access/node/34/whitelist/agent: 503");
}

TEST_CASE("api unit: health proxmox is 503 until a check and follows the last one") {
  Harness h;
  auto r = h.call("GET", "/health/proxmox");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["message"] == "not checked yet");
  h.proxmox.observe("https://127.0.0.1:8006", {FailureKind::ok, 12ms, ""});
  r = h.call("GET", "/health/proxmox");
  CHECK(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["response_time_ms"] == 12);
  CHECK(j["checked_at"] == h.clock.unix_now());
  h.proxmox.observe("https://127.0.0.1:8006", {FailureKind::timeout, 0ms, "timed out"});
  r = h.call("GET", "/health/proxmox");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["message"] == "timed out");
  h.proxmox.observe("https://127.0.0.1:8006", {FailureKind::ok, 12ms, ""});
  REQUIRE(h.call("GET", "/health/proxmox").status == 200);
  // Checks that stopped: after two intervals the answer is no longer vouched for.
  h.clock.advance(std::chrono::seconds(2 * h.settings->health_check_interval + 1));
  r = h.call("GET", "/health/proxmox");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["message"].get<std::string>().starts_with("no health check for"));
}

TEST_CASE("api unit: health turns 503 when the loop stalls or a worker is stuck") {
  Harness h;
  h.loop.last_progress = h.clock.now();
  CHECK(h.call("GET", "/health").status == 200);
  // Two periods of max(UPDATE_INTERVAL, RETRY_MAX_DELAY) without a finished cycle.
  h.clock.advance(std::chrono::seconds(2 * 300));
  CHECK(h.call("GET", "/health").status == 200);
  h.clock.advance(1s);
  auto r = h.call("GET", "/health");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["message"].get<std::string>().starts_with("the sync loop"));
  h.loop.last_progress = h.clock.now();
  CHECK(h.call("GET", "/health").status == 200);
  h.server.oldest_job_age = std::chrono::hours(1);
  r = h.call("GET", "/health");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body)["message"].get<std::string>().starts_with("an HTTP worker"));
}

TEST_CASE("api unit: health turns 503 for good when a thread stops on an exception") {
  Harness h;
  h.loop.last_progress = h.clock.now();
  CHECK(h.call("GET", "/health").status == 200);
  // A thread of the agent, as SyncLoop, HealthChecker and Webhooks start theirs.
  std::thread t([] {
    run_guarded("sync", [] { throw std::runtime_error("row 17: customer ops@example.com"); });
  });
  t.join();
  const auto failed = thread_failures().first();
  REQUIRE(failed.has_value());
  CHECK(failed->thread == "sync");
  CHECK(failed->error == "row 17: customer ops@example.com");
  auto r = h.call("GET", "/health");
  CHECK(r.status == 503);
  const auto message = json::parse(r.body)["message"].get<std::string>();
  CHECK(message.starts_with("the sync thread stopped on an unexpected error"));
  // What the exception said is for the log: it may quote customer data.
  CHECK(r.body.find("example.com") == std::string::npos);
  // The loop moving again does not make the lost thread come back.
  h.clock.advance(1s);
  h.loop.last_progress = h.clock.now();
  CHECK(h.call("GET", "/health").status == 503);
  // Only the first failure is kept; a second one does not replace it.
  run_guarded("webhook", [] { throw 42; });
  CHECK(thread_failures().first()->thread == "sync");
  thread_failures().clear();
  CHECK(h.call("GET", "/health").status == 200);
}

TEST_CASE("api unit: a guarded thread that returns records nothing") {
  ThreadFailures failures;
  int ran = 0;
  run_guarded(
      "health", [&] { ++ran; }, failures);
  CHECK(ran == 1);
  CHECK_FALSE(failures.first().has_value());
  run_guarded(
      "health", [] { throw std::bad_alloc(); }, failures);
  REQUIRE(failures.first().has_value());
  CHECK(failures.first()->error == std::bad_alloc().what());
}

TEST_CASE("api unit: status shows the history and the single host as it is") {
  Harness h;
  CHECK(json::parse(h.call("GET", "/status").body)["current"].is_null());
  CycleReport r;
  r.success = true;
  r.status = Severity::ok;
  r.finished_at = h.clock.unix_now();
  h.store.record_cycle(r);
  const auto j = json::parse(h.call("GET", "/status").body);
  CHECK(j["current"]["message"] == "in sync");
  CHECK(j["history"].size() == 1);
  CHECK(j["proxmox"]["redundancy"] == "single");
  CHECK(j["proxmox"]["degraded"] == true);
  CHECK(j["proxmox"]["hosts"][0]["node_name"] == "pve1");
  CHECK(j["proxmox"]["hosts"][0]["status"] == "unknown");
  CHECK(j["proxmox"]["hosts"][0]["score"].is_null());
  CHECK(j["accountdb"]["owner_id"] == 2);
  CHECK(j["sync"]["cycle_count"] == 1);
}

TEST_CASE("api unit: status shows the Proxmox permissions - unchecked - missing - unknown") {
  Harness h;
  auto p = json::parse(h.call("GET", "/status").body)["proxmox"]["permissions"];
  CHECK(p == json{{"checked", nullptr},
                  {"version", nullptr},
                  {"missing", json::array()},
                  {"error", nullptr}});
  h.permissions.checked = h.clock.unix_now();
  h.permissions.version = "9.0.3";
  h.permissions.missing = {{.privilege = "VM.GuestAgent.Audit",
                            .path = "/vms",
                            .effect = "QEMU guest IPs stay empty",
                            .fix = "pveum acl modify / --roles PVEAuditor --users a@pve",
                            .note = "granted on /vms without propagation"}};
  p = json::parse(h.call("GET", "/status").body)["proxmox"]["permissions"];
  CHECK(p == json{{"checked", h.clock.unix_now()},
                  {"version", "9.0.3"},
                  {"missing",
                   {{{"privilege", "VM.GuestAgent.Audit"},
                     {"path", "/vms"},
                     {"effect", "QEMU guest IPs stay empty"}}}},
                  {"error", nullptr}});
  h.permissions = {};
  h.permissions.error = "GET /access/permissions on https://127.0.0.1:8006: 501 not implemented";
  p = json::parse(h.call("GET", "/status").body)["proxmox"]["permissions"];
  CHECK(p["checked"].is_null());
  CHECK(p["error"] == *h.permissions.error);
}

TEST_CASE("api unit: failover control answers 400 409 and 200 and lists events newest first") {
  Harness h;
  const auto post = [&h](const std::string& path, const std::string& body) {
    http::Request r;
    r.method = "POST";
    r.path = path;
    r.target = path;
    r.peer_loopback = true;
    r.peer = "127.0.0.1";
    r.body = body;
    auto d = h.api->dispatch(r);
    REQUIRE(d.now);
    return *d.now;
  };
  CHECK(post("/failover/proxmox", "{").status == 400);
  CHECK(post("/failover/proxmox", R"({"host": 7})").status == 400);
  CHECK(post("/failover/proxmox", R"({"host": "https://nowhere:8006"})").status == 409);
  CHECK(post("/failover/accountdb", R"({"url": "http://nowhere:8080"})").status == 409);
  CHECK(h.call("GET", "/failover/reset").status == 405);
  CHECK(post("/failover/reset", "").status == 200);
  h.failover_log.record(
      {0, 100, FailoverTarget::proxmox, "a", "b", "network: refused", FailoverKind::automatic});
  h.failover_log.record(
      {0, 200, FailoverTarget::proxmox, "b", "a", "healthy again", FailoverKind::recovery});
  const auto events = json::parse(h.call("GET", "/failover/events").body)["events"];
  REQUIRE(events.size() == 2);
  CHECK(events[0]["kind"] == "recovery");
  CHECK(events[1]["reason"] == "network: refused");
  const auto metrics = h.api->metrics_text();
  CHECK(
      metrics.find("proxmox_host_agent_failover_events_total{target=\"proxmox\",kind=\"recovery\","
                   "status=\"completed\"} 1") != std::string::npos);
  CHECK(metrics.find("proxmox_host_agent_retry_budget_tokens{upstream=\"accountdb\"} 7.5") !=
        std::string::npos);
}

TEST_CASE("api unit: the status state set starts at starting and the worst component wins") {
  Harness h;
  const auto state = [&] {
    const auto text = h.api->metrics_text();
    for (const auto* s : {"starting", "ok", "warning", "error"}) {
      const auto line = "\nproxmox_host_agent_status{state=\"" + std::string(s) + "\"} 1\n";
      if (text.find(line) != std::string::npos) {
        return std::string(s);
      }
    }
    return std::string("none");
  };
  CHECK(state() == "starting");  // nothing known yet
  CycleReport r;
  r.success = true;
  r.status = Severity::ok;
  r.finished_at = h.clock.unix_now();
  h.store.record_cycle(r);
  CHECK(state() == "ok");
  h.store.set_state(StatusComponent::accountdb, Severity::warning, "a backup is unhealthy");
  CHECK(state() == "warning");
  h.store.set_state(StatusComponent::proxmox, Severity::error, "the host in use is unhealthy");
  CHECK(state() == "error");
  h.store.set_state(StatusComponent::proxmox, Severity::ok, "the host in use is healthy");
  CHECK(state() == "warning");
}
