// Choosing the AccountDB endpoint: groups, strategies, the rest of the order, the fallback.

#include <map>

#include <doctest/doctest.h>

#include "agent/upstream/endpoint_selector.hpp"

using namespace pha;

namespace {

using Urls = std::vector<std::string>;

EndpointState ep(std::string url, int priority = 1, int weight = 1) {
  EndpointState e;
  e.url = std::move(url);
  e.priority = priority;
  e.weight = weight;
  return e;
}

// Closed breaker but a failure since the last success.
EndpointState failed(EndpointState e) {
  e.good_standing = false;
  return e;
}

EndpointState with_circuit(EndpointState e, CircuitState state) {
  e.circuit = state;
  e.good_standing = false;
  return e;
}

EndpointState open(EndpointState e) {
  return with_circuit(std::move(e), CircuitState::open);
}

EndpointState busy(EndpointState e, std::int64_t in_flight) {
  e.in_flight = in_flight;
  return e;
}

// The first URL of each of `n` calls.
Urls firsts(EndpointSelector& s, const std::vector<EndpointState>& eps, int n) {
  Urls out;
  for (int i = 0; i < n; ++i) {
    out.push_back(s.order(eps).front());
  }
  return out;
}

}  // namespace

TEST_CASE("endpoints: priority picks the first in configuration order") {
  EndpointSelector s;
  const std::vector<EndpointState> eps{ep("a"), ep("b"), ep("c")};
  CHECK(s.order(eps) == Urls{"a", "b", "c"});
  CHECK(s.order(eps) == Urls{"a", "b", "c"});  // sticky
}

TEST_CASE("endpoints: an endpoint not in good standing goes after the good ones") {
  EndpointSelector s;
  CHECK(s.order({failed(ep("a")), ep("b"), ep("c")}) == Urls{"b", "c", "a"});
  CHECK(s.order({with_circuit(ep("a"), CircuitState::half_open), ep("b")}) == Urls{"b", "a"});
}

TEST_CASE("endpoints: open endpoints are never listed") {
  EndpointSelector s;
  auto lying = open(ep("a"));
  lying.good_standing = true;  // an open breaker wins over the flag
  CHECK(s.order({lying, ep("b"), open(ep("c")), ep("d", 2), open(ep("e", 2))}) == Urls{"b", "d"});
}

TEST_CASE("endpoints: the lowest priority number with a good endpoint is the best group") {
  EndpointSelector s;
  CHECK(s.order({ep("dr", 2), ep("a", 1), ep("b", 1)}) == Urls{"a", "b", "dr"});
  CHECK(s.order({ep("x", 3), ep("dr", 2)}) == Urls{"dr", "x"});
}

TEST_CASE("endpoints: group 2 is used only when group 1 has nothing usable") {
  EndpointSelector s;
  CHECK(s.order({open(ep("a", 1)), open(ep("b", 1)), ep("dr", 2)}) == Urls{"dr"});
  CHECK(s.order({open(ep("a", 1)), ep("b", 1), ep("dr", 2)}) == Urls{"b", "dr"});
}

TEST_CASE("endpoints: a group with only failed endpoints yields to a group in good standing") {
  EndpointSelector s;
  CHECK(s.order({failed(ep("a", 1)), ep("dr", 2)}) == Urls{"dr", "a"});
  // With nobody in good standing anywhere, the lowest usable group comes first.
  CHECK(s.order({failed(ep("dr", 2)), failed(ep("a", 1))}) == Urls{"a", "dr"});
}

TEST_CASE("endpoints: when nothing is usable the first endpoint of the lowest number is alone") {
  EndpointSelector s;
  CHECK(s.order({open(ep("x", 2)), open(ep("y", 1)), open(ep("z", 1))}) == Urls{"y"});
  CHECK(s.order({open(ep("only", 5))}) == Urls{"only"});
}

TEST_CASE("endpoints: round_robin cycles over the candidates in order") {
  EndpointSelector s(Strategy::round_robin);
  const std::vector<EndpointState> eps{ep("a"), ep("b"), ep("c"), ep("dr", 2)};
  CHECK(firsts(s, eps, 7) == Urls{"a", "b", "c", "a", "b", "c", "a"});
}

TEST_CASE("endpoints: round_robin skips a candidate that falls out of good standing") {
  EndpointSelector s(Strategy::round_robin);
  CHECK(s.order({ep("a"), ep("b"), ep("c")}).front() == "a");
  CHECK(firsts(s, {ep("a"), failed(ep("b")), ep("c")}, 3) == Urls{"c", "a", "c"});
  // The last pick itself failing: the next one after its place in the configuration.
  CHECK(firsts(s, {ep("a"), ep("b"), failed(ep("c"))}, 3) == Urls{"a", "b", "a"});
  CHECK(firsts(s, {ep("a"), ep("b"), ep("c")}, 3) == Urls{"b", "c", "a"});
}

TEST_CASE("endpoints: weighted follows the nginx smooth weighted round robin sequence") {
  EndpointSelector s(Strategy::weighted);
  const std::vector<EndpointState> eps{ep("a", 1, 5), ep("b", 1, 1), ep("c", 1, 1)};
  CHECK(firsts(s, eps, 7) == Urls{"a", "a", "b", "a", "c", "a", "a"});
  CHECK(firsts(s, eps, 7) == Urls{"a", "a", "b", "a", "c", "a", "a"});  // and again
}

TEST_CASE("endpoints: weighted gives each endpoint exactly its weight in every window") {
  EndpointSelector s(Strategy::weighted);
  const std::vector<EndpointState> eps{ep("a", 1, 3), ep("b", 1, 2), ep("c", 1, 1)};
  std::map<std::string, int> total;
  for (int window = 0; window < 100; ++window) {
    std::map<std::string, int> in_window;
    for (const auto& url : firsts(s, eps, 6)) {
      ++in_window[url];
      ++total[url];
    }
    CHECK(in_window == std::map<std::string, int>{{"a", 3}, {"b", 2}, {"c", 1}});
  }
  CHECK(total == std::map<std::string, int>{{"a", 300}, {"b", 200}, {"c", 100}});
}

TEST_CASE("endpoints: weight 0 is never first while another candidate exists") {
  for (const auto strategy : {Strategy::priority, Strategy::round_robin, Strategy::weighted,
                              Strategy::least_connections}) {
    CAPTURE(to_string(strategy));
    EndpointSelector s(strategy);
    const std::vector<EndpointState> eps{busy(ep("drain", 1, 0), -5), ep("b"), ep("c")};
    for (int i = 0; i < 6; ++i) {
      const auto order = s.order(eps);
      CHECK(order.front() != "drain");
      CHECK(order.size() == 3);
    }
  }
}

TEST_CASE("endpoints: weight 0 endpoints are used when they are the only candidates") {
  EndpointSelector s(Strategy::weighted);
  CHECK(s.order({ep("drain", 1, 0), open(ep("b"))}) == Urls{"drain"});
  // All drained: they take equal turns.
  CHECK(firsts(s, {ep("x", 1, 0), ep("y", 1, 0)}, 4) == Urls{"x", "y", "x", "y"});
  EndpointSelector p;
  CHECK(p.order({ep("drain", 1, 0), failed(ep("b")), ep("dr", 2)}) == Urls{"drain", "b", "dr"});
}

TEST_CASE("endpoints: least_connections picks the fewest in flight with ties in config order") {
  EndpointSelector s(Strategy::least_connections);
  CHECK(s.order({busy(ep("a"), 3), busy(ep("b"), 1), busy(ep("c"), 1)}) == Urls{"b", "a", "c"});
  CHECK(s.order({busy(ep("a"), 2), busy(ep("b"), 2)}) == Urls{"a", "b"});
  CHECK(s.order({busy(ep("a"), 0), busy(ep("b"), -1)}) == Urls{"b", "a"});
  // Only the best group's candidates compete.
  CHECK(s.order({busy(ep("a"), 9), busy(failed(ep("b")), 0), busy(ep("dr", 2), 0)}) ==
        Urls{"a", "b", "dr"});
}

TEST_CASE("endpoints: after the first pick come its group then the other groups by priority") {
  const std::vector<EndpointState> eps{ep("a", 1), failed(ep("b", 1)), open(ep("c", 1)),
                                       ep("d", 1), failed(ep("e", 3)), ep("f", 3),
                                       ep("g", 2), open(ep("h", 2))};
  EndpointSelector s(Strategy::round_robin);
  CHECK(s.order(eps) == Urls{"a", "d", "b", "g", "f", "e"});
  CHECK(s.order(eps) == Urls{"d", "a", "b", "g", "f", "e"});
  EndpointSelector p;
  CHECK(p.order(eps) == Urls{"a", "d", "b", "g", "f", "e"});
}

TEST_CASE("endpoints: odd input never breaks the selector") {
  for (const auto strategy : {Strategy::priority, Strategy::round_robin, Strategy::weighted,
                              Strategy::least_connections}) {
    CAPTURE(to_string(strategy));
    EndpointSelector s(strategy);
    CHECK(s.order({}).empty());
    // A URL listed twice counts once: its first entry.
    CHECK(s.order({ep("a", 1, 0), ep("a", 1, 5), ep("b", 2)}) == Urls{"a", "b"});
    CHECK(s.order({open(ep("a")), ep("a")}) == Urls{"a"});
    CHECK(s.order({ep("x", 1, -3), busy(ep("y", 1, -1), -7)}).size() == 2);
  }
}

TEST_CASE("endpoints: set_strategy and reset forget the strategy's state") {
  const std::vector<EndpointState> eps{ep("a", 1, 2), ep("b", 1, 1)};
  EndpointSelector s(Strategy::round_robin);
  CHECK(firsts(s, eps, 1) == Urls{"a"});
  s.reset();
  CHECK(firsts(s, eps, 1) == Urls{"a"});  // not b
  s.set_strategy(Strategy::weighted);
  CHECK(s.strategy() == Strategy::weighted);
  CHECK(firsts(s, eps, 1) == Urls{"a"});
  s.reset();
  CHECK(firsts(s, eps, 1) == Urls{"a"});
  s.set_strategy(Strategy::weighted);
  CHECK(firsts(s, eps, 2) == Urls{"a", "b"});
}
