#pragma once
// The configuration in force, as one immutable snapshot. Components read it
// when they act (through a Live<T> that derives what they need); a reload
// replaces the snapshot whole, so no reader ever sees half of a reload.
// Thread-safe.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "agent/config/loader.hpp"
#include "agent/config/settings.hpp"
#include "agent/core/live.hpp"

namespace pha {

class LiveSettings {
 public:
  explicit LiveSettings(LoadedConfig config);
  explicit LiveSettings(Settings settings);

  std::shared_ptr<const LoadedConfig> config() const;
  std::shared_ptr<const Settings> get() const;

  // A Live value that derives its part of the settings in force at each read.
  // `this` must outlive it.
  template <class Derive>
  auto read(Derive derive) const {
    using T = std::decay_t<std::invoke_result_t<Derive, const Settings&>>;
    return Live<T>(std::function<T()>([this, derive] { return derive(*get()); }));
  }

  // Reload: the next read sees the new snapshot; then each listener runs.
  void replace(LoadedConfig config);

  // Runs a listener after every replace(), on the reloading thread, for as
  // long as the subscription lives; its destructor waits for a running call.
  class Subscription {
   public:
    Subscription(const LiveSettings& owner, std::uint64_t id) : owner_(&owner), id_(id) {}
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    const LiveSettings* owner_;
    std::uint64_t id_;
  };
  [[nodiscard]] Subscription on_replace(std::function<void()> listener) const;

 private:
  mutable std::mutex mutex_;  // the snapshot
  std::shared_ptr<const LoadedConfig> current_;
  mutable std::mutex listeners_mutex_;  // held while listeners run
  mutable std::vector<std::pair<std::uint64_t, std::function<void()>>> listeners_;
  mutable std::uint64_t next_id_ = 0;
};

}  // namespace pha
