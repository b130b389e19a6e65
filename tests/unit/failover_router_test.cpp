// One request through several targets (agent/upstream/failover_router.hpp), on a fake
// clock: failing over at once on network failures, breakers that keep a dead
// target out, API errors that stop the failover, the retry budget.

#include "agent/upstream/failover_router.hpp"

#include <future>
#include <map>

#include <doctest/doctest.h>

#include "agent/core/url.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

// Answers by origin (scheme://host:port), records the URLs it was sent.
class Hosts final : public HttpClient {
 public:
  void set(const std::string& origin, HttpOutcome answer) {
    std::lock_guard lock(mutex_);
    answers_[origin] = std::move(answer);
  }
  HttpOutcome send(const HttpRequest& r) override {
    std::lock_guard lock(mutex_);
    sent_.push_back(r.url);
    const auto it = answers_.find(url_origin(r.url));
    return it == answers_.end() ? test::http_failure(FailureKind::network, "no route") : it->second;
  }
  std::size_t sent_to(const std::string& origin) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& u : sent_) {
      n += url_origin(u) == origin ? 1U : 0U;
    }
    return n;
  }
  std::vector<std::string> sent() const {
    std::lock_guard lock(mutex_);
    return sent_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, HttpOutcome> answers_;
  std::vector<std::string> sent_;
};

const std::string A = "https://a:8006";
const std::string B = "https://b:8006";
const std::string C = "https://c:8006";

HttpOutcome refused() {
  auto o = test::http_failure(FailureKind::network, "connection refused");
  return o;
}

struct World {
  test::FakeClock clock;
  Interrupt interrupt;
  UpstreamMonitor monitor{"proxmox", clock, HealthSettings{}};
  Hosts* hosts = nullptr;
  std::unique_ptr<FailoverRouter> router;

  World() {
    monitor.set_targets(
        {{A, "config", 1, 1, ""}, {B, "config", 1, 1, ""}, {C, "config", 1, 1, ""}});
    auto h = std::make_unique<Hosts>();
    hosts = h.get();
    RetryPolicy p;
    p.max_attempts = 3;
    router = std::make_unique<FailoverRouter>(
        std::make_unique<ObservingClient>(std::move(h), monitor), monitor, p, clock, interrupt,
        "Proxmox", [] { return 0.5; });
  }
  // Runs a request on another thread; fails the test if it has to wait on
  // the fake clock (a failover must not back off).
  Routed send(const std::vector<std::string>& order, bool revisit = true,
              const std::string& path = "/api2/json/cluster/resources") {
    HttpRequest r;
    r.url = A + path;
    r.any_target = true;
    auto f = std::async(std::launch::async, [&] { return router->send(r, A, order, revisit); });
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    return f.get();
  }
};

}  // namespace

TEST_CASE("router: a refused host fails over to the next one at once") {
  World w;
  w.hosts->set(A, refused());
  w.hosts->set(B, test::http_answer(200, "{\"data\":[]}"));
  const auto r = w.send({A, B, C});
  CHECK(r.outcome.ok());
  CHECK(r.target == B);
  CHECK(r.attempts == 2);
  REQUIRE(r.failed.size() == 1);
  CHECK(r.failed[0].first == A);
  CHECK(describe_failures(r.failed) == "network on https://a:8006: connection refused");
  CHECK(w.hosts->sent() == std::vector<std::string>{A + "/api2/json/cluster/resources",
                                                    B + "/api2/json/cluster/resources"});
}

TEST_CASE("router: an open breaker keeps the dead host out until its period ends") {
  World w;
  w.hosts->set(A, refused());
  w.hosts->set(B, test::http_answer(200, "{}"));
  for (int i = 0; i < 3; ++i) {
    CHECK(w.send({A, B}).target == B);
  }
  CHECK(w.monitor.circuit(A) == CircuitState::open);
  CHECK(w.hosts->sent_to(A) == 3);
  for (int i = 0; i < 5; ++i) {
    CHECK(w.send({A, B}).target == B);
  }
  CHECK(w.hosts->sent_to(A) == 3);  // not contacted while open
  w.clock.advance(61s);
  CHECK(w.monitor.circuit(A) == CircuitState::half_open);
  CHECK(w.send({A, B}).target == B);
  CHECK(w.hosts->sent_to(A) == 4);  // one trial
  CHECK(w.monitor.circuit(A) == CircuitState::open);
  CHECK(w.send({A, B}).target == B);
  CHECK(w.hosts->sent_to(A) == 4);
}

TEST_CASE("router: an API error stops the failover") {
  World w;
  w.hosts->set(A, test::http_answer(403, "", "Permission check failed"));
  w.hosts->set(B, test::http_answer(200, "{}"));
  const auto r = w.send({A, B});
  CHECK(r.outcome.kind == FailureKind::auth);
  CHECK(r.target == A);
  CHECK(w.hosts->sent_to(B) == 0);
  w.hosts->set(A, test::http_answer(501, "", "Method not implemented"));
  CHECK(w.send({A, B}).outcome.kind == FailureKind::client);
  CHECK(w.hosts->sent_to(B) == 0);
}

TEST_CASE("router: with every breaker open nothing is sent") {
  World w;
  w.hosts->set(A, refused());
  for (int i = 0; i < 3; ++i) {
    w.send({A}, false);
  }
  REQUIRE(w.monitor.circuit(A) == CircuitState::open);
  const auto before = w.hosts->sent().size();
  const auto r = w.send({A}, false);
  CHECK(r.attempts == 0);
  CHECK(r.outcome.kind == FailureKind::network);
  CHECK(r.outcome.error.find("every circuit breaker is open") != std::string::npos);
  CHECK(w.hosts->sent().size() == before);
}

TEST_CASE("router: without revisit a lone target gets one attempt") {
  World w;
  w.hosts->set(A, test::http_answer(500, ""));
  const auto r = w.send({A}, false);
  CHECK(r.attempts == 1);
  CHECK(r.outcome.kind == FailureKind::server);
}

TEST_CASE("router: at most RETRY_MAX_ATTEMPTS targets per request") {
  World w;
  w.monitor.set_targets({{A, "config", 1, 1, ""},
                         {B, "config", 1, 1, ""},
                         {C, "config", 1, 1, ""},
                         {"https://d:8006", "config", 1, 1, ""}});
  w.hosts->set(A, refused());
  w.hosts->set(B, refused());
  w.hosts->set(C, refused());
  w.hosts->set("https://d:8006", test::http_answer(200, "{}"));
  const auto r = w.send({A, B, C, "https://d:8006"});
  CHECK(r.attempts == 3);
  CHECK_FALSE(r.outcome.ok());
  CHECK(w.hosts->sent_to("https://d:8006") == 0);
}

TEST_CASE("router: an exhausted retry budget allows first attempts only") {
  World w;
  w.hosts->set(A, refused());
  w.hosts->set(B, refused());
  w.hosts->set(C, refused());
  // The first request fails on three targets (10 -> 7); the second stops
  // after two, when the bucket holds 5.
  w.send({A, B, C});
  w.send({A, B, C});
  CHECK(w.router->budget().tokens() == doctest::Approx(5.0));
  w.monitor.reset();  // breakers closed again: only the budget decides now
  const auto before = w.hosts->sent().size();
  const auto r = w.send({A, B, C});
  CHECK(r.attempts == 1);
  CHECK(w.hosts->sent().size() == before + 1);
}

TEST_CASE("router: a best-effort request does not take the half-open trial") {
  World w;
  w.hosts->set(A, refused());
  for (int i = 0; i < 3; ++i) {
    w.send({A}, false);
  }
  w.clock.advance(61s);
  REQUIRE(w.monitor.circuit(A) == CircuitState::half_open);
  HttpRequest best_effort;
  best_effort.url = A + "/api2/json/nodes/n/qemu/1/config";
  best_effort.retry = false;
  w.hosts->set(A, test::http_answer(200, "{}"));
  CHECK(w.router->send(best_effort, A, {A}, false).outcome.ok());
  // The trial is still free for a request that feeds the breaker.
  CHECK(w.monitor.allow(A));
}
