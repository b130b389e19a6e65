#pragma once
// Hedged requests (docs/failover.md "Hedged requests"): a request that has
// not answered within its hedge delay is sent once more, beside it, to the
// next candidate; the first good answer wins and the other attempt is
// abandoned. After "The Tail at Scale" (Dean and Barroso, 2013) and gRPC's
// hedging policy (gRFC A6):
// - the delay is the target's own recent latency for that kind of request
//   (the 99th percentile of its last answers), kept between HEDGE_DELAY_MIN
//   and HEDGE_DELAY_MAX; with too few answers to tell, the ceiling;
// - a budget bounds the extra requests: each request earns
//   HEDGE_BUDGET_PERCENT/100 of a hedge, up to kSavedHedges saved ones (a
//   new agent starts with them), and a hedge spends one; an empty budget
//   sends none, so in a long run hedges stay under that share of requests.
// Thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/net/http.hpp"

namespace pha {

struct HedgeSettings {
  std::chrono::milliseconds delay_min{50};   // HEDGE_DELAY_MIN
  std::chrono::milliseconds delay_max{400};  // HEDGE_DELAY_MAX
  double budget_percent = 5;                 // HEDGE_BUDGET_PERCENT; 0: no hedging
  bool operator==(const HedgeSettings&) const = default;
};

struct HedgeStats {
  std::uint64_t sent = 0;     // hedges sent
  std::uint64_t won = 0;      // hedges whose answer was used
  std::uint64_t refused = 0;  // hedges the budget did not allow
};

// "GET /nodes/{}/qemu": the kind of a request, whose latencies are compared
// with each other (no host, no query, numbers and node names left out).
std::string request_kind(const HttpRequest& request);

class HedgePolicy {
 public:
  static constexpr double kSavedHedges = 5;
  static constexpr std::size_t kWindow = 100;     // answers kept per target and kind
  static constexpr std::size_t kMinAnswers = 10;  // fewer: the ceiling

  explicit HedgePolicy(Live<HedgeSettings> settings);

  // `target`: a URL; its origin (scheme, host, port) tells the targets apart.
  // How long a request of `kind` to `target` may run before it is hedged;
  // none when hedging is off.
  std::optional<std::chrono::milliseconds> delay(const std::string& target,
                                                 const std::string& kind) const;
  // An answer (any HTTP status) that took `elapsed`.
  void answered(const std::string& target, const std::string& kind,
                std::chrono::milliseconds elapsed);
  // A request that is not a hedge: it earns its share of the budget.
  void requested();
  // A hedge about to be sent: true, spending one, when the budget allows.
  bool take();
  void won();
  HedgeStats stats() const;
  HedgeSettings settings() const { return settings_(); }

 private:
  struct Window {
    std::vector<std::chrono::milliseconds> answers;  // a ring of kWindow
    std::size_t next = 0;
  };
  Live<HedgeSettings> settings_;
  mutable std::mutex mutex_;
  std::map<std::string, Window> windows_;
  mutable std::set<std::string> capped_;  // said once each (hedge_delay_capped)
  double saved_ = kSavedHedges;
  HedgeStats stats_;
};

// Tells `policy` how long each answered request took (by the origin of its
// URL and its request_kind).
class HedgeObserver final : public HttpClient {
 public:
  HedgeObserver(std::unique_ptr<HttpClient> inner, HedgePolicy& policy)
      : inner_(std::move(inner)), policy_(policy) {}
  HttpOutcome send(const HttpRequest& request) override;
  void cancel() override { inner_->cancel(); }

 private:
  std::unique_ptr<HttpClient> inner_;
  HedgePolicy& policy_;
};

// The threads of hedged attempts, joined when they are done and at the latest
// in the destructor: declare it after everything its attempts use.
class Flights {
 public:
  Flights() = default;
  ~Flights();
  Flights(const Flights&) = delete;
  Flights& operator=(const Flights&) = delete;
  void launch(std::function<void()> work);

 private:
  struct Flight {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void reap_locked();
  std::mutex mutex_;
  std::vector<Flight> flights_;
};

template <class T>
struct Raced {
  std::optional<T> first;   // what the first attempt gave, if it finished in time
  std::optional<T> second;  // the hedge's, if one was sent and finished in time
  int winner = -1;          // 0, 1, or -1 when neither gave a good answer
  bool hedged = false;
  // How long the first attempt had run when the race was decided.
  Clock::Duration first_ran{};
};

namespace hedge_detail {
template <class T>
struct RaceState {
  std::mutex mutex;
  std::optional<T> result[2];
  std::shared_ptr<std::atomic<bool>> abandon[2] = {std::make_shared<std::atomic<bool>>(false),
                                                   std::make_shared<std::atomic<bool>>(false)};
  Interrupt finished;
};
}  // namespace hedge_detail

// Runs `first` on a thread of `flights`. If it has not finished within
// `delay` and `may_hedge()` says yes, `second` runs beside it. The first good
// answer (`good`) wins, or, when neither is good, both are waited for; the
// attempt still running is abandoned (AbandonScope). Time is `clock`'s.
template <class T>
Raced<T> race(Flights& flights, Clock& clock, Clock::Duration delay,
              const std::function<bool()>& may_hedge, std::function<T()> first,
              std::function<T()> second, const std::function<bool(const T&)>& good) {
  using State = hedge_detail::RaceState<T>;
  auto state = std::make_shared<State>();
  const auto start = clock.now();
  const auto run = [&flights, state](int i, std::function<T()> work) {
    flights.launch([state, i, work = std::move(work)] {
      const AbandonScope scope(state->abandon[i]);
      auto r = work();
      {
        std::lock_guard lock(state->mutex);
        state->result[i] = std::move(r);
      }
      state->finished.wake();
    });
  };
  // Waits until `decided` (under the lock) says the race is over, or `until`.
  const auto wait = [&](Clock::TimePoint until, const auto& decided) {
    for (;;) {
      {
        std::lock_guard lock(state->mutex);
        if (decided()) {
          return true;
        }
      }
      if (clock.now() >= until) {
        return false;
      }
      clock.wait_until(state->finished, until);
    }
  };
  const auto far = [&clock] { return clock.now() + std::chrono::hours(24); };
  Raced<T> out;
  const auto finish = [&](int winner) {
    std::lock_guard lock(state->mutex);
    out.winner = winner;
    out.first_ran = clock.now() - start;
    out.first = std::move(state->result[0]);
    out.second = std::move(state->result[1]);
    for (int i = 0; i < 2; ++i) {
      if (i != winner) {
        state->abandon[i]->store(true, std::memory_order_release);
      }
    }
    return std::move(out);
  };
  run(0, std::move(first));
  const auto first_done = [&] { return state->result[0].has_value(); };
  if (wait(start + delay, first_done) || !may_hedge()) {
    while (!wait(far(), first_done)) {
    }
    const bool ok = good(*state->result[0]);
    return finish(ok ? 0 : -1);
  }
  out.hedged = true;
  run(1, std::move(second));
  int winner = -1;
  const auto decided = [&] {
    for (int i = 0; i < 2; ++i) {
      if (state->result[i] && good(*state->result[i])) {
        winner = i;
        return true;
      }
    }
    return state->result[0].has_value() && state->result[1].has_value();
  };
  while (!wait(far(), decided)) {
  }
  return finish(winner);
}

}  // namespace pha
