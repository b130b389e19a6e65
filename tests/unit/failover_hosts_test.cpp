// Choosing the Proxmox host (agent/upstream/host_manager.hpp) on a fake clock: the
// ordered list, failing over to the best peer, the return to the primary
// after its hold, discovery and aging, manual failover and reset.

#include <tuple>

#include <doctest/doctest.h>

#include "agent/upstream/host_manager.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

const std::string P = "https://127.0.0.1:8006";  // the primary
const std::string B = "https://10.0.0.2:8006";
const std::string C = "https://10.0.0.3:8006";

TargetView view(const std::string& url, HealthStatus s, CircuitState c = CircuitState::closed,
                std::optional<double> rt = 10.0) {
  TargetView v;
  v.info.url = url;
  v.health.status = s;
  v.state = s;
  v.source = StateSource::probed;
  v.health.circuit = c;
  v.health.response_time_ms = rt;
  return v;
}

Observation ok(std::chrono::milliseconds ms = 10ms) {
  return {FailureKind::ok, ms, ""};
}
Observation refused() {
  return {FailureKind::network, 0ms, "connection refused"};
}

struct World {
  test::FakeClock clock;
  UpstreamMonitor monitor{"proxmox", clock, HealthSettings{}};
  std::vector<FailoverEvent> events;
  double random = 0.5;
  HostManager hosts;

  explicit World(HostOptions o = options())
      : hosts(
            std::move(o), monitor, clock, [this] { return random; },
            [this](const FailoverEvent& e) { events.push_back(e); }) {}

  static HostOptions options() {
    HostOptions o;
    o.primary = P;
    o.configured = {B, C};
    o.max_hold = 30s;
    return o;
  }
  void observe(const std::string& url, const Observation& o, int times = 1) {
    for (int i = 0; i < times; ++i) {
      monitor.observe(url, o);
    }
  }
};

}  // namespace

TEST_CASE(
    "host order: preferred then healthy by score then unknown then unhealthy then half-open") {
  const auto H = HealthStatus::healthy;
  const auto U = HealthStatus::unknown;
  const auto X = HealthStatus::unhealthy;
  const std::vector<TargetView> hosts = {
      view("p", X, CircuitState::open),
      view("slow", H, CircuitState::closed, 500.0),
      view("half", X, CircuitState::half_open),
      view("new", U),
      view("fast", H, CircuitState::closed, 5.0),
      view("sick", X),
      view("pref", U),
  };
  CHECK(order_hosts(hosts, "pref", "p", 50) ==
        std::vector<std::string>{"pref", "fast", "slow", "new", "sick", "half"});
  // An open preferred host is not listed; excluded hosts are not either.
  CHECK(order_hosts(hosts, "p", "p", 50, {"fast"}) ==
        std::vector<std::string>{"slow", "new", "pref", "sick", "half"});
  // The primary's bonus puts it before a faster peer.
  const std::vector<TargetView> two = {view("peer", H, CircuitState::closed, 1.0),
                                       view("p", H, CircuitState::closed, 300.0)};
  CHECK(order_hosts(two, "", "p", 50) == std::vector<std::string>{"p", "peer"});
  CHECK(order_hosts(two, "", "p", 0) == std::vector<std::string>{"peer", "p"});
}

TEST_CASE("hosts: a failed local read moves to the best peer with an automatic event") {
  World w;
  w.observe(B, ok(50ms), 2);
  w.observe(C, ok(5ms), 2);
  CHECK(w.hosts.use_local());
  CHECK(w.hosts.has_usable_peer());
  w.hosts.local_failed("network: connection refused");
  CHECK(w.hosts.preferred() == C);
  CHECK_FALSE(w.hosts.use_local());
  REQUIRE(w.events.size() == 1);
  CHECK(w.events[0].target == FailoverTarget::proxmox);
  CHECK(w.events[0].from == P);
  CHECK(w.events[0].to == C);
  CHECK(w.events[0].kind == FailoverKind::automatic);
  CHECK(w.events[0].reason == "network: connection refused");
  CHECK(w.hosts.order().front() == C);
}

TEST_CASE("hosts: a cluster-wide call answered by another host makes it preferred") {
  World w;
  w.hosts.answered_by(B, "timeout on https://127.0.0.1:8006: timed out");
  CHECK(w.hosts.preferred() == B);
  REQUIRE(w.events.size() == 1);
  // Answered by the preferred host, or without a failure before: nothing changes.
  w.hosts.answered_by(C, "");
  CHECK(w.hosts.preferred() == B);
  CHECK(w.events.size() == 1);
}

TEST_CASE("hosts: the return to the primary waits for health and then the random hold") {
  World w;  // random 0.5: a hold of 15 s
  w.hosts.local_failed("network: connection refused");
  REQUIRE(w.hosts.preferred() == B);
  w.observe(P, refused(), 3);
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  w.clock.advance(61s);  // the breaker half-opens; one success closes it
  w.observe(P, ok());
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);  // not healthy yet: HEALTHY_THRESHOLD is 2
  w.observe(P, ok());
  w.hosts.evaluate();  // healthy: the hold starts now
  CHECK(w.hosts.preferred() == B);
  w.clock.advance(14s);
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  w.clock.advance(1s);
  CHECK(w.hosts.use_local());  // evaluates: the hold has passed
  CHECK(w.hosts.preferred() == P);
  REQUIRE(w.events.size() == 2);
  CHECK(w.events[1].kind == FailoverKind::recovery);
  CHECK(w.events[1].from == B);
  CHECK(w.events[1].to == P);
}

TEST_CASE("hosts: a primary that fails during its hold starts the hold again") {
  World w;
  w.hosts.local_failed("server: 500");
  w.observe(P, ok(), 2);
  w.hosts.evaluate();
  w.clock.advance(10s);
  w.observe(P, refused(), 3);
  w.hosts.evaluate();
  w.clock.advance(10s);
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  CHECK(w.events.size() == 1);
}

TEST_CASE("hosts: a primary that failed once is not returned to before it answers again") {
  World w;
  w.random = 0.0;  // no hold: only health decides
  w.observe(P, ok(), 2);
  w.observe(P, refused());  // one failure: still healthy (UNHEALTHY_THRESHOLD is 3)
  w.hosts.local_failed("timeout: timed out");
  REQUIRE(w.hosts.preferred() == B);
  CHECK_FALSE(w.hosts.use_local());
  w.clock.advance(60s);
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  w.observe(P, ok());  // HEALTHY_THRESHOLD is 2: one answer is not enough
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  w.observe(P, ok());
  CHECK(w.hosts.use_local());
  CHECK(w.hosts.preferred() == P);
}

TEST_CASE("hosts: discovery adds online peers and ages them out") {
  HostOptions o = World::options();
  o.configured = {};
  o.cleanup_age = 300s;
  World w(o);
  ClusterStatus st;
  st.nodes = {{"pve1", "127.0.0.1", true, true, 1},
              {"pve2", "10.0.0.2", true, false, 2},
              {"pve3", "10.0.0.3", false, false, 3},
              {"pve4", "", true, false, 4}};
  w.hosts.discovered(st);
  CHECK(w.hosts.hosts() == std::vector<std::string>{P, B});
  const auto b = w.monitor.target(B);
  REQUIRE(b);
  CHECK(b->info.source == "discovered");
  CHECK(b->info.node_name == "pve2");
  // Seen again at 200 s: its age restarts.
  w.clock.advance(200s);
  w.hosts.discovered(st);
  w.clock.advance(200s);
  st.nodes.resize(1);  // pve2 is gone from /cluster/status
  w.hosts.discovered(st);
  CHECK(w.hosts.hosts() == std::vector<std::string>{P, B});
  w.clock.advance(101s);
  w.hosts.age_out();
  CHECK(w.hosts.hosts() == std::vector<std::string>{P});
}

TEST_CASE("hosts: configured hosts never age out and discovery can be off") {
  HostOptions o = World::options();
  o.discover = false;
  World w(o);
  ClusterStatus st;
  st.nodes = {{"pve9", "10.0.0.9", true, false, 9}};
  w.hosts.discovered(st);
  w.clock.advance(3600s);
  w.hosts.age_out();
  CHECK(w.hosts.hosts() == std::vector<std::string>{P, B, C});
}

TEST_CASE("hosts: manual failover and reset") {
  World w;
  CHECK(w.hosts.prefer("https://unknown:8006") == "unknown Proxmox host: https://unknown:8006");
  w.observe(C, refused(), 3);
  CHECK(w.hosts.prefer(C) == "the circuit breaker of " + C + " is open");
  CHECK_FALSE(w.hosts.prefer(B).has_value());
  CHECK(w.hosts.preferred() == B);
  CHECK(w.hosts.manual());
  // An operator's choice is not undone by the primary being healthy.
  w.observe(P, ok(), 2);
  w.clock.advance(60s);
  w.hosts.evaluate();
  CHECK(w.hosts.preferred() == B);
  w.hosts.reset();
  CHECK(w.hosts.preferred() == P);
  CHECK_FALSE(w.hosts.manual());
  CHECK(w.monitor.circuit(C) == CircuitState::closed);
  REQUIRE(w.events.size() == 2);
  CHECK(w.events[0].kind == FailoverKind::manual);
  CHECK(w.events[1].kind == FailoverKind::manual);
  CHECK(w.events[1].reason == "failover reset through the API");
}

TEST_CASE("hosts: AUTO_FAILOVER false keeps the failed host until an operator moves it") {
  HostOptions o = World::options();
  o.auto_failover = false;
  World w(o);
  CHECK_FALSE(w.hosts.has_usable_peer());
  w.hosts.local_failed("network: connection refused");
  CHECK(w.hosts.preferred() == P);
  CHECK(w.hosts.order() == std::vector<std::string>{P});
  w.observe(P, refused(), 3);
  CHECK(w.hosts.order().empty());  // open: its requests fail without being sent
  w.hosts.answered_by(B, "network on P: refused");
  CHECK(w.hosts.preferred() == P);
  CHECK(w.events.empty());
  CHECK_FALSE(w.hosts.prefer(B).has_value());
  CHECK(w.hosts.preferred() == B);
  CHECK(w.hosts.order() == std::vector<std::string>{B});
}

TEST_CASE("hosts: AUTO_RECOVERY false stays on the peer after the primary recovers") {
  HostOptions o = World::options();
  o.auto_recovery = false;
  World w(o);
  w.hosts.local_failed("network: connection refused");
  REQUIRE(w.hosts.preferred() == B);
  w.observe(P, ok(), 2);
  w.hosts.evaluate();
  w.clock.advance(60s);
  CHECK_FALSE(w.hosts.use_local());
  CHECK(w.hosts.preferred() == B);
  w.hosts.reset();
  CHECK(w.hosts.preferred() == P);
}

TEST_CASE("host order: checked healthy before healthy by the cluster's word before offline") {
  auto reported = [](std::string url, HealthStatus state, StateSource source) {
    TargetView v = view(url, HealthStatus::unknown);
    v.state = state;
    v.source = source;
    return v;
  };
  const std::vector<TargetView> hosts = {
      reported("offline", HealthStatus::unhealthy, StateSource::cluster),
      reported("member", HealthStatus::healthy, StateSource::cluster),
      reported("nothing", HealthStatus::unknown, StateSource::none),
      view("checked", HealthStatus::healthy),
  };
  CHECK(order_hosts(hosts, "", "p", 50) ==
        std::vector<std::string>{"checked", "member", "nothing", "offline"});
}

TEST_CASE("hosts: a round probes the host in use and the first candidates only") {
  HostOptions o = World::options();
  const std::string D = "https://10.0.0.4:8006";
  const std::string E = "https://10.0.0.5:8006";
  o.configured = {B, C, D, E};
  World w(o);
  w.observe(D, ok(5ms), 2);  // the best candidate
  w.observe(B, ok(50ms), 2);
  CHECK(w.hosts.probe_targets(2) == std::vector<std::string>{P, D, B});
  auto probed = [&w] {
    std::vector<std::string> out;
    for (const auto& t : w.monitor.targets()) {
      if (t.probed) {
        out.push_back(t.info.url);
      }
    }
    return out;
  };
  CHECK(probed() == std::vector<std::string>{P, B, D});
  CHECK(w.hosts.probe_targets(0) == std::vector<std::string>{P});
  CHECK(w.hosts.probe_targets(1000) == std::vector<std::string>{P, D, B, C, E});
  // Failed over: the host in use, the primary (its return needs checks), then candidates.
  w.hosts.local_failed("network: connection refused");
  REQUIRE(w.hosts.preferred() == D);
  CHECK(w.hosts.probe_targets(1) == std::vector<std::string>{D, P, B});
}

TEST_CASE("hosts: membership gives the state of the hosts that are not probed") {
  HostOptions o = World::options();
  o.primary_node = "pve1";
  World w(o);
  ClusterStatus st;
  st.nodes = {{"pve1", "127.0.0.1", true, true, 1},
              {"pve2", "10.0.0.2", true, false, 2},
              {"pve3", "10.0.0.3", false, false, 3}};
  w.hosts.discovered(st);
  static_cast<void>(w.hosts.probe_targets(0));  // only the primary
  auto state = [&w](const std::string& url) {
    const auto t = w.monitor.target(url);
    REQUIRE(t);
    return std::make_tuple(*t->reported_online, t->state, t->source);
  };
  CHECK(state(B) == std::make_tuple(true, HealthStatus::healthy, StateSource::cluster));
  CHECK(state(C) == std::make_tuple(false, HealthStatus::unhealthy, StateSource::cluster));
  // The primary is probed but not decided yet: the cluster's word meanwhile, then its checks.
  CHECK(state(P) == std::make_tuple(true, HealthStatus::healthy, StateSource::cluster));
  w.observe(P, ok(), 2);
  CHECK(state(P) == std::make_tuple(true, HealthStatus::healthy, StateSource::probed));
  // A real request that failed speaks for a host that is not probed, while it is fresh.
  w.observe(B, refused(), 3);
  CHECK(state(B) == std::make_tuple(true, HealthStatus::unhealthy, StateSource::passive));
  w.clock.advance(61s);
  CHECK(state(B) == std::make_tuple(true, HealthStatus::healthy, StateSource::cluster));
  // Out of /cluster/status: nothing is known of a host that is not probed.
  st.nodes.resize(1);
  w.hosts.discovered(st);
  const auto c = w.monitor.target(C);
  REQUIRE(c);
  CHECK_FALSE(c->reported_online.has_value());
  CHECK(c->state == HealthStatus::unknown);
  CHECK(c->source == StateSource::none);
}
