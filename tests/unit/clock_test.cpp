#include "agent/core/clock.hpp"

#include <future>
#include <thread>

#include <doctest/doctest.h>

#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

TEST_CASE("a stop request ends a long real wait at once") {
  SystemClock clock;
  Interrupt interrupt;
  auto waiter = std::async(std::launch::async, [&] { return clock.wait_for(interrupt, 1h); });
  interrupt.request_stop();
  REQUIRE(waiter.wait_for(10s) == std::future_status::ready);
  CHECK(waiter.get() == WakeReason::stopped);
  // Once stopped, every later wait returns at once.
  CHECK(clock.wait_for(interrupt, 1h) == WakeReason::stopped);
  CHECK(interrupt.stop_requested());
}

TEST_CASE("a real wait ends at its deadline") {
  SystemClock clock;
  Interrupt interrupt;
  const auto start = clock.now();
  CHECK(clock.wait_for(interrupt, 20ms) == WakeReason::deadline);
  CHECK(clock.now() - start >= 20ms);
}

TEST_CASE("wake ends the current wait once - several wakes merge into one") {
  SystemClock clock;
  Interrupt interrupt;
  interrupt.wake();
  interrupt.wake();
  CHECK(clock.wait_for(interrupt, 1h) == WakeReason::woken);
  CHECK(clock.wait_for(interrupt, 1ms) == WakeReason::deadline);

  auto waiter = std::async(std::launch::async, [&] { return clock.wait_for(interrupt, 1h); });
  interrupt.wake();
  REQUIRE(waiter.wait_for(10s) == std::future_status::ready);
  CHECK(waiter.get() == WakeReason::woken);
}

TEST_CASE("stop wins over a pending wake") {
  SystemClock clock;
  Interrupt interrupt;
  interrupt.wake();
  interrupt.request_stop();
  CHECK(clock.wait_for(interrupt, 1h) == WakeReason::stopped);
}

TEST_CASE("a fake clock's wait ends only when the test advances time past the deadline") {
  test::FakeClock clock;
  Interrupt interrupt;
  const auto t0 = clock.now();
  auto waiter =
      std::async(std::launch::async, [&] { return clock.wait_until(interrupt, t0 + 60s); });
  REQUIRE(clock.await_waiters(1));
  clock.advance(59s);
  CHECK(waiter.wait_for(50ms) == std::future_status::timeout);
  clock.advance(1s);
  REQUIRE(waiter.wait_for(10s) == std::future_status::ready);
  CHECK(waiter.get() == WakeReason::deadline);
  CHECK(clock.now() - t0 == 60s);
  CHECK(clock.waiting() == 0);
}

TEST_CASE("a fake clock's wait also ends on stop - and wall time follows the fake time") {
  test::FakeClock clock;
  Interrupt interrupt;
  const auto wall0 = clock.unix_now();
  auto waiter = std::async(std::launch::async, [&] { return clock.wait_for(interrupt, 24h); });
  REQUIRE(clock.await_waiters(1));
  interrupt.request_stop();
  REQUIRE(waiter.wait_for(10s) == std::future_status::ready);
  CHECK(waiter.get() == WakeReason::stopped);
  clock.advance(90s);
  CHECK(clock.unix_now() == wall0 + 90);
}
