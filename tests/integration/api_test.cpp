// The agent's HTTP API (docs/http-api.md): the real binary with the
// simulators, over loopback. Every endpoint's shape and status code, the
// health of the Proxmox side following the simulator, the status history,
// the POST authorisation, secrets, and hostile clients.

#include <algorithm>
#include <arpa/inet.h>
#include <map>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace std::chrono_literals;
using nlohmann::json;
using test::Env;
using test::kKey;
using test::kNode;
using test::kTokenSecret;
using test::RunningAgent;
using test::World;

namespace {

const std::string kAgentToken = "agent-api-token-7c1e0b9a5d3f";

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> out;
  for (const auto& [k, v] : j.items()) {
    out.insert(k);
  }
  return out;
}

// Sends raw bytes and returns what comes back until the peer closes or the timeout.
std::string raw_exchange(int port, const std::string& bytes,
                         std::chrono::milliseconds timeout = 5000ms) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the server may close early (413): what it answered is still read
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) {
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      break;
    }
    char buf[4096];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

int status_of(const std::string& raw) {
  if (raw.size() < 12 || !raw.starts_with("HTTP/1.1 ")) {
    return 0;
  }
  return std::stoi(raw.substr(9, 3));
}

}  // namespace

TEST_CASE("api: every endpoint answers with the documented keys and status codes") {
  World w;
  // One host: the failover hosts and their discovery have tests of their own.
  RunningAgent agent(w, {{"UPDATE_INTERVAL", "60"}, {"PROXMOX_DISCOVER_HOSTS", "false"}});
  REQUIRE(agent.wait_cycles(1));

  auto health = agent.get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->get_header_value("Content-Type") == "application/json");
  CHECK(keys_of(json::parse(health->body)) == std::set<std::string>{"status", "timestamp"});
  CHECK(json::parse(health->body)["status"] == "ok");

  const auto status = agent.get_json("/status");
  for (const char* k : {"current", "history", "proxmox", "accountdb", "sync", "whitelist"}) {
    CHECK_MESSAGE(status.contains(k), k);
  }
  CHECK(status["current"]["status"] == "ok");
  CHECK(status["current"]["message"] == "in sync");
  CHECK(keys_of(status["current"]) == std::set<std::string>{"status", "message", "timestamp"});
  CHECK(status["history"].back() == status["current"]);
  const auto& pve = status["proxmox"];
  for (const char* k :
       {"host", "node", "connected", "primary", "preferred", "redundancy", "degraded", "hosts"}) {
    CHECK_MESSAGE(pve.contains(k), k);
  }
  CHECK(pve["host"] == w.pve.host("pve1").url());
  CHECK(pve["node"] == "pve1");
  CHECK(pve["redundancy"] == "single");
  REQUIRE(pve["hosts"].size() == 1);
  CHECK(keys_of(pve["hosts"][0]) ==
        std::set<std::string>{"url", "source", "status", "state_source", "probed", "circuit",
                              "response_time_ms", "failure_count", "consecutive_failures",
                              "last_seen", "last_error", "score", "node_name", "cluster"});
  CHECK(pve["hosts"][0]["circuit"] == "closed");
  CHECK(pve["hosts"][0]["state_source"] == "probed");  // the host in use is always probed
  CHECK(pve["hosts"][0]["last_seen"].is_number());
  const auto& adb = status["accountdb"];
  for (const char* k : {"url", "node_id", "connected", "owner_id", "strategy", "endpoints"}) {
    CHECK_MESSAGE(adb.contains(k), k);
  }
  CHECK(adb["url"] == w.adb.url());
  CHECK(adb["node_id"] == kNode);
  CHECK(adb["connected"] == true);
  CHECK(adb["owner_id"] == 2);
  CHECK(adb["strategy"] == "priority");
  REQUIRE(adb["endpoints"].size() == 1);
  for (const char* k : {"priority", "weight", "in_flight", "status", "state_source", "probed",
                        "circuit", "score"}) {
    CHECK_MESSAGE(adb["endpoints"][0].contains(k), k);
  }
  const auto& sync = status["sync"];
  for (const char* k :
       {"last_sync_time", "next_sync_time", "update_interval", "last_attempt_time", "cycle_count",
        "consecutive_failures", "last_result", "connection_health"}) {
    CHECK_MESSAGE(sync.contains(k), k);
  }
  CHECK(sync["update_interval"] == 60);
  CHECK(sync["last_result"]["created"] == w.running.size());
  CHECK(keys_of(sync["connection_health"]) ==
        std::set<std::string>{"last_successful_call", "consecutive_failures", "total_calls",
                              "total_failures", "average_response_time_ms"});
  CHECK(sync["connection_health"]["total_calls"].get<int>() >= 3);
  CHECK(keys_of(status["whitelist"]).count("source") == 1);
  CHECK(status["whitelist"]["count"] == w.running.size() + 1);
  CHECK(status["whitelist"]["source"] == "accountdb");

  const auto sync_status = agent.get_json("/sync/status");
  CHECK(keys_of(sync_status) ==
        std::set<std::string>{"last_sync_time", "last_sync_stats", "is_syncing", "update_interval",
                              "whitelist", "whitelist_enabled", "whitelist_last_updated"});
  CHECK(sync_status["whitelist"].size() == w.running.size() + 1);
  CHECK(sync_status["last_sync_stats"]["total_proxmox_vms"].get<int>() > 0);

  const auto vms = agent.get_json("/vms");
  CHECK(keys_of(vms) == std::set<std::string>{"vms", "count", "as_of"});
  const auto on_pve1 = w.pve.cluster().guests_on("pve1").size();
  CHECK(vms["count"] == on_pve1);
  CHECK(vms["vms"].size() == on_pve1);
  const auto id = std::to_string(w.running.front());
  auto one = agent.get("/vms/" + id);
  REQUIRE(one);
  CHECK(one->status == 200);
  CHECK(json::parse(one->body)["vmid"] == w.running.front());
  auto none = agent.get("/vms/999999999");
  REQUIRE(none);
  CHECK(none->status == 404);
  CHECK(json::parse(none->body)["error"] == "not_found");

  const auto config = agent.get_json("/config");
  CHECK(config["settings"]["ACCOUNTDB_API_KEY"]["value"] == "***");
  CHECK(config["settings"]["UPDATE_INTERVAL"]["value"] == 60);
  CHECK(config["settings"]["UPDATE_INTERVAL"]["source"] == "env");

  auto metrics = agent.get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").starts_with("text/plain; version=0.0.4"));
  CHECK(metrics->body.find("proxmox_host_agent_sync_cycles_total{result=\"ok\"} ") !=
        std::string::npos);

  auto page = agent.get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->get_header_value("Content-Type").starts_with("text/html"));

  auto missing = agent.get("/nope");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body)["error"] == "not_found");
  auto wrong = agent.post("/status");
  REQUIRE(wrong);
  CHECK(wrong->status == 405);
  CHECK(json::parse(wrong->body)["error"] == "method_not_allowed");
  auto wrong_get = agent.get("/sync/trigger");
  REQUIRE(wrong_get);
  CHECK(wrong_get->status == 405);

  auto echoed = agent.get("/health", {{"X-Request-ID", "trace-42.a"}});
  REQUIRE(echoed);
  CHECK(echoed->get_header_value("X-Request-ID") == "trace-42.a");
  CHECK(missing->get_header_value("X-Request-ID").size() == 16);

  // POST from loopback without a token configured.
  auto trigger = agent.post("/sync/trigger");
  REQUIRE(trigger);
  CHECK(trigger->status == 202);
  CHECK(keys_of(json::parse(trigger->body)) == std::set<std::string>{"status", "timestamp"});
  CHECK(json::parse(trigger->body)["status"] == "sync_triggered");
  CHECK(agent.wait_cycles(2));

  w.adb.set_whitelist(kNode, {w.running.front()});
  auto refresh = agent.post("/whitelist/refresh");
  REQUIRE(refresh);
  CHECK(refresh->status == 200);
  const auto refreshed = json::parse(refresh->body);
  CHECK(keys_of(refreshed) ==
        std::set<std::string>{"status", "timestamp", "whitelist_count", "whitelist_enabled"});
  CHECK(refreshed["whitelist_count"] == 1);
  CHECK(agent.get_json("/status")["whitelist"]["count"] == 1);

  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::whitelist, .status = 503});
  w.adb.set_whitelist_endpoint(false);
  auto failed = agent.post("/whitelist/refresh");
  REQUIRE(failed);
  CHECK(failed->status == 502);
  CHECK(json::parse(failed->body).contains("message"));
  w.adb.clear_fault();

  const auto result = agent.stop();
  CHECK(result.exit_code == 0);
}

TEST_CASE("api: health of the Proxmox side follows the simulator down and back") {
  World w;
  RunningAgent agent(w, {{"HEALTH_CHECK_INTERVAL", "10"},
                         {"PROXMOX_TIMEOUT", "2"},
                         {"PROXMOX_CONNECT_TIMEOUT", "1"}});
  REQUIRE(agent.wait_cycles(1));
  auto ok = agent.get("/health/proxmox");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  auto body = json::parse(ok->body);
  CHECK(keys_of(body) == std::set<std::string>{"status", "message", "timestamp", "host",
                                               "response_time_ms", "checked_at"});
  CHECK(body["status"] == "ok");
  CHECK(body["host"] == w.pve.host("pve1").url());

  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
  const auto down_at = std::chrono::steady_clock::now();
  auto wait_for = [&](int code) {
    const auto deadline = std::chrono::steady_clock::now() + 15s;  // one interval (+10 %) and slack
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = agent.get("/health/proxmox");
      if (r && r->status == code) {
        return json::parse(r->body);
      }
      std::this_thread::sleep_for(100ms);  // a poll interval
    }
    return json();
  };
  auto failing = wait_for(503);
  REQUIRE_MESSAGE(failing.is_object(), "still 200 15 s after the simulator went down");
  CHECK(failing["status"] == "error");
  CHECK(failing["message"].get<std::string>().size() > 0);
  CHECK(std::chrono::steady_clock::now() - down_at < 15s);

  w.pve.host("pve1").clear_fault();
  auto back = wait_for(200);
  REQUIRE_MESSAGE(back.is_object(), "still 503 15 s after the simulator came back");
  CHECK(back["status"] == "ok");
  CHECK(back["response_time_ms"].is_number());
  // /health itself stayed 200 throughout: the agent is alive.
  auto health = agent.get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE(
    "api: the history gets an entry only on a change and keeps the last STATUS_HISTORY_SIZE") {
  World w;
  RunningAgent agent(w, {{"STATUS_HISTORY_SIZE", "2"}, {"RETRY_MAX_DELAY", "1"}});
  REQUIRE(agent.wait_cycles(1));
  for (std::uint64_t n = 2; n <= 4; ++n) {
    REQUIRE(agent.post("/sync/trigger")->status == 202);
    REQUIRE(agent.wait_cycles(n));
  }
  REQUIRE(agent.wait_status([](const json& j) { return j["current"]["status"] == "ok"; }));
  auto s = agent.get_json("/status");
  // Starting, then in sync once every upstream's state is known; the cycles
  // after it changed nothing.
  REQUIRE_MESSAGE(s["history"].size() == 2, s["history"].dump());
  CHECK(s["history"][0]["status"] == "starting");
  CHECK(s["history"][1]["message"] == "in sync");

  // AccountDB refuses list_vms: the cycle fails, one entry.
  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::list_vms, .status = 400});
  REQUIRE(agent.post("/sync/trigger")->status == 202);
  REQUIRE(agent.wait_status([](const json& j) { return j["current"]["status"] == "error"; }));
  const auto cycles = agent.get_json("/status")["sync"]["cycle_count"].get<std::uint64_t>();
  REQUIRE(agent.post("/sync/trigger")->status == 202);
  REQUIRE(agent.wait_cycles(cycles + 1));
  s = agent.get_json("/status");
  REQUIRE(s["history"].size() == 2);  // the same failure again added nothing
  CHECK(s["history"][0]["message"] == "in sync");
  CHECK(s["history"][1]["status"] == "error");

  w.adb.clear_fault();
  REQUIRE(agent.post("/sync/trigger")->status == 202);
  REQUIRE(agent.wait_status([](const json& j) { return j["current"]["status"] == "ok"; }));
  s = agent.get_json("/status");
  REQUIRE(s["history"].size() == 2);  // bounded: the oldest went
  CHECK(s["history"][0]["status"] == "error");
  CHECK(s["history"][1]["message"] == "in sync");
  CHECK(s["current"] == s["history"][1]);
}

TEST_CASE("api: POST needs the bearer token when one is set") {
  World w;
  RunningAgent agent(w, {{"AGENT_API_TOKEN", kAgentToken}});
  auto none = agent.post("/sync/trigger");
  REQUIRE(none);
  CHECK(none->status == 401);
  CHECK(none->get_header_value("WWW-Authenticate") == "Bearer");
  auto wrong = agent.post("/sync/trigger", {{"Authorization", "Bearer " + kAgentToken + "x"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 403);
  auto basic = agent.post("/sync/trigger", {{"Authorization", "Basic " + kAgentToken}});
  REQUIRE(basic);
  CHECK(basic->status == 401);
  auto right = agent.post("/sync/trigger", {{"Authorization", "Bearer " + kAgentToken}});
  REQUIRE(right);
  CHECK(right->status == 202);
  // Reads stay open without AGENT_READ_AUTH.
  CHECK(agent.get("/status")->status == 200);
  for (const auto* body : {&none->body, &wrong->body, &basic->body, &right->body}) {
    CHECK(body->find(kAgentToken) == std::string::npos);
  }
}

TEST_CASE("api: AGENT_READ_AUTH closes every GET but health") {
  World w;
  RunningAgent agent(w, {{"AGENT_API_TOKEN", kAgentToken}, {"AGENT_READ_AUTH", "true"}});
  CHECK(agent.get("/health")->status == 200);
  for (const char* path :
       {"/status", "/metrics", "/vms", "/config", "/sync/status", "/health/proxmox"}) {
    CAPTURE(path);
    CHECK(agent.get(path)->status == 401);
    CHECK(agent.get(path, {{"Authorization", "Bearer nope"}})->status == 403);
    const auto r = agent.get(path, {{"Authorization", "Bearer " + kAgentToken}});
    CHECK(r->status != 401);
    CHECK(r->status != 403);
  }
}

TEST_CASE("api: no answer contains a secret") {
  World w;
  const std::string password_file = w.dir.write("pw", "not-used-with-a-token\n");
  RunningAgent agent(w, {{"AGENT_API_TOKEN", kAgentToken}, {"AGENT_READ_AUTH", "true"}});
  agent.set_default_headers({{"Authorization", "Bearer " + kAgentToken}});
  REQUIRE(agent.wait_cycles(1));
  // A failure whose message names a request: the key is in AccountDB's query strings.
  w.adb.set_fault(
      {.kind = sim::AdbFaultKind::status, .call = sim::AdbCall::list_vms, .status = 500});
  const httplib::Headers auth = {{"Authorization", "Bearer " + kAgentToken}};
  REQUIRE(agent.post("/sync/trigger", auth)->status == 202);
  REQUIRE(agent.wait_cycles(2));
  w.adb.clear_fault();
  const std::vector<std::string> secrets = {kKey, kTokenSecret, kAgentToken};
  for (const char* path : {"/", "/health", "/health/proxmox", "/status", "/sync/status", "/vms",
                           "/config", "/metrics", "/nope"}) {
    for (const auto& headers : {httplib::Headers{{"X-Any", "1"}}, auth}) {
      auto r = agent.get(path, headers);
      REQUIRE(r);
      std::string all = r->body;
      for (const auto& [k, v] : r->headers) {
        all += k + ": " + v + "\n";
      }
      for (const auto& secret : secrets) {
        CHECK_MESSAGE(all.find(secret) == std::string::npos, path, " shows a secret");
      }
    }
  }
  auto refresh = agent.post("/whitelist/refresh", auth);
  REQUIRE(refresh);
  for (const auto& secret : secrets) {
    CHECK(refresh->body.find(secret) == std::string::npos);
  }
  const auto result = agent.stop();
  for (const auto& secret : secrets) {
    CHECK(result.err.find(secret) == std::string::npos);
  }
}

TEST_CASE("api: status answers at once while the Proxmox simulator hangs") {
  World w;
  RunningAgent agent(w, {{"PROXMOX_TIMEOUT", "30"}});
  REQUIRE(agent.wait_cycles(1));
  w.pve.host("pve1").set_fault({.kind = sim::FaultKind::hang});
  REQUIRE(agent.post("/sync/trigger")->status == 202);
  REQUIRE(agent.wait_status([](const json& j) { return j["sync"]["is_syncing"] == true; }));
  // The cycle is stuck on Proxmox for up to 30 s; every answer comes from memory.
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = agent.get("/status");
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(took < 2s);  // far below the 30 s the cycle is stuck for
  }
  CHECK(agent.get("/health")->status == 200);
  CHECK(agent.get("/metrics")->status == 200);
  CHECK(agent.get_json("/vms")["count"].get<int>() > 0);  // the last read, still served
  w.pve.host("pve1").clear_fault();
  const auto result = agent.stop();
  CHECK(result.exit_code == 0);
}

TEST_CASE("api: malformed and hostile requests get an error and the agent keeps serving") {
  World w;
  RunningAgent agent(w, {});
  const int port = agent.port();

  // A body over 64 KiB.
  const std::string big(70 * 1024, 'x');
  auto r = raw_exchange(port, "POST /sync/trigger HTTP/1.1\r\nHost: a\r\nContent-Length: " +
                                  std::to_string(big.size()) + "\r\n\r\n" + big);
  CHECK(status_of(r) == 413);
  CHECK(r.find("X-Request-ID: ") != std::string::npos);
  // Garbage, a bad method token, a bad path, garbage headers, an absurd header.
  CHECK(status_of(raw_exchange(port, "\x16\x03\x01garbage\r\n\r\n")) == 400);
  CHECK(status_of(raw_exchange(port, "GE(T / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) ==
        400);
  CHECK(status_of(raw_exchange(
            port, "BREW /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 405);
  CHECK(status_of(raw_exchange(
            port, "GET /%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 400);
  CHECK(status_of(raw_exchange(
            port, "GET /../../etc/passwd HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) ==
        404);
  CHECK(status_of(raw_exchange(port, "GET /status HTTP/1.1\r\nNo colon here\r\n\r\n")) == 400);
  CHECK(status_of(raw_exchange(
            port, "GET /status HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n")) == 431);
  // A slow client does not hold the server: others are served meanwhile.
  const int slow = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(slow, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(slow, "GET /sta", 8, MSG_NOSIGNAL) == 8);
  for (int i = 0; i < 5; ++i) {
    auto h = agent.get("/health");
    REQUIRE(h);
    CHECK(h->status == 200);
  }
  ::close(slow);
  auto metrics = agent.get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("proxmox_host_agent_http_bad_requests_total ") != std::string::npos);
  CHECK(agent.get("/health")->status == 200);
  const auto result = agent.stop();
  CHECK(result.exit_code == 0);
}

namespace {

// The lines of one metric family in the text format: series (name and
// labels) -> value.
std::map<std::string, double> series_of(const std::string& body, const std::string& name) {
  std::map<std::string, double> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(name + "{") || line.starts_with(name + " ")) {
      const auto space = line.rfind(' ');
      out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
  }
  return out;
}

double value_of(const std::string& body, const std::string& series) {
  const auto all = series_of(body, series.substr(0, series.find('{')));
  const auto it = all.find(series);
  REQUIRE_MESSAGE(it != all.end(), series, " is missing");
  return it->second;
}

// A state set: its series grouped by their labels without `state`; each
// group must have every one of `states`, exactly one of them 1. Returns the
// number of groups.
std::size_t check_state_set(const std::string& body, const std::string& name,
                            const std::set<std::string>& states) {
  std::map<std::string, std::map<std::string, double>> groups;
  for (const auto& [series, value] : series_of(body, name)) {
    const auto at = series.find("state=\"");
    REQUIRE_MESSAGE(at != std::string::npos, series);
    const auto end = series.find('"', at + 7);
    auto key = series;
    key.erase(at, end + 1 - at);
    groups[key][series.substr(at + 7, end - at - 7)] = value;
  }
  for (const auto& [key, by_state] : groups) {
    std::set<std::string> seen;
    int ones = 0;
    for (const auto& [state, value] : by_state) {
      seen.insert(state);
      CHECK_MESSAGE((value == 0 || value == 1), key, " ", state);
      ones += value == 1 ? 1 : 0;
    }
    CHECK_MESSAGE(seen == states, key);
    CHECK_MESSAGE(ones == 1, key);
  }
  return groups.size();
}

// promtool check metrics prints nothing for `body`.
void check_promtool(const World& w, const std::string& body, const std::string& name) {
  const auto file = w.dir.write(name, body);
  REQUIRE_MESSAGE(::access("/usr/bin/promtool", X_OK) == 0,
                  "promtool is required (Debian package prometheus; scripts/setup.sh installs it)");
  const auto r = test::run_process(
      "/bin/sh",
      {{"-c", "/usr/bin/promtool check metrics < " + file}, {{"PATH", "/usr/bin:/bin"}}, ""});
  CHECK_MESSAGE(r.exit_code == 0, r.out, r.err);
  CHECK_MESSAGE(r.out.empty(), r.out);  // lint findings are printed: there must be none
  CHECK_MESSAGE(r.err.empty(), r.err);
}

}  // namespace

TEST_CASE("api: /metrics passes promtool check metrics and has the documented families") {
  const std::string p = "proxmox_host_agent_";
  World w;
  // node_info hangs: the first cycle cannot end, so /metrics is read before any.
  w.adb.set_fault({.kind = sim::AdbFaultKind::hang, .call = sim::AdbCall::node_info});
  RunningAgent agent(w, {{"ACCOUNTDB_TIMEOUT", "120"}});
  const auto node_info_sent = [&w] {
    const auto requests = w.adb.requests();
    return std::any_of(requests.begin(), requests.end(), [](const sim::AdbRecordedRequest& r) {
      return r.call == sim::AdbCall::node_info;
    });
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!node_info_sent() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // a poll interval, not a wait for an outcome
  }
  REQUIRE(node_info_sent());
  auto fresh = agent.get("/metrics");
  REQUIRE(fresh);
  REQUIRE(fresh->status == 200);
  check_promtool(w, fresh->body, "metrics-fresh.txt");
  // The timestamps are there from the start, 0 until their first event.
  for (const char* ts :
       {"sync_last_success_timestamp_seconds", "sync_last_attempt_timestamp_seconds",
        "whitelist_last_update_timestamp_seconds", "heartbeat_last_success_timestamp_seconds"}) {
    CHECK_MESSAGE(value_of(fresh->body, p + ts) == 0, ts);
  }
  CHECK(check_state_set(fresh->body, p + "status", {"starting", "ok", "warning", "error"}) == 1);
  w.adb.clear_fault();  // the hung node_info is answered: the cycle ends
  REQUIRE(agent.wait_cycles(1));
  // The hung request ended with a dropped connection, a failure of the only
  // endpoint: a warning until a cycle succeeds.
  cycle(agent);
  REQUIRE_MESSAGE(agent.wait_status([](const json& j) { return j["current"]["status"] == "ok"; }),
                  agent.get_json("/status")["current"].dump());

  auto metrics = agent.get("/metrics");
  REQUIRE(metrics);
  REQUIRE(metrics->status == 200);
  const auto& body = metrics->body;
  check_promtool(w, body, "metrics.txt");
  for (const char* family : {"build_info",
                             "live",
                             "sync_cycles_total",
                             "sync_cycle_duration_seconds",
                             "sync_consecutive_failures",
                             "sync_in_progress",
                             "sync_interval_seconds",
                             "sync_last_success_timestamp_seconds",
                             "sync_last_attempt_timestamp_seconds",
                             "guests_seen",
                             "guests_filtered",
                             "guests_written_total",
                             "guest_write_errors_total",
                             "whitelist_size",
                             "whitelist_enabled",
                             "whitelist_stale",
                             "whitelist_last_update_timestamp_seconds",
                             "heartbeat_last_success_timestamp_seconds",
                             "upstream_requests_total",
                             "upstream_request_duration_seconds",
                             "upstream_health",
                             "circuit_breaker_state",
                             "upstream_in_use",
                             "upstream_consecutive_failures",
                             "upstream_targets",
                             "upstream_degraded",
                             "proxmox_failover_active",
                             "failover_events_total",
                             "retry_budget_tokens",
                             "status",
                             "http_requests_total",
                             "http_connections_open",
                             "http_connections_rejected_total",
                             "http_bad_requests_total"}) {
    CHECK_MESSAGE(body.find("# TYPE " + p + family + " ") != std::string::npos, family);
  }
  // The standard process families, as the client libraries name them.
  for (const char* family : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                             "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                             "process_start_time_seconds"}) {
    CHECK_MESSAGE(body.find("\n# TYPE " + std::string(family) + " ") != std::string::npos, family);
    CHECK_MESSAGE(body.find(p + family) == std::string::npos, family);
  }
  // Replaced names are gone.
  for (const char* old : {"start_time_seconds", "upstream_healthy", "whitelist_age_seconds",
                          "heartbeat_age_seconds"}) {
    CHECK_MESSAGE(body.find("# TYPE " + p + old + " ") == std::string::npos, old);
  }
  const auto status = agent.get_json("/status");
  const auto now = static_cast<double>(status["timestamp"].get<std::int64_t>());
  const auto started = value_of(body, "process_start_time_seconds");
  CHECK(started == static_cast<double>(status["agent"]["started_at"].get<std::int64_t>()));
  CHECK(value_of(body, "process_virtual_memory_bytes") >=
        value_of(body, "process_resident_memory_bytes"));
  // After the cycle every timestamp is set, between the start and now.
  for (const char* ts :
       {"sync_last_success_timestamp_seconds", "sync_last_attempt_timestamp_seconds",
        "whitelist_last_update_timestamp_seconds", "heartbeat_last_success_timestamp_seconds"}) {
    const auto v = value_of(body, p + ts);
    CHECK_MESSAGE(v >= started, ts);
    CHECK_MESSAGE(v <= now, ts);
  }
  CHECK(value_of(body, p + "sync_interval_seconds") ==
        status["sync"]["update_interval"].get<double>());
  CHECK(value_of(body, p + "live") == 1);
  CHECK(value_of(body, p + "proxmox_failover_active") == 0);
  CHECK(value_of(body, p + "status{state=\"ok\"}") == 1);
  // One state set per target; as many targets as upstream_targets says.
  const auto targets = value_of(body, p + "upstream_targets{upstream=\"proxmox\"}") +
                       value_of(body, p + "upstream_targets{upstream=\"accountdb\"}");
  CHECK(targets == static_cast<double>(status["proxmox"]["hosts"].size() +
                                       status["accountdb"]["endpoints"].size()));
  CHECK(static_cast<double>(check_state_set(body, p + "upstream_health",
                                            {"healthy", "unhealthy", "unknown"})) == targets);
  CHECK(static_cast<double>(check_state_set(body, p + "circuit_breaker_state",
                                            {"closed", "half_open", "open"})) == targets);
  CHECK(check_state_set(body, p + "status", {"starting", "ok", "warning", "error"}) == 1);
  CHECK(value_of(body, p + "upstream_health{upstream=\"accountdb\",target=\"" + w.adb.url() +
                           "\",state=\"healthy\"}") == 1);
  CHECK(value_of(body, p + "upstream_degraded{upstream=\"proxmox\"}") ==
        (status["proxmox"]["degraded"] == true ? 1 : 0));
  CHECK(value_of(body, p + "upstream_degraded{upstream=\"accountdb\"}") ==
        (status["accountdb"]["degraded"] == true ? 1 : 0));
  CHECK(value_of(body, p + "sync_cycle_duration_seconds_count") ==
        value_of(body, p + "sync_cycles_total{result=\"ok\"}") +
            value_of(body, p + "sync_cycles_total{result=\"warning\"}") +
            value_of(body, p + "sync_cycles_total{result=\"error\"}"));
  CHECK(value_of(body, p + "guests_written_total{kind=\"created\"}") ==
        static_cast<double>(w.running.size()));
}
