// docs/failover.md "Retries and backoff": the delay table, the Retry-After floor,
// the retry budget, the decision rules, and the executor on a fake clock.

#include "agent/net/retry.hpp"

#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "agent/core/backoff.hpp"
#include "agent/platform/logging.hpp"
#include "agent/upstream/failover_router.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/log_capture.hpp"

using namespace pha;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

namespace {

HttpOutcome outcome(FailureKind kind, int status = 0, bool maybe_sent = true) {
  HttpOutcome o;
  o.kind = kind;
  o.status = status;
  o.maybe_sent = maybe_sent;
  return o;
}

HttpOutcome rate_limited(std::optional<std::chrono::seconds> retry_after) {
  auto o = outcome(FailureKind::rate_limited, 429);
  o.retry_after = retry_after;
  return o;
}

HttpRequest get() {
  return HttpRequest{};
}

HttpRequest create() {
  HttpRequest r;
  r.method = "PUT";
  r.body = "{}";
  r.idempotent = false;
  return r;
}

// Answers from a script; the last answer repeats.
class ScriptedClient final : public HttpClient {
 public:
  explicit ScriptedClient(std::vector<HttpOutcome> script)
      : script_(script.begin(), script.end()) {}
  HttpOutcome send(const HttpRequest& /*request*/) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    auto o = script_.front();
    if (script_.size() > 1) {
      script_.pop_front();
    }
    return o;
  }
  int calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::deque<HttpOutcome> script_;
  int calls_ = 0;
};

// Waits (in real time, bounded) until `pred` holds.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) {
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

struct DelayRow {
  int retry;
  double random;
  long long expected_ms;
};

}  // namespace

TEST_CASE("backoff_delay table: base x 2^(n-1) - capped - then jittered by 20 percent") {
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  const DelayRow rows[] = {
      {1, 0.5, 1000},     {2, 0.5, 2000},      {3, 0.5, 4000},  {4, 0.5, 8000},
      {7, 0.5, 64000},    {8, 0.5, 120000},  // 128 s capped at 120 s
      {30, 0.5, 120000},  {1000, 0.5, 120000}, {1, 0.0, 800},   {1, 0.999, 1200},  // -20 % .. +20 %
      {3, 0.0, 3200},     {3, 0.75, 4400},     {3, 0.25, 3600}, {8, 0.0, 96000},
      {8, 0.999, 143952},  // the cap applies before the jitter
      {0, 0.5, 1000},      // n < 1 counts as the first retry
  };
  for (const auto& r : rows) {
    CAPTURE(r.retry);
    CAPTURE(r.random);
    CHECK(backoff_delay(p, r.retry, r.random).count() == r.expected_ms);
  }
  const RetryPolicy fast{3, 50ms, 1000ms, 0.2};
  CHECK(backoff_delay(fast, 1, 0.5) == 50ms);
  CHECK(backoff_delay(fast, 2, 0.5) == 100ms);
  CHECK(backoff_delay(fast, 6, 0.5) == 1000ms);
  const RetryPolicy no_jitter{3, 1000ms, 120'000ms, 0.0};
  CHECK(backoff_delay(no_jitter, 2, 0.0) == 2000ms);
  CHECK(backoff_delay(no_jitter, 2, 0.999) == 2000ms);
}

TEST_CASE("backoff_delay stays within 20 percent of the nominal delay for any random value") {
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  for (int n = 1; n <= 10; ++n) {
    const double nominal = std::min(120'000.0, 1000.0 * static_cast<double>(1 << (n - 1)));
    for (int i = 0; i < 100; ++i) {
      const double r = i / 100.0;
      const auto d = static_cast<double>(backoff_delay(p, n, r).count());
      CHECK(d >= nominal * 0.8 - 0.5);
      CHECK(d <= nominal * 1.2 + 0.5);
    }
  }
}

TEST_CASE("backoff_delay is never below Retry-After") {
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  CHECK(backoff_delay(p, 1, 0.5, 30'000ms) == 30'000ms);
  CHECK(backoff_delay(p, 1, 0.5, 500ms) == 1000ms);
  CHECK(backoff_delay(p, 8, 0.999, 600'000ms) == 600'000ms);  // above the cap too
}

TEST_CASE("reconnect schedule: 5 s - doubling - capped at RETRY_MAX_DELAY - never gives up") {
  const DelayRow rows[] = {
      {1, 0.5, 5000},  {2, 0.5, 10000},  {3, 0.5, 20000},  {4, 0.5, 40000},
      {5, 0.5, 80000}, {6, 0.5, 120000}, {7, 0.5, 120000}, {500, 0.5, 120000},
      {1, 0.0, 4000},  {1, 0.999, 5998}, {6, 0.0, 96000},
  };
  for (const auto& r : rows) {
    CAPTURE(r.retry);
    CAPTURE(r.random);
    CHECK(reconnect_delay(120'000ms, r.retry, r.random).count() == r.expected_ms);
  }
  // A cap below the base wins.
  CHECK(reconnect_delay(3000ms, 1, 0.5) == 3000ms);
  CHECK(reconnect_policy(120'000ms).max_attempts > 1'000'000);
}

TEST_CASE("retry budget: 10 tokens - a failure takes 1 - retries only above 5") {
  RetryBudget b;
  CHECK(b.tokens() == doctest::Approx(10));
  CHECK(b.allows_retry());
  for (int i = 0; i < 4; ++i) {
    b.on_failure();
  }
  CHECK(b.tokens() == doctest::Approx(6));
  CHECK(b.allows_retry());
  b.on_failure();
  CHECK(b.tokens() == doctest::Approx(5));
  CHECK_FALSE(b.allows_retry());  // 5 or fewer: first attempts only
  b.on_success();
  CHECK(b.tokens() == doctest::Approx(5.1));
  CHECK(b.allows_retry());
  b.on_failure();
  CHECK(b.tokens() == doctest::Approx(4.1));
  CHECK_FALSE(b.allows_retry());
}

TEST_CASE("retry budget: successes give back a tenth each - exactly - up to 10") {
  RetryBudget b;
  for (int i = 0; i < 20; ++i) {
    b.on_failure();
  }
  CHECK(b.tokens() == 0.0);  // never negative
  for (int i = 0; i < 50; ++i) {
    b.on_success();
  }
  CHECK(b.tokens() == 5.0);  // exact: kept in thousandths
  CHECK_FALSE(b.allows_retry());
  b.on_success();
  CHECK(b.allows_retry());
  for (int i = 0; i < 1000; ++i) {
    b.on_success();
  }
  CHECK(b.tokens() == 10.0);
}

TEST_CASE("retry budget: record counts ok as success and the retryable kinds as failures") {
  RetryBudget b;
  b.record(FailureKind::network);
  b.record(FailureKind::timeout);
  b.record(FailureKind::server);
  b.record(FailureKind::rate_limited);
  CHECK(b.tokens() == 6.0);
  b.record(FailureKind::tls);
  b.record(FailureKind::auth);
  b.record(FailureKind::client);
  CHECK(b.tokens() == 6.0);
  b.record(FailureKind::ok);
  CHECK(b.tokens() == doctest::Approx(6.1));
}

TEST_CASE("retry budget is thread-safe") {
  RetryBudget b;
  for (int i = 0; i < 10; ++i) {
    b.on_failure();
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b] {
      for (int i = 0; i < 25; ++i) {
        b.on_success();
        (void)b.allows_retry();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(b.tokens() == 10.0);
}

TEST_CASE("decide: ok - tls - auth and client are never retried") {
  const RetryPolicy p;
  const RetryBudget b;
  for (auto kind : {FailureKind::ok, FailureKind::tls, FailureKind::auth, FailureKind::client}) {
    CAPTURE(to_string(kind));
    const auto d = decide(p, b, 1, get(), outcome(kind), true, 0.5);
    CHECK_FALSE(d.retry);
    CHECK(d.delay == 0ms);
    CHECK_FALSE(d.why.empty());
  }
}

TEST_CASE("decide: network and timeout fail over to a new target at once - else back off") {
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  const RetryBudget b;
  for (auto kind : {FailureKind::network, FailureKind::timeout}) {
    CAPTURE(to_string(kind));
    auto d = decide(p, b, 1, get(), outcome(kind), true, 0.5);
    CHECK(d.retry);
    CHECK(d.delay == 0ms);
    d = decide(p, b, 1, get(), outcome(kind), false, 0.5);
    CHECK(d.retry);
    CHECK(d.delay == 1000ms);
    d = decide(p, b, 2, get(), outcome(kind), false, 0.0);
    CHECK(d.retry);
    CHECK(d.delay == 1600ms);
  }
  // A server error backs off even on a new target.
  auto d = decide(p, b, 1, get(), outcome(FailureKind::server, 503), true, 0.5);
  CHECK(d.retry);
  CHECK(d.delay == 1000ms);
  // ...and never below its Retry-After.
  auto busy = outcome(FailureKind::server, 503);
  busy.retry_after = 10s;
  d = decide(p, b, 1, get(), busy, false, 0.5);
  CHECK(d.retry);
  CHECK(d.delay == 10s);
}

TEST_CASE("decide: rate limited waits max(Retry-After - 1 s)") {
  const RetryPolicy p;
  const RetryBudget b;
  auto d = decide(p, b, 1, get(), rate_limited(7s), true, 0.5);
  CHECK(d.retry);
  CHECK(d.delay == 7s);
  d = decide(p, b, 1, get(), rate_limited(0s), false, 0.5);
  CHECK(d.retry);
  CHECK(d.delay == 1s);
  d = decide(p, b, 1, get(), rate_limited(std::nullopt), false, 0.5);
  CHECK(d.retry);
  CHECK(d.delay == 1s);
}

TEST_CASE("decide: attempts are capped and the budget is consulted") {
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  RetryBudget b;
  CHECK(decide(p, b, 2, get(), outcome(FailureKind::network), false, 0.5).retry);
  const auto last = decide(p, b, 3, get(), outcome(FailureKind::network), false, 0.5);
  CHECK_FALSE(last.retry);
  CHECK(last.why.find("3 of 3") != std::string::npos);
  const RetryPolicy once{1, 1000ms, 120'000ms, 0.2};
  CHECK_FALSE(decide(once, b, 1, get(), outcome(FailureKind::network), true, 0.5).retry);

  for (int i = 0; i < 5; ++i) {
    b.on_failure();
  }
  const auto throttled = decide(p, b, 1, get(), outcome(FailureKind::network), true, 0.5);
  CHECK_FALSE(throttled.retry);
  CHECK(throttled.why.find("budget") != std::string::npos);
}

TEST_CASE("decide: a non-idempotent request is retried only when surely not sent or on 429") {
  const RetryPolicy p;
  const RetryBudget b;
  // Refused, DNS, TLS before sending: it did not reach the server.
  CHECK(decide(p, b, 1, create(), outcome(FailureKind::network, 0, false), true, 0.5).retry);
  CHECK(decide(p, b, 1, create(), outcome(FailureKind::timeout, 0, false), true, 0.5).retry);
  // 429: the server refused it.
  CHECK(decide(p, b, 1, create(), rate_limited(2s), false, 0.5).retry);
  // A reset, a timeout or a 5xx after sending: it may have been applied.
  for (auto o : {outcome(FailureKind::network), outcome(FailureKind::timeout),
                 outcome(FailureKind::server, 503), outcome(FailureKind::server, 500)}) {
    CAPTURE(o.status);
    const auto d = decide(p, b, 1, create(), o, true, 0.5);
    CHECK_FALSE(d.retry);
    CHECK(d.why.find("idempotent") != std::string::npos);
  }
  // The same outcomes retry an idempotent request.
  CHECK(decide(p, b, 1, get(), outcome(FailureKind::server, 503), true, 0.5).retry);
}

TEST_CASE("send_with_retry: a success needs no wait") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::ok, 200)});
  const auto o =
      send_with_retry(client, get(), RetryPolicy{}, budget, clock, interrupt, [] { return 0.5; });
  CHECK(o.ok());
  CHECK(client.calls() == 1);
  CHECK(budget.tokens() == 10.0);
}

TEST_CASE("send_with_retry backs off on the clock until a success") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::network), outcome(FailureKind::server, 503),
                         outcome(FailureKind::ok, 200)});
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  const auto t0 = clock.now();
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(client, get(), p, budget, clock, interrupt, [] { return 0.5; });
  });
  REQUIRE(clock.await_waiters(1));
  CHECK(client.calls() == 1);
  clock.advance(999ms);
  CHECK(result.wait_for(50ms) == std::future_status::timeout);
  clock.advance(1ms);  // the first retry after 1 s
  // The second retry waits 2 s: wait until the first one was sent and it waits again.
  REQUIRE(eventually([&] { return client.calls() == 2; }));
  REQUIRE(clock.await_waiters(1));
  CHECK(client.calls() == 2);
  clock.advance(2000ms);
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  const auto o = result.get();
  CHECK(o.ok());
  CHECK(client.calls() == 3);
  CHECK(clock.now() - t0 == 3000ms);
  CHECK(budget.tokens() == doctest::Approx(8.1));
}

TEST_CASE("send_with_retry gives up after max attempts and returns the last outcome") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::timeout)});
  const RetryPolicy p{2, 100ms, 1000ms, 0.2};
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(client, get(), p, budget, clock, interrupt, [] { return 0.5; });
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(100ms);
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK(result.get().kind == FailureKind::timeout);
  CHECK(client.calls() == 2);
}

TEST_CASE("send_with_retry does not retry tls - auth - client or a maybe-sent create") {
  for (auto kind : {FailureKind::tls, FailureKind::auth, FailureKind::client}) {
    test::FakeClock clock;
    Interrupt interrupt;
    RetryBudget budget;
    ScriptedClient client({outcome(kind), outcome(FailureKind::ok, 200)});
    const auto o =
        send_with_retry(client, get(), RetryPolicy{}, budget, clock, interrupt, [] { return 0.5; });
    CHECK(o.kind == kind);
    CHECK(client.calls() == 1);
  }
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::network, 0, true), outcome(FailureKind::ok, 200)});
  const auto o = send_with_retry(client, create(), RetryPolicy{}, budget, clock, interrupt,
                                 [] { return 0.5; });
  CHECK(o.kind == FailureKind::network);
  CHECK(client.calls() == 1);
}

TEST_CASE("send_with_retry waits Retry-After on a 429") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({rate_limited(7s), outcome(FailureKind::ok, 200)});
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(client, create(), RetryPolicy{}, budget, clock, interrupt,
                           [] { return 0.5; });
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(6999ms);
  CHECK(result.wait_for(50ms) == std::future_status::timeout);
  clock.advance(1ms);
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK(result.get().ok());
  CHECK(client.calls() == 2);
}

TEST_CASE("send_with_retry: a stop request ends a backoff wait at once") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::server, 503), outcome(FailureKind::ok, 200)});
  const RetryPolicy p{3, 60'000ms, 120'000ms, 0.2};
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(client, get(), p, budget, clock, interrupt, [] { return 0.5; });
  });
  REQUIRE(clock.await_waiters(1));
  interrupt.request_stop();
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  const auto o = result.get();
  CHECK(o.kind == FailureKind::server);
  CHECK(o.status == 503);
  CHECK(client.calls() == 1);
}

TEST_CASE("send_with_retry: a wake-up does not cut the backoff short and is passed on") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::network), outcome(FailureKind::ok, 200)});
  const RetryPolicy p{3, 1000ms, 120'000ms, 0.2};
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(client, get(), p, budget, clock, interrupt, [] { return 0.5; });
  });
  REQUIRE(clock.await_waiters(1));
  interrupt.wake();
  CHECK(result.wait_for(50ms) == std::future_status::timeout);
  CHECK(client.calls() == 1);
  clock.advance(1000ms);
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK(result.get().ok());
  // The caller's next wait sees the wake-up.
  CHECK(clock.wait_for(interrupt, 1h) == WakeReason::woken);
}

TEST_CASE("send_with_retry logs each retry at debug level without the URL or secrets") {
  test::LogCapture logs;
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::network), outcome(FailureKind::ok, 200)});
  HttpRequest r;
  r.url = "https://adb:8080/api/vms?api_key=topsecretkey";
  r.headers = {{"X-API-Key", "topsecretkey"}};
  auto result = std::async(std::launch::async, [&] {
    return send_with_retry(
        client, r, RetryPolicy{}, budget, clock, interrupt, [] { return 0.5; }, "AccountDB");
  });
  REQUIRE(clock.await_waiters(1));
  clock.advance(1000ms);
  REQUIRE(result.wait_for(10s) == std::future_status::ready);
  CHECK(result.get().ok());
  REQUIRE(logs.lines.size() == 1);
  const auto& line = logs.lines[0];
  CHECK(line.find(" debug http_retry: ") != std::string::npos);
  CHECK(line.find("upstream=accountdb") != std::string::npos);
  CHECK(line.find("attempt=2") != std::string::npos);
  CHECK(line.find("kind=network") != std::string::npos);
  CHECK(line.find("delay_ms=1000") != std::string::npos);
  CHECK(line.find("topsecretkey") == std::string::npos);
  CHECK(line.find("adb:8080") == std::string::npos);
}

TEST_CASE("send_with_retry: an exhausted budget allows first attempts only") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  for (int i = 0; i < 4; ++i) {
    budget.on_failure();
  }
  ScriptedClient client({outcome(FailureKind::network), outcome(FailureKind::ok, 200)});
  // This failure takes the 5th token: no retry.
  const auto o =
      send_with_retry(client, get(), RetryPolicy{}, budget, clock, interrupt, [] { return 0.5; });
  CHECK(o.kind == FailureKind::network);
  CHECK(client.calls() == 1);
}

TEST_CASE("send_with_retry: a best-effort request gets one attempt and leaves the budget alone") {
  test::FakeClock clock;
  Interrupt interrupt;
  RetryBudget budget;
  ScriptedClient client({outcome(FailureKind::server, 500), outcome(FailureKind::ok, 200)});
  auto request = get();
  request.retry = false;
  for (int i = 0; i < 8; ++i) {
    const auto o = send_with_retry(client, request, RetryPolicy{}, budget, clock, interrupt,
                                   [] { return 0.5; });
    CHECK(o.kind == (i == 0 ? FailureKind::server : FailureKind::ok));
  }
  CHECK(client.calls() == 8);
  CHECK(budget.tokens() == doctest::Approx(10.0));
  CHECK(budget.allows_retry());
}

TEST_CASE("random source: numbers are from 0 up to 1 and request ids are 16 distinct hex digits") {
  RandomSource random;
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const double r = random();
    CHECK(r >= 0.0);
    CHECK(r < 1.0);
    const auto id = random.hex_id();
    REQUIRE(id.size() == 16);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    ids.insert(id);
  }
  CHECK(ids.size() == 1000);  // 64 random bits: a repeat in 1000 is about 3e-14 likely
}
