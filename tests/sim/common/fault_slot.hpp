#pragma once
// The one fault at a time that a simulated server carries, as both
// simulators inject them. A fault whose kind is `down` closes the server's
// listener (connections are refused) until it is replaced or cleared; any
// other applies to the requests that match it, all of them or the next
// `count` (then it clears itself). A hanging answer lasts until the fault is
// set again, cleared, or the server stops.
//
// `Fault` has a `kind` whose enum has a `down`, and an
// std::optional<std::size_t> `count`.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "tests/sim/wire_server.hpp"

namespace pha::sim {

template <typename Fault>
class FaultSlot {
 public:
  using Kind = decltype(Fault::kind);

  explicit FaultSlot(WireServer& server) : server_(server) {}

  void set(const Fault& fault) {
    bool was_down = false;
    {
      std::lock_guard lock(mutex_);
      was_down = fault_ && fault_->kind == Kind::down;
      fault_ = fault;
      seen_ = 0;
      epoch_->fetch_add(1);
    }
    server_.notify();
    if (fault.kind == Kind::down) {
      server_.set_accepting(false);
    } else if (was_down) {
      server_.set_accepting(true);
    }
  }

  void clear() {
    {
      std::lock_guard lock(mutex_);
      fault_.reset();
      seen_ = 0;
      epoch_->fetch_add(1);
    }
    server_.notify();
    if (!server_.accepting()) {
      server_.set_accepting(true);
    }
  }

  std::optional<Fault> get() const {
    std::lock_guard lock(mutex_);
    return fault_;
  }

  bool down() const {
    std::lock_guard lock(mutex_);
    return fault_ && fault_->kind == Kind::down;
  }

  // Ends every hang (the server is stopping).
  void end_hangs() { epoch_->fetch_add(1); }

  // The fault a request meets.
  struct Hit {
    Fault fault;
    std::size_t index = 0;    // matching requests before this one since the fault was set
    std::uint64_t epoch = 0;  // for hang()
  };

  // The fault when there is one (not `down`) and `matches(fault)`; the
  // request counts against the fault's `count`.
  template <typename Matches>
  std::optional<Hit> take(Matches matches) {
    std::lock_guard lock(mutex_);
    if (!fault_ || fault_->kind == Kind::down || !matches(*fault_)) {
      return std::nullopt;
    }
    Hit hit{*fault_, seen_++, epoch_->load()};
    if (fault_->count && seen_ >= *fault_->count) {
      fault_.reset();
    }
    return hit;
  }

  // No answer, until the fault met at `epoch` is replaced or cleared.
  WireResponse hang(std::uint64_t epoch) const {
    WireResponse res;
    res.status = 0;
    res.fault = WireFault::hang;
    res.hang_while = [e = epoch_, epoch] { return e->load() == epoch; };
    return res;
  }

 private:
  WireServer& server_;
  mutable std::mutex mutex_;
  std::optional<Fault> fault_;
  std::size_t seen_ = 0;
  // Bumped by set, clear and end_hangs; shared with the hanging answers.
  std::shared_ptr<std::atomic<std::uint64_t>> epoch_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
};

}  // namespace pha::sim
