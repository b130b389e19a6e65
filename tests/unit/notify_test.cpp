// Webhooks: the body and its signature, the rules that decide when an event
// is sent, and delivery through a scripted HTTP peer on a fake clock.

#include <thread>

#include <doctest/doctest.h>

#include "agent/core/url.hpp"
#include "agent/notify/notifier.hpp"
#include "agent/notify/webhook.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"

namespace pha {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class Peer final : public HttpClient {
 public:
  explicit Peer(test::FakeHttp& http) : http_(http) {}
  HttpOutcome send(const HttpRequest& r) override { return http_.send(r); }

 private:
  test::FakeHttp& http_;
};

const std::string kUrl = "https://hooks.example.net/services/T0/SECRETPATH";

WebhookOptions options(std::size_t queue = 10) {
  WebhookOptions o;
  o.urls = {kUrl};
  o.token = "hook-token";
  o.events = {"failover", "recovery", "redundancy", "sync_failed", "sync_recovered"};
  o.queue_size = queue;
  o.retry.max_attempts = 1;
  o.retry.base_delay = 100ms;
  o.retry.max_delay = 1s;
  o.health.breaker.threshold = 1;
  o.health.breaker.reset = 60s;
  return o;
}

// Real-time bounded wait for `done`, moving the fake clock on by a second
// whenever a worker waits on it.
bool until(test::FakeClock& clock, const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) {
      return true;
    }
    if (clock.waiting() > 0) {
      clock.advance(1s);
    }
    std::this_thread::yield();
  }
  return done();
}

WebhookEvent event(const std::string& name, int n = 0) {
  return {name, {{"n", n}}};
}

}  // namespace

TEST_CASE("webhook: the signature is the HMAC-SHA256 of RFC 4231 test case 2") {
  CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("webhook: the body has the four common keys and the event's own fields") {
  const WebhookEvent e{"failover", {{"from", "a"}, {"to", "b"}, {"event", "x"}, {"node", "y"}}};
  const auto body = json::parse(webhook_body(e, 1700000000, "pve1", "1.2.3"));
  CHECK(body["event"] == "failover");
  CHECK(body["timestamp"] == 1700000000);
  CHECK(body["node"] == "pve1");
  CHECK(body["agent_version"] == "1.2.3");
  CHECK(body["from"] == "a");
  CHECK(body["to"] == "b");
}

TEST_CASE("webhook rules: sync_failed once after the configured failures and then recovered") {
  NotifyRules rules(3);
  CHECK_FALSE(rules.on_cycle(true, "in sync", 100));  // no failure: nothing to recover from
  CHECK_FALSE(rules.on_cycle(false, "AccountDB down", 200));
  CHECK_FALSE(rules.on_cycle(false, "AccountDB down", 300));
  const auto failed = rules.on_cycle(false, "AccountDB still down", 400);
  REQUIRE(failed);
  CHECK(failed->name == "sync_failed");
  CHECK(failed->fields["consecutive_failures"] == 3);
  CHECK(failed->fields["error"] == "AccountDB still down");
  CHECK(failed->fields["failing_since"] == 200);
  CHECK(failed->fields["last_success"] == 100);
  CHECK_FALSE(rules.on_cycle(false, "down", 500));  // said once
  const auto back = rules.on_cycle(true, "in sync", 600);
  REQUIRE(back);
  CHECK(back->name == "sync_recovered");
  CHECK(back->fields["failed_cycles"] == 4);
  CHECK_FALSE(rules.on_cycle(true, "in sync", 700));
  // Two failures and a success never reach the threshold.
  CHECK_FALSE(rules.on_cycle(false, "x", 800));
  CHECK_FALSE(rules.on_cycle(false, "x", 900));
  CHECK_FALSE(rules.on_cycle(true, "in sync", 1000));
}

TEST_CASE("webhook rules: redundancy changes after a settled baseline") {
  NotifyRules rules(3);
  CHECK_FALSE(rules.on_redundancy("proxmox", {"multi", true}, false));  // still unknown
  CHECK_FALSE(rules.on_redundancy("proxmox", {"multi", false}, true));  // the baseline
  CHECK_FALSE(rules.on_redundancy("proxmox", {"multi", false}, true));
  const auto e = rules.on_redundancy("proxmox", {"multi", true}, true);
  REQUIRE(e);
  CHECK(e->name == "redundancy");
  CHECK(e->fields["upstream"] == "proxmox");
  CHECK(e->fields["old_level"] == "multi");
  CHECK(e->fields["new_level"] == "multi");
  CHECK(e->fields["was_degraded"] == false);
  CHECK(e->fields["degraded"] == true);
  CHECK_FALSE(rules.on_redundancy("proxmox", {"multi", false}, false));   // unsettled: ignored
  CHECK_FALSE(rules.on_redundancy("accountdb", {"single", true}, true));  // its own baseline
  const auto level = rules.on_redundancy("proxmox", {"dual", true}, true);
  REQUIRE(level);
  CHECK(level->fields["new_level"] == "dual");
}

TEST_CASE("webhook rules: auth_failed once per streak of refused credentials") {
  NotifyRules rules(3);
  const Observation refused{FailureKind::auth, 5ms, "HTTP 401 authentication failure"};
  const auto first = rules.on_outcome("proxmox", "https://pve1:8006", refused);
  REQUIRE(first);
  CHECK(first->name == "auth_failed");
  CHECK(first->fields["target"] == "https://pve1:8006");
  CHECK(first->fields["error"] == "HTTP 401 authentication failure");
  CHECK_FALSE(rules.on_outcome("proxmox", "https://pve1:8006", refused));
  // A network failure says nothing about the credentials.
  CHECK_FALSE(rules.on_outcome("proxmox", "https://pve1:8006", {FailureKind::network, 1ms, "x"}));
  CHECK_FALSE(rules.on_outcome("proxmox", "https://pve1:8006", refused));
  // Another target is its own streak; an accepted answer ends one.
  CHECK(rules.on_outcome("accountdb", "https://adb:8080", refused));
  CHECK_FALSE(rules.on_outcome("proxmox", "https://pve1:8006", {FailureKind::ok, 1ms, ""}));
  CHECK(rules.on_outcome("proxmox", "https://pve1:8006", refused));
}

TEST_CASE("webhook rules: a failover event keeps the fields of /failover/events") {
  FailoverEvent f;
  f.id = 7;
  f.timestamp = 1700000000;
  f.target = FailoverTarget::proxmox;
  f.from = "https://pve1:8006";
  f.to = "https://pve2:8006";
  f.reason = "network: connection refused";
  f.kind = FailoverKind::automatic;
  const auto e = NotifyRules::on_failover(f);
  CHECK(e.name == "failover");
  CHECK(e.fields == to_json(f));
  f.kind = FailoverKind::recovery;
  CHECK(NotifyRules::on_failover(f).name == "recovery");
  f.kind = FailoverKind::manual;
  CHECK(NotifyRules::on_failover(f).name == "failover");
}

TEST_CASE("webhooks: a delivery carries the token and a valid signature") {
  test::FakeClock clock;
  test::FakeHttp http;
  http.on("POST /services/T0/SECRETPATH", test::http_answer(204, ""));
  Webhooks hooks(options(), std::make_unique<Peer>(http), clock, [] { return "pve1"; }, {});
  hooks.start();
  hooks.publish(event("failover", 1));
  hooks.publish(event("auth_failed", 2));  // not chosen: never sent
  REQUIRE(until(clock, [&] { return hooks.stats().receivers[0].delivered == 1; }));
  const auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  const auto& r = requests[0];
  CHECK(r.method == "POST");
  std::map<std::string, std::string> headers(r.headers.begin(), r.headers.end());
  CHECK(headers["Authorization"] == "Bearer hook-token");
  CHECK(headers["Content-Type"] == "application/json");
  CHECK(headers["X-Webhook-Event"] == "failover");
  CHECK(headers["X-Signature"] == webhook_signature("hook-token", r.body));
  const auto body = json::parse(r.body);
  CHECK(body["event"] == "failover");
  CHECK(body["node"] == "pve1");
  CHECK(body["n"] == 1);
  const auto stats = hooks.stats();
  CHECK(stats.published == 1);
  CHECK(stats.receivers[0].url == "https://hooks.example.net/...");
  CHECK(stats.receivers[0].queued == 0);
}

TEST_CASE("webhooks: a full queue drops the oldest event and counts it") {
  test::FakeClock clock;
  test::FakeHttp http;
  http.on("POST /services/T0/SECRETPATH", test::http_answer(200, "{}"));
  Webhooks hooks(options(3), std::make_unique<Peer>(http), clock, [] { return "pve1"; }, {});
  for (int i = 1; i <= 5; ++i) {  // not started: nothing leaves the queue yet
    hooks.publish(event("failover", i));
  }
  auto stats = hooks.stats();
  CHECK(stats.receivers[0].queued == 3);
  CHECK(stats.receivers[0].dropped_queue_full == 2);
  hooks.start();
  REQUIRE(until(clock, [&] { return hooks.stats().receivers[0].delivered == 3; }));
  std::vector<int> sent;
  for (const auto& r : http.requests()) {
    sent.push_back(json::parse(r.body)["n"].get<int>());
  }
  CHECK(sent == std::vector<int>{3, 4, 5});
}

TEST_CASE("webhooks: a dead receiver keeps its events until its breaker lets a trial through") {
  test::FakeClock clock;
  test::FakeHttp http;
  http.on("POST /services/T0/SECRETPATH",
          test::http_failure(FailureKind::network, "POST " + kUrl + ": connection refused"));
  Webhooks hooks(options(), std::make_unique<Peer>(http), clock, [] { return "pve1"; }, {});
  hooks.start();
  hooks.publish(event("failover", 1));
  hooks.publish(event("recovery", 2));
  REQUIRE(until(clock, [&] {
    const auto r = hooks.stats().receivers[0];
    return r.circuit == CircuitState::open && r.failed >= 1;
  }));
  auto stats = hooks.stats();
  CHECK(stats.receivers[0].failed >= 1);
  CHECK(stats.receivers[0].queued == 2);
  REQUIRE(stats.receivers[0].last_error);
  // The receiver's path (its secret) is not in the message.
  CHECK(stats.receivers[0].last_error->find("SECRETPATH") == std::string::npos);
  CHECK(stats.receivers[0].last_error->find("connection refused") != std::string::npos);
  // While open, nothing is sent however long the events wait.
  const auto tried = http.requests().size();
  clock.advance(30s);
  CHECK(http.requests().size() == tried);
  http.on("POST /services/T0/SECRETPATH", test::http_answer(200, "{}"));
  REQUIRE(until(clock, [&] { return hooks.stats().receivers[0].delivered == 2; }));
  CHECK(hooks.stats().receivers[0].circuit == CircuitState::closed);
  CHECK(hooks.stats().receivers[0].queued == 0);
}

TEST_CASE("webhooks: an event the receiver refuses is dropped and counted") {
  test::FakeClock clock;
  test::FakeHttp http;
  http.on("POST /services/T0/SECRETPATH", test::http_answer(400, "{\"error\":\"bad\"}"));
  Webhooks hooks(options(), std::make_unique<Peer>(http), clock, [] { return "pve1"; }, {});
  hooks.start();
  hooks.publish(event("failover", 1));
  REQUIRE(until(clock, [&] { return hooks.stats().receivers[0].dropped_rejected == 1; }));
  CHECK(hooks.stats().receivers[0].queued == 0);
  CHECK(hooks.stats().receivers[0].delivered == 0);
  CHECK(http.requests().size() == 1);  // a 4xx is not retried
}

TEST_CASE("webhooks: no token means no Authorization and no signature") {
  test::FakeClock clock;
  test::FakeHttp http;
  http.on("POST /services/T0/SECRETPATH", test::http_answer(200, "{}"));
  auto o = options();
  o.token.clear();
  Webhooks hooks(o, std::make_unique<Peer>(http), clock, [] { return "pve1"; }, {});
  hooks.start();
  hooks.publish(event("redundancy"));
  REQUIRE(until(clock, [&] { return hooks.stats().receivers[0].delivered == 1; }));
  const auto requests = http.requests();
  REQUIRE(requests.size() == 1);
  for (const auto& [name, value] : requests[0].headers) {
    CHECK(name != "Authorization");
    CHECK(name != "X-Signature");
  }
}

TEST_CASE("url_display: the origin of a URL whose path may hold a secret") {
  CHECK(url_display("https://hooks.example.net/services/T0/SECRET") ==
        "https://hooks.example.net/...");
  CHECK(url_display("https://hooks.example.net:8443") == "https://hooks.example.net:8443");
  CHECK(url_display("https://hooks.example.net/") == "https://hooks.example.net");
  CHECK(url_display("http://h?token=abc") == "http://h/...");
  CHECK(url_display("https://user:pw@h/x") == "https://h/...");
  CHECK(url_display("h.example/secret") == "h.example/...");
}

TEST_CASE("webhook_loops_back: the agent's own address and port") {
  CHECK(webhook_loops_back("http://127.0.0.1:8000/hook", "0.0.0.0", 8000));
  CHECK(webhook_loops_back("http://localhost:8000/hook", "127.0.0.1", 8000));
  CHECK(webhook_loops_back("https://10.0.0.5:8000", "10.0.0.5", 8000));
  CHECK(webhook_loops_back("http://[::1]:8000/x", "::", 8000));
  CHECK_FALSE(webhook_loops_back("http://127.0.0.1:9000/hook", "0.0.0.0", 8000));
  CHECK_FALSE(webhook_loops_back("http://127.0.0.1:8000/hook", "10.0.0.5", 8000));
  CHECK_FALSE(webhook_loops_back("http://10.0.0.6:8000/hook", "10.0.0.5", 8000));
  CHECK_FALSE(webhook_loops_back("http://127.0.0.1:8000/hook", "0.0.0.0", 0));
}

}  // namespace pha
