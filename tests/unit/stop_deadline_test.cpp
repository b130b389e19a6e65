// The bound on a stop (docs/settings.md "Signals": at most 10 s), on a fake clock.

#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "agent/platform/signals.hpp"
#include "tests/support/fake_clock.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

// Waits (in real time, bounded) until `fired` reaches `n`.
bool await_count(const std::atomic<int>& fired, int n) {
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < end) {
    if (fired.load() >= n) {
      return true;
    }
    std::this_thread::yield();
  }
  return fired.load() >= n;
}

}  // namespace

TEST_CASE("stop deadline: an armed deadline runs its action once the grace has passed") {
  test::FakeClock clock;
  std::atomic<int> fired{0};
  StopDeadline deadline(clock, 10s, [&fired] { ++fired; });
  deadline.arm();
  REQUIRE(clock.await_waiters(1));
  clock.advance(9s);
  CHECK(fired.load() == 0);
  clock.advance(1s);
  CHECK(await_count(fired, 1));
}

TEST_CASE("stop deadline: a stop that ends in time cancels it") {
  test::FakeClock clock;
  std::atomic<int> fired{0};
  {
    StopDeadline deadline(clock, 10s, [&fired] { ++fired; });
    deadline.arm();
    REQUIRE(clock.await_waiters(1));
    clock.advance(5s);
  }  // the destructor returns at once, without waiting for the grace
  clock.advance(1h);
  CHECK(fired.load() == 0);
}

TEST_CASE("stop deadline: nothing runs unless it is armed") {
  test::FakeClock clock;
  std::atomic<int> fired{0};
  {
    const StopDeadline deadline(clock, 10s, [&fired] { ++fired; });
    CHECK(clock.waiting() == 0);
  }
  CHECK(fired.load() == 0);
}

TEST_CASE("stop deadline: a second stop request does not extend the deadline") {
  test::FakeClock clock;
  std::atomic<int> fired{0};
  StopDeadline deadline(clock, 10s, [&fired] { ++fired; });
  deadline.arm();
  REQUIRE(clock.await_waiters(1));
  clock.advance(6s);
  deadline.arm();
  clock.advance(4s);
  CHECK(await_count(fired, 1));
  CHECK(fired.load() == 1);
}
