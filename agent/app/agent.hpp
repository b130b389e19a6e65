#pragma once
// The Agent wires the real pieces together and owns the threads and shutdown.
// Today it holds the settings and runs until it is asked to stop; the sync
// loop, the clients and the HTTP API hang off it as they arrive.

#include <mutex>

#include "agent/config/loader.hpp"
#include "agent/core/clock.hpp"

namespace pha {

class Agent {
 public:
  Agent(LoadedConfig config, Clock& clock);

  // Runs until stop(); returns the process exit code.
  int run();
  // Safe from any thread; every wait ends at once.
  void stop();
  // Applies a new, already validated configuration (SIGHUP).
  void reload(LoadedConfig config);

  Settings settings() const;

 private:
  mutable std::mutex mutex_;
  LoadedConfig config_;
  Clock& clock_;
  Interrupt interrupt_;
};

}  // namespace pha
