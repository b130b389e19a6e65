#pragma once
// The Agent runs the object graph (components.hpp): it starts the threads in
// order, pings systemd's watchdog while the sync loop moves, applies reloads
// and shuts everything down.

#include <functional>

#include "agent/app/components.hpp"
#include "agent/config/live_settings.hpp"
#include "agent/config/loader.hpp"
#include "agent/core/clock.hpp"

namespace pha {

struct Liveness;

class Agent {
 public:
  Agent(LoadedConfig config, Clock& clock, RunOptions options = {});

  // Runs until stop() (or one cycle with `once`); returns the exit code.
  int run();
  // Safe from any thread; every wait ends at once.
  void stop();
  // Applies a new, already validated configuration (SIGHUP): every part reads
  // it from its next action on, and a cycle runs at once.
  void reload(LoadedConfig config);

 private:
  int serve(Components& graph);
  // Blocks until stop(); meanwhile pings systemd's watchdog while `liveness` holds.
  void wait_for_stop(const std::function<Liveness()>& liveness);

  LiveSettings settings_;
  Clock& clock_;
  RunOptions options_;
  Interrupt interrupt_;
};

}  // namespace pha
