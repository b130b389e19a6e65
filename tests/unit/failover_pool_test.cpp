// The AccountDB endpoint in use (agent/upstream/endpoint_pool.hpp): failing
// over, going back, the switches, manual failover and recovery checks.

#include <doctest/doctest.h>

#include "agent/upstream/endpoint_pool.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

const std::string A = "http://adb1:8080";
const std::string B = "http://adb2:8080";

struct World {
  test::FakeClock clock;
  UpstreamMonitor monitor{"accountdb", clock, HealthSettings{}};
  std::vector<FailoverEvent> events;
  // What a reload changes; the pool reads it at each decision.
  PoolOptions options{.endpoints = {{*parse_url(A, {"", 0}), 1, 1}, {*parse_url(B, {"", 0}), 1, 1}},
                      .strategy = Strategy::priority};
  EndpointPool pool;

  World()
      : pool(Live<PoolOptions>([this] { return options; }), monitor, clock,
             [this](const FailoverEvent& e) { events.push_back(e); }) {}

  // Both endpoints answered enough checks to be healthy.
  void decided() {
    for (const auto& url : {A, B}) {
      for (int i = 0; i < HealthSettings{}.healthy_threshold; ++i) {
        monitor.observe(url, {FailureKind::ok, 5ms, ""});
      }
    }
  }
  // A request answered by `target` after the targets of `failed` failed.
  void answered(const std::string& target, const std::vector<std::string>& failed = {}) {
    Routed r;
    r.target = target;
    r.outcome.kind = FailureKind::ok;
    for (const auto& f : failed) {
      HttpOutcome o;
      o.kind = FailureKind::network;
      o.error = "connection refused";
      r.failed.emplace_back(f, o);
      monitor.observe(f, {FailureKind::network, 0ms, "connection refused"});
    }
    monitor.observe(target, {FailureKind::ok, 5ms, ""});
    pool.answered(r);
  }
};

}  // namespace

TEST_CASE("endpoint pool: a failed endpoint hands over at once and comes back after a check") {
  World w;
  w.decided();
  CHECK(w.pool.order() == std::vector<std::string>{A, B});
  w.answered(A);
  CHECK(w.events.empty());  // the first answer sets the endpoint in use silently
  w.answered(B, {A});
  CHECK(w.pool.active() == B);
  REQUIRE(w.events.size() == 1);
  CHECK(w.events[0].kind == FailoverKind::automatic);
  CHECK(w.events[0].reason == "network on http://adb1:8080: connection refused");
  // One failure is enough to move the traffic: A is no longer first.
  CHECK(w.pool.order() == std::vector<std::string>{B, A});
  REQUIRE(w.pool.to_check().size() == 1);
  CHECK(w.pool.to_check()[0].str() == A);
  // The recovery check succeeds: A is first again, and answering makes it the one in use.
  w.monitor.observe(A, {FailureKind::ok, 5ms, ""});
  CHECK(w.pool.to_check().empty());
  CHECK(w.pool.order() == std::vector<std::string>{A, B});
  w.answered(A);
  REQUIRE(w.events.size() == 2);
  CHECK(w.events[1].kind == FailoverKind::recovery);
  CHECK(w.events[1].to == A);
}

TEST_CASE("endpoint pool: AUTO_RECOVERY false stays on the endpoint in use") {
  World w;
  w.options.auto_recovery = false;
  w.answered(A);
  w.answered(B, {A});
  w.monitor.observe(A, {FailureKind::ok, 5ms, ""});
  CHECK(w.pool.order() == std::vector<std::string>{B, A});
  w.pool.reset();
  CHECK(w.pool.order().front() == A);
}

TEST_CASE("endpoint pool: AUTO_FAILOVER false sends to the endpoint in use only") {
  World w;
  w.options.auto_failover = false;
  CHECK(w.pool.order() == std::vector<std::string>{A});
  w.answered(A);
  for (int i = 0; i < 3; ++i) {
    w.monitor.observe(A, {FailureKind::network, 0ms, "refused"});
  }
  CHECK(w.pool.order() == std::vector<std::string>{A});  // open, and still the only one
  CHECK_FALSE(w.pool.prefer(B).has_value());
  CHECK(w.pool.order() == std::vector<std::string>{B});
  REQUIRE(w.events.size() == 1);
  CHECK(w.events[0].kind == FailoverKind::manual);
}

TEST_CASE("endpoint pool: manual failover refuses unknown and open endpoints") {
  World w;
  CHECK(w.pool.prefer("http://nowhere:1") == "unknown AccountDB endpoint: http://nowhere:1");
  for (int i = 0; i < 3; ++i) {
    w.monitor.observe(B, {FailureKind::network, 0ms, "refused"});
  }
  CHECK(w.pool.prefer(B) == "the circuit breaker of " + B + " is open");
  CHECK_FALSE(w.pool.prefer(A).has_value());
  CHECK(w.pool.order().front() == A);
}

TEST_CASE("endpoint pool: a backup no request reached is checked until it is healthy") {
  World w;
  w.answered(A);
  w.monitor.observe(A, {FailureKind::ok, 5ms, ""});
  // A answered twice and is healthy; nothing has reached B.
  REQUIRE(w.pool.to_check().size() == 1);
  CHECK(w.pool.to_check()[0].str() == B);
  w.monitor.observe(B, {FailureKind::ok, 5ms, ""});
  CHECK(w.pool.to_check().size() == 1);  // one answer is not yet healthy
  w.monitor.observe(B, {FailureKind::ok, 5ms, ""});
  CHECK(w.pool.to_check().empty());
}

TEST_CASE("endpoint pool: the first answer after a retry on the same endpoint is no failover") {
  World w;
  w.answered(A, {A});  // A failed once, then answered on the retry
  CHECK(w.pool.active() == A);
  CHECK(w.events.empty());
  w.answered(B, {A});  // A failed, B answered: that is a failover
  REQUIRE(w.events.size() == 1);
  CHECK(w.events[0].kind == FailoverKind::automatic);
  CHECK(w.events[0].from == A);
  CHECK(w.events[0].to == B);
}
