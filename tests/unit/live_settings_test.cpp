// Settings as one immutable snapshot (agent/config/live_settings.hpp) and what
// a reload does to the parts that read it when they act: a reader keeps the
// snapshot it took, a Live value sees the new one, listeners run once per
// reload for as long as they are subscribed, and the endpoint pool and the
// host manager apply a changed target list at their next decision.

#include "agent/config/live_settings.hpp"

#include <doctest/doctest.h>

#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/host_manager.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

Settings with_interval(int seconds) {
  Settings s;
  s.update_interval = seconds;
  return s;
}

AccountDbEndpoint endpoint(const std::string& url) {
  return {*parse_url(url, {"http", 80}), 1, 1};
}

}  // namespace

TEST_CASE("live settings: a reader keeps its snapshot - a Live value reads the new one") {
  LiveSettings live(with_interval(300));
  const auto taken = live.get();
  const auto interval = live.read([](const Settings& s) { return s.update_interval; });
  CHECK(interval() == 300);
  live.replace(LoadedConfig{with_interval(60)});
  CHECK(taken->update_interval == 300);  // a cycle that started keeps its settings
  CHECK(live.get()->update_interval == 60);
  CHECK(interval() == 60);
  CHECK(live.config()->settings.update_interval == 60);
}

TEST_CASE("live settings: listeners run after each replace while subscribed") {
  LiveSettings live(with_interval(300));
  int calls = 0;
  int seen = 0;
  {
    const auto subscription = live.on_replace([&] {
      ++calls;
      seen = live.get()->update_interval;  // the new snapshot is in place
    });
    live.replace(LoadedConfig{with_interval(60)});
    CHECK(calls == 1);
    CHECK(seen == 60);
  }
  live.replace(LoadedConfig{with_interval(30)});
  CHECK(calls == 1);  // unsubscribed
}

TEST_CASE("reload: the endpoint pool takes new endpoints at its next decision and keeps health") {
  test::FakeClock clock;
  UpstreamMonitor monitor("accountdb", clock, HealthSettings{});
  const std::string a = "http://adb1:8080";
  const std::string b = "http://adb2:8080";
  PoolOptions options{.endpoints = {endpoint(a)}};
  EndpointPool pool(Live<PoolOptions>([&options] { return options; }), monitor, clock, {});
  monitor.observe(a, {FailureKind::network, 0ms, "connection refused"});
  REQUIRE(pool.order() == std::vector<std::string>{a});

  options.endpoints = {endpoint(a), endpoint(b)};  // SIGHUP with a second endpoint
  const auto order = pool.order();
  CHECK(order.size() == 2);
  const auto kept = monitor.target(a);
  REQUIRE(kept);
  CHECK(kept->health.consecutive_failures == 1);  // the endpoint that stays keeps its health
  REQUIRE(monitor.target(b));

  options.endpoints = {endpoint(b)};
  CHECK(pool.order() == std::vector<std::string>{b});
  CHECK_FALSE(monitor.target(a));
}

TEST_CASE("reload: a new PROXMOX_HOST is preferred at the host manager's next decision") {
  test::FakeClock clock;
  UpstreamMonitor monitor("proxmox", clock, HealthSettings{});
  std::vector<FailoverEvent> events;
  HostOptions options;
  options.primary = "https://127.0.0.1:8006";
  HostManager hosts(
      Live<HostOptions>([&options] { return options; }), monitor, clock, [] { return 0.5; },
      [&events](const FailoverEvent& e) { events.push_back(e); });
  REQUIRE(hosts.preferred() == "https://127.0.0.1:8006");

  options.primary = "https://127.0.0.2:8006";
  options.configured = {"https://10.0.0.3:8006"};
  CHECK(hosts.use_local());  // the decision reads the options: the new primary, no fault
  CHECK(hosts.preferred() == "https://127.0.0.2:8006");
  CHECK(hosts.hosts() ==
        std::vector<std::string>{"https://127.0.0.2:8006", "https://10.0.0.3:8006"});
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == FailoverKind::manual);
  CHECK(events[0].reason == "the configuration changed");

  hosts.evaluate();  // the same options again: nothing changes
  CHECK(events.size() == 1);
}
