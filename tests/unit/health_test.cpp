// Circuit breakers and target health on a fake clock (docs/failover.md
// "Breakers" and "Target health"), and the upstream monitor that feeds them.

#include <atomic>
#include <functional>
#include <thread>

#include <doctest/doctest.h>

#include "agent/http/api.hpp"
#include "agent/upstream/circuit_breaker.hpp"
#include "agent/upstream/health_checker.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/target_health.hpp"
#include "agent/upstream/upstream_monitor.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

Clock::TimePoint at(std::chrono::milliseconds ms) {
  return Clock::TimePoint{} + ms;
}

Observation fail(std::string error = "connection refused") {
  return {FailureKind::network, 0ms, std::move(error)};
}

Observation ok(std::chrono::milliseconds ms = 10ms) {
  return {FailureKind::ok, ms, ""};
}

}  // namespace

TEST_CASE("breaker: opens after the threshold and half-opens after the open period") {
  CircuitBreaker b(BreakerSettings{.threshold = 3, .reset = 60s, .max_open = 300s});
  CHECK(b.state(at(0ms)) == CircuitState::closed);
  b.on_failure(at(0ms));
  b.on_failure(at(1s));
  CHECK(b.state(at(1s)) == CircuitState::closed);
  CHECK(b.allow(at(1s)));
  b.on_failure(at(2s));
  CHECK(b.state(at(2s)) == CircuitState::open);
  CHECK_FALSE(b.allow(at(2s)));
  CHECK(b.state(at(61s)) == CircuitState::open);
  CHECK(b.state(at(62s)) == CircuitState::half_open);
  // One trial at a time.
  CHECK(b.allow(at(62s)));
  CHECK_FALSE(b.allow(at(62s)));
  b.on_success(at(63s));
  CHECK(b.state(at(63s)) == CircuitState::closed);
  CHECK(b.consecutive_failures() == 0);
}

TEST_CASE("breaker: the open period doubles on each re-open and is capped") {
  CircuitBreaker b(BreakerSettings{.threshold = 1, .reset = 60s, .max_open = 300s});
  auto now = at(0ms);
  std::vector<long long> periods;
  for (int i = 0; i < 6; ++i) {
    b.on_failure(now);  // closed -> open, or the half-open trial failed
    REQUIRE(b.state(now) == CircuitState::open);
    periods.push_back(std::chrono::duration_cast<std::chrono::seconds>(b.open_period()).count());
    now = b.open_until();
    REQUIRE(b.state(now) == CircuitState::half_open);
    REQUIRE(b.allow(now));
  }
  CHECK(periods == std::vector<long long>{60, 120, 240, 300, 300, 300});
  // A success resets the growth.
  b.on_success(now);
  b.on_failure(now);
  CHECK(b.open_period() == 60s);
}

TEST_CASE("breaker: a first period above the cap is kept as configured") {
  CircuitBreaker b(BreakerSettings{.threshold = 1, .reset = 600s, .max_open = 300s});
  b.on_failure(at(0ms));
  CHECK(b.open_period() == 600s);
  b.on_failure(b.open_until());
  CHECK(b.open_period() == 600s);
}

TEST_CASE("breaker: reset closes it and forgets the failures") {
  CircuitBreaker b(BreakerSettings{.threshold = 2, .reset = 60s, .max_open = 300s});
  b.on_failure(at(0ms));
  b.on_failure(at(0ms));
  REQUIRE(b.state(at(0ms)) == CircuitState::open);
  b.reset();
  CHECK(b.state(at(0ms)) == CircuitState::closed);
  b.on_failure(at(0ms));
  CHECK(b.state(at(0ms)) == CircuitState::closed);
}

TEST_CASE("target health: rise 2 and fall 3") {
  TargetHealth t(HealthSettings{
      .healthy_threshold = 2, .unhealthy_threshold = 3, .breaker = {.threshold = 5}});
  CHECK(t.status(at(0ms)) == HealthStatus::unknown);
  t.observe(ok(), at(0ms), 100);
  CHECK(t.status(at(0ms)) == HealthStatus::unknown);
  CHECK(t.observe(ok(), at(1s), 101));  // the status changed
  CHECK(t.status(at(1s)) == HealthStatus::healthy);
  t.observe(fail(), at(2s), 102);
  t.observe(fail(), at(3s), 103);
  CHECK(t.status(at(3s)) == HealthStatus::healthy);
  t.observe(fail(), at(4s), 104);
  CHECK(t.status(at(4s)) == HealthStatus::unhealthy);
  t.observe(ok(), at(5s), 105);
  CHECK(t.status(at(5s)) == HealthStatus::unhealthy);
  t.observe(ok(), at(6s), 106);
  CHECK(t.status(at(6s)) == HealthStatus::healthy);
}

TEST_CASE("target health: an open breaker is always unhealthy") {
  TargetHealth t(HealthSettings{
      .healthy_threshold = 1, .unhealthy_threshold = 3, .breaker = {.threshold = 1}});
  t.observe(ok(), at(0ms), 100);
  REQUIRE(t.status(at(0ms)) == HealthStatus::healthy);
  t.observe(fail(), at(1s), 101);
  const auto s = t.snapshot(at(1s));
  CHECK(s.circuit == CircuitState::open);
  CHECK(s.status == HealthStatus::unhealthy);
}

TEST_CASE("target health: counts decay on success and the snapshot keeps the last error") {
  TargetHealth t(HealthSettings{
      .healthy_threshold = 2, .unhealthy_threshold = 3, .breaker = {.threshold = 10}});
  t.observe(fail("timeout after 5000 ms"), at(0ms), 100);
  t.observe(fail("timeout after 5000 ms"), at(1s), 101);
  auto s = t.snapshot(at(1s));
  CHECK(s.failure_count == 2);
  CHECK(s.consecutive_failures == 2);
  CHECK(s.last_error == "timeout after 5000 ms");
  CHECK_FALSE(s.last_seen.has_value());
  CHECK_FALSE(s.last_ok);
  t.observe(ok(20ms), at(2s), 102);
  s = t.snapshot(at(2s));
  CHECK(s.failure_count == 1);
  CHECK(s.consecutive_failures == 0);
  CHECK(s.last_seen == 102);
  CHECK(s.last_ok);
  CHECK(s.last_checked == 102);
  CHECK(s.last_response_ms == 20);
  CHECK(s.calls == 3);
  CHECK(s.failures == 2);
}

TEST_CASE("target health: the response time is a moving average of successes") {
  TargetHealth t;
  t.observe(ok(100ms), at(0ms), 1);
  CHECK(t.snapshot(at(0ms)).response_time_ms == doctest::Approx(100.0));
  t.observe(ok(200ms), at(0ms), 1);
  CHECK(t.snapshot(at(0ms)).response_time_ms == doctest::Approx(130.0));
  t.observe(fail(), at(0ms), 1);  // failures do not move it
  CHECK(t.snapshot(at(0ms)).response_time_ms == doctest::Approx(130.0));
}

TEST_CASE("target health: an API error shows the host answers but is not ok") {
  TargetHealth t(HealthSettings{
      .healthy_threshold = 1, .unhealthy_threshold = 3, .breaker = {.threshold = 1}});
  t.observe({FailureKind::auth, 5ms, "401 token rejected"}, at(0ms), 7);
  const auto s = t.snapshot(at(0ms));
  CHECK(s.status == HealthStatus::healthy);
  CHECK(s.circuit == CircuitState::closed);
  CHECK_FALSE(s.last_ok);
  CHECK(s.last_seen == 7);
  CHECK(s.last_error == "401 token rejected");
}

TEST_CASE("score: the formula of docs/failover.md - Proxmox hosts") {
  TargetSnapshot healthy;
  healthy.status = HealthStatus::healthy;
  healthy.circuit = CircuitState::closed;
  struct Row {
    std::optional<double> rt;
    std::int64_t failures;
    bool primary;
    std::optional<double> score;
  };
  const Row rows[] = {
      {0.0, 0, false, 100.0},  {50.0, 0, false, 95.0},  {50.0, 0, true, 145.0},
      {2000.0, 0, false, 0.0}, {100.0, 2, false, 70.0}, {std::nullopt, 0, true, 150.0},
      {300.0, 1, true, 110.0},
  };
  for (const auto& r : rows) {
    auto t = healthy;
    t.response_time_ms = r.rt;
    t.failure_count = r.failures;
    CAPTURE(r.rt.value_or(-1));
    CHECK(host_score(t, r.primary, 50) == r.score);
  }
  auto unhealthy = healthy;
  unhealthy.status = HealthStatus::unhealthy;
  CHECK_FALSE(host_score(unhealthy, true, 50).has_value());
  auto half_open = healthy;
  half_open.circuit = CircuitState::half_open;
  CHECK_FALSE(host_score(half_open, true, 50).has_value());
}

TEST_CASE("redundancy: level by count and the degraded rules") {
  auto view = [](std::string url, HealthStatus s) {
    TargetView v;
    v.info.url = std::move(url);
    v.health.status = s;
    v.state = s;
    return v;
  };
  const auto H = HealthStatus::healthy;
  const auto U = HealthStatus::unhealthy;
  auto r = redundancy_of({view("a", H)}, "a");
  CHECK(r.level == "single");
  CHECK(r.degraded);  // no backup
  r = redundancy_of({view("a", H), view("b", H)}, "a");
  CHECK(r.level == "dual");
  CHECK_FALSE(r.degraded);
  r = redundancy_of({view("a", U), view("b", H)}, "a");
  CHECK(r.degraded);  // the active one is unhealthy
  r = redundancy_of({view("a", H), view("b", U), view("c", U)}, "a");
  CHECK(r.level == "multi");
  CHECK(r.degraded);  // fewer than half healthy
  r = redundancy_of({view("a", H), view("b", H), view("c", U)}, "a");
  CHECK_FALSE(r.degraded);
}

TEST_CASE("monitor: attempts are counted per target and kind and feed its health") {
  test::FakeClock clock;
  UpstreamMonitor m("proxmox", clock, HealthSettings{.healthy_threshold = 1});
  m.set_targets({{"https://pve1:8006", "config", 1, 1, "pve1"}});
  std::vector<TargetChange> changes;
  m.set_change_observer([&](const TargetChange& c) { changes.push_back(c); });

  HttpRequest req;
  req.url = "https://pve1:8006/api2/json/nodes/pve1/qemu";
  HttpOutcome good;
  good.kind = FailureKind::ok;
  good.status = 200;
  good.elapsed = 12ms;
  m.begin(req);
  CHECK(m.targets().at(0).in_flight == 1);
  m.end(req, good);
  auto t = m.targets().at(0);
  CHECK(t.in_flight == 0);
  CHECK(t.by_kind[static_cast<std::size_t>(FailureKind::ok)] == 1);
  CHECK(t.health.status == HealthStatus::healthy);
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].url == "https://pve1:8006");

  // A best-effort request (guest agent) is counted, but says nothing about health.
  HttpRequest best_effort = req;
  best_effort.retry = false;
  HttpOutcome server_error;
  server_error.kind = FailureKind::server;
  server_error.status = 500;
  for (int i = 0; i < 5; ++i) {
    m.begin(best_effort);
    m.end(best_effort, server_error);
  }
  t = m.targets().at(0);
  CHECK(t.by_kind[static_cast<std::size_t>(FailureKind::server)] == 5);
  CHECK(t.health.status == HealthStatus::healthy);
  CHECK(t.health.consecutive_failures == 0);

  // A health check counts, though it is a single attempt.
  HttpRequest check = req;
  check.retry = true;
  check.health_check = true;
  for (int i = 0; i < 3; ++i) {
    m.begin(check);
    m.end(check, server_error);
  }
  t = m.targets().at(0);
  CHECK(t.health.status == HealthStatus::unhealthy);
  CHECK(t.health.last_error == "HTTP 500");
  const auto c = m.connection_health();
  CHECK(c.total_calls == 9);
  CHECK(c.total_failures == 3);
  CHECK(c.consecutive_failures == 3);
  CHECK(c.average_response_time_ms == doctest::Approx(12.0));
}

TEST_CASE("monitor: a request URL belongs to the longest matching base URL") {
  test::FakeClock clock;
  UpstreamMonitor m("accountdb", clock, HealthSettings{});
  m.set_targets(
      {{"http://adb:8080", "config", 1, 1, ""}, {"http://adb:8080/v2", "config", 2, 1, ""}});
  HttpRequest req;
  req.url = "http://adb:8080/v2/proxmox-nodes/agent-node/3?api_key=secret";
  HttpOutcome o;
  o.kind = FailureKind::ok;
  m.begin(req);
  m.end(req, o);
  CHECK(m.target("http://adb:8080/v2")->health.calls == 1);
  CHECK(m.target("http://adb:8080")->health.calls == 0);
  // An unknown origin becomes a target of its own, without path or query.
  req.url = "http://other:9/x?api_key=secret";
  m.begin(req);
  m.end(req, o);
  const auto other = m.target("http://other:9");
  REQUIRE(other.has_value());
  CHECK(other->info.source == "discovered");
}

TEST_CASE("monitor: set_targets keeps the health of targets that stay") {
  test::FakeClock clock;
  UpstreamMonitor m("accountdb", clock, HealthSettings{});
  m.set_targets({{"http://a:1", "config", 1, 1, ""}});
  m.observe("http://a:1", fail());
  m.set_targets({{"http://a:1", "config", 1, 3, ""}, {"http://b:1", "config", 2, 1, ""}});
  const auto targets = m.targets();
  REQUIRE(targets.size() == 2);
  CHECK(targets[0].health.failure_count == 1);
  CHECK(targets[0].info.weight == 3);
  CHECK(targets[1].health.calls == 0);
}

TEST_CASE("health checker: a reload's reschedule measures the wait again with the new interval") {
  test::FakeClock clock;
  std::atomic<int> rounds{0};
  std::atomic<long long> interval_s{300};
  HealthChecker checker(
      clock, [&] { ++rounds; },
      Live<std::chrono::seconds>(std::function<std::chrono::seconds()>(
          [&] { return std::chrono::seconds(interval_s.load()); })));
  checker.start();
  REQUIRE(clock.await_waiters(1));
  CHECK(rounds == 1);  // one round at start
  clock.advance(20s);
  REQUIRE(clock.await_waiters(1));
  CHECK(rounds == 1);

  interval_s = 10;  // SIGHUP: HEALTH_CHECK_INTERVAL=10
  checker.reschedule();
  // 20 s since the last round is more than 10 s (+10 %): the next one is due now.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (rounds < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(rounds == 2);
  REQUIRE(clock.await_waiters(1));
  clock.advance(8s);  // below the shortest jittered new interval
  REQUIRE(clock.await_waiters(1));
  CHECK(rounds == 2);
  clock.advance(4s);
  const auto later = std::chrono::steady_clock::now() + 10s;
  while (rounds < 3 && std::chrono::steady_clock::now() < later) {
    std::this_thread::yield();
  }
  CHECK(rounds == 3);
  checker.stop();
}
