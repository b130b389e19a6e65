// Hedged requests (agent/net/hedge.hpp, agent/upstream/upstream.hpp) on a
// fake clock: the delay from the target's own latency between the floor and
// the ceiling, the budget, the race (first good answer wins, the loser is
// abandoned), and what a lost race tells the monitor and the policy.

#include "agent/net/hedge.hpp"

#include <condition_variable>
#include <future>
#include <map>

#include <doctest/doctest.h>

#include "agent/core/url.hpp"
#include "agent/upstream/upstream.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

const HedgeSettings kDefaults{.delay_min = 50ms, .delay_max = 400ms, .budget_percent = 5};

// Blocks until `done` or `timeout` (real time): the bounded wait of a test.
template <class P>
bool eventually(P done, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) {
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

TEST_CASE("hedge: a request's kind leaves out host - query - numbers and node names") {
  HttpRequest r;
  r.url = "https://h:8006/api2/json/nodes/pve1/qemu?full=1";
  CHECK(request_kind(r) == "GET /api2/json/nodes/{}/qemu");
  r.method = "PUT";
  r.url = "http://adb/vms/agent/-104?api_key=secret";
  CHECK(request_kind(r) == "PUT /vms/agent/{}");
  r.method = "GET";
  r.url = "https://h:8006/api2/json/cluster/tasks";
  CHECK(request_kind(r) == "GET /api2/json/cluster/tasks");
}

TEST_CASE("hedge: the delay is the ceiling until the target has answered enough") {
  HedgePolicy p(kDefaults);
  const std::string t = "https://a:8006";
  CHECK(p.delay(t, "GET /x") == 400ms);
  for (std::size_t i = 0; i + 1 < HedgePolicy::kMinAnswers; ++i) {
    p.answered(t + "/api2/json/x", "GET /x", 5ms);
  }
  CHECK(p.delay(t, "GET /x") == 400ms);
  p.answered(t, "GET /x", 5ms);
  // Fast answers: the floor.
  CHECK(p.delay(t, "GET /x") == 50ms);
  // Another kind, or another target, has its own answers.
  CHECK(p.delay(t, "GET /y") == 400ms);
  CHECK(p.delay("https://b:8006", "GET /x") == 400ms);
}

TEST_CASE(
    "hedge: the delay is the 99th percentile of the last answers - within floor and ceiling") {
  HedgePolicy p(kDefaults);
  const std::string t = "https://a:8006";
  for (int i = 1; i <= 100; ++i) {
    p.answered(t, "GET /x", std::chrono::milliseconds(i * 2));  // 2 ms .. 200 ms
  }
  CHECK(p.delay(t, "GET /x") == 198ms);  // one answer in 100 is slower
  for (int i = 0; i < 100; ++i) {
    p.answered(t, "GET /x", 900ms);  // the window moves on: slower than the ceiling
  }
  CHECK(p.delay(t, "GET /x") == 400ms);
}

TEST_CASE("hedge: no hedging with a budget of 0 percent") {
  HedgePolicy p(HedgeSettings{.delay_min = 50ms, .delay_max = 400ms, .budget_percent = 0});
  CHECK_FALSE(p.delay("https://a:8006", "GET /x").has_value());
}

TEST_CASE("hedge: the budget holds 5 saved hedges - then each request earns its share") {
  HedgePolicy p(kDefaults);
  for (int i = 0; i < 5; ++i) {
    CHECK(p.take());
  }
  CHECK_FALSE(p.take());
  for (int i = 0; i < 19; ++i) {
    p.requested();
  }
  CHECK_FALSE(p.take());  // 19 requests at 5 % earn 0.95 of a hedge
  p.requested();
  CHECK(p.take());
  CHECK_FALSE(p.take());
  for (int i = 0; i < 1000; ++i) {
    p.requested();
  }
  int taken = 0;
  while (p.take()) {
    ++taken;
  }
  CHECK(taken == 5);  // no more than 5 are saved up
  const auto s = p.stats();
  CHECK(s.sent == 11);
  CHECK(s.refused == 4);
}

TEST_CASE("hedge: a first attempt that answers within the delay is not hedged") {
  test::FakeClock clock;
  Flights flights;
  bool hedged = false;
  auto r = race<int>(
      flights, clock, 100ms, [] { return true; }, [] { return 1; },
      [&] {
        hedged = true;
        return 2;
      },
      [](int) { return true; });
  CHECK(r.winner == 0);
  CHECK_FALSE(r.hedged);
  CHECK(*r.first == 1);
  CHECK_FALSE(hedged);
}

TEST_CASE(
    "hedge: a first attempt slower than the delay races a hedge - the first good answer wins") {
  test::FakeClock clock;
  Flights flights;
  std::atomic<bool> first_abandoned{false};
  auto f = std::async(std::launch::async, [&] {
    return race<int>(
        flights, clock, 100ms, [] { return true; },
        [&] {
          // A hung host: runs until its race abandons it.
          eventually([] { return abandoned(); });
          first_abandoned = abandoned();
          return 1;
        },
        [] { return 2; }, [](int) { return true; });
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(99ms);
  REQUIRE(clock.await_waiters(1));  // 1 ms to go: still waiting, no hedge
  clock.advance(1ms);
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  const auto r = f.get();
  CHECK(r.hedged);
  CHECK(r.winner == 1);
  CHECK(*r.second == 2);
  CHECK(r.first_ran >= 100ms);
  CHECK(eventually([&] { return first_abandoned.load(); }));
}

TEST_CASE("hedge: when the budget refuses - the first attempt is waited for") {
  test::FakeClock clock;
  Flights flights;
  std::promise<void> release;
  auto released = release.get_future().share();
  bool hedged = false;
  std::atomic<bool> asked{false};
  auto f = std::async(std::launch::async, [&] {
    return race<int>(
        flights, clock, 100ms,
        [&] {
          asked = true;
          return false;
        },
        [released] {
          released.wait();
          return 1;
        },
        [&] {
          hedged = true;
          return 2;
        },
        [](int) { return true; });
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(100ms);
  REQUIRE(eventually([&] { return asked.load(); }));  // the budget was asked, and said no
  release.set_value();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  const auto r = f.get();
  CHECK(r.winner == 0);
  CHECK_FALSE(r.hedged);
  CHECK_FALSE(hedged);
}

TEST_CASE("hedge: a failed hedge does not win - the first attempt's answer is used") {
  test::FakeClock clock;
  Flights flights;
  std::atomic<bool> hedge_ran{false};
  std::promise<void> release;
  auto released = release.get_future().share();
  auto f = std::async(std::launch::async, [&] {
    return race<int>(
        flights, clock, 100ms, [] { return true; },
        [released] {
          released.wait();
          return 1;
        },
        [&] {
          hedge_ran = true;
          return -1;
        },
        [](int v) { return v > 0; });
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(100ms);
  REQUIRE(eventually([&] { return hedge_ran.load(); }));
  release.set_value();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  const auto r = f.get();
  CHECK(r.hedged);
  CHECK(r.winner == 0);
  CHECK(*r.first == 1);
}

namespace {

const std::string A = "https://a:8006";
const std::string B = "https://b:8006";

// A answers only when released (or gives up when its attempt is abandoned);
// B answers at once.
class SlowA final : public HttpClient {
 public:
  HttpOutcome send(const HttpRequest& r) override {
    {
      std::lock_guard lock(mutex_);
      sent_.push_back(r.url);
    }
    if (url_origin(r.url) == B) {
      return test::http_answer(200, "from b");
    }
    std::unique_lock lock(mutex_);
    ++waiting_;
    while (!released_ && !abandoned()) {
      cv_.wait_for(lock, 1ms);
    }
    --waiting_;
    if (abandoned()) {
      abandoned_ = true;
      return test::http_failure(FailureKind::network, "aborted");
    }
    return test::http_answer(200, "from a");
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }
  std::vector<std::string> sent() const {
    std::lock_guard lock(mutex_);
    return sent_;
  }
  // Atomics: the test's bounded waits read them without taking the lock
  // that the waiting attempt needs.
  int waiting() const { return waiting_.load(); }
  bool was_abandoned() const { return abandoned_.load(); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool released_ = false;
  std::atomic<bool> abandoned_{false};
  std::atomic<int> waiting_{0};
  std::vector<std::string> sent_;
};

struct Pair {
  std::vector<Routed> answered;
  RoutePlan plan(const HttpRequest& r) const {
    return {.base = A, .order = {A, B}, .revisit = !r.any_target};
  }
  void answered_with(const Routed& r) { answered.push_back(r); }
};

struct PairPolicy {
  Pair* pair;
  RoutePlan plan(const HttpRequest& r) { return pair->plan(r); }
  void answered(const HttpRequest& /*request*/, const Routed& r) { pair->answered_with(r); }
};

struct UpstreamWorld {
  test::FakeClock clock;
  Interrupt interrupt;
  Pair pair;
  SlowA* hosts = nullptr;
  std::unique_ptr<Upstream<PairPolicy>> upstream;

  explicit UpstreamWorld(HedgeSettings hedge = kDefaults) {
    auto h = std::make_unique<SlowA>();
    hosts = h.get();
    upstream = std::make_unique<Upstream<PairPolicy>>(
        UpstreamOptions{.name = "proxmox",
                        .display = "Proxmox",
                        .health = HealthSettings{},
                        .retry = RetryPolicy{},
                        .hedge = hedge,
                        .transport = std::move(h),
                        .wrap = {}},
        clock, interrupt, [this](UpstreamMonitor& monitor, const std::function<double()>&) {
          monitor.set_targets({{A, "config", 1, 1, ""}, {B, "config", 1, 1, ""}});
          return std::make_unique<PairPolicy>(PairPolicy{&pair});
        });
  }
  std::future<HttpOutcome> send(bool any_target = true, bool idempotent = true) {
    HttpRequest r;
    r.url = A + "/api2/json/cluster/resources";
    r.any_target = any_target;
    r.idempotent = idempotent;
    return std::async(std::launch::async, [this, r] { return upstream->send(r); });
  }
};

}  // namespace

TEST_CASE(
    "hedge: a hung target is answered by the next one after the hedge delay - and loses its "
    "place") {
  UpstreamWorld w;
  auto f = w.send();
  REQUIRE(w.clock.await_waiters(1));
  REQUIRE(eventually([&] { return w.hosts->waiting() == 1; }));  // A has the request
  w.clock.advance(400ms);                                        // no answers yet: the ceiling
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  const auto o = f.get();
  CHECK(o.body == "from b");
  CHECK(eventually([&] { return w.hosts->was_abandoned(); }));
  const auto s = w.upstream->hedging().stats();
  CHECK(s.sent == 1);
  CHECK(s.won == 1);
  // A lost race counts as a timeout of A, and the policy hears of it.
  const auto a = w.upstream->monitor().target(A);
  REQUIRE(a.has_value());
  CHECK(a->health.consecutive_failures == 1);
  REQUIRE(w.pair.answered.size() == 1);
  CHECK(w.pair.answered[0].target == B);
  REQUIRE(w.pair.answered[0].failed.size() == 1);
  CHECK(w.pair.answered[0].failed[0].first == A);
  CHECK(w.pair.answered[0].failed[0].second.kind == FailureKind::timeout);
  w.hosts->release();
}

TEST_CASE("hedge: a create is never hedged - nor a node-local call") {
  for (const bool idempotent : {false, true}) {
    CAPTURE(idempotent);
    UpstreamWorld w;
    auto f = w.send(/*any_target=*/!idempotent, idempotent);
    REQUIRE(eventually([&] { return w.hosts->waiting() == 1; }));
    CHECK(w.clock.waiting() == 0);  // waits for A's answer, not for a hedge delay
    w.hosts->release();
    REQUIRE(f.wait_for(10s) == std::future_status::ready);
    CHECK(f.get().body == "from a");
    CHECK(w.upstream->hedging().stats().sent == 0);
    for (const auto& u : w.hosts->sent()) {
      CHECK(url_origin(u) == A);
    }
  }
}

TEST_CASE("hedge: an answer within the delay is used - nothing is sent twice") {
  UpstreamWorld w;
  auto f = w.send();
  REQUIRE(w.clock.await_waiters(1));
  w.hosts->release();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  CHECK(f.get().body == "from a");
  CHECK(w.hosts->sent().size() == 1);
  CHECK(w.upstream->hedging().stats().sent == 0);
}
