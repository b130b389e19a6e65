#pragma once
// The Agent runs the object graph (components.hpp): it starts the threads in
// order, pings systemd's watchdog while the sync loop moves, applies reloads
// and shuts everything down.

#include <functional>
#include <mutex>

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
  // it from its next action on, new upstream requests go out on transports
  // built from it, and a cycle with it runs at once (right after a cycle
  // that is running). The start-only settings keep their running value
  // (start_only.hpp); the answer names those that changed. The HTTPS
  // listener's certificate and key are read again first; a pair that does
  // not load refuses the whole reload (the error says why) and nothing changes.
  Result<std::vector<std::string>> reload(LoadedConfig config);

 private:
  int serve(Components& graph);
  // Blocks until stop(); meanwhile pings systemd's watchdog while `liveness` holds.
  void wait_for_stop(const std::function<Liveness()>& liveness);
  // The new certificate for the listener, when it serves HTTPS and will again.
  Status renew_tls(const Settings& next);

  LiveSettings settings_;
  Clock& clock_;
  RunOptions options_;
  Interrupt interrupt_;
  // The listener while it runs, for renew_tls. Held by serve() from building
  // the server to its start, so that a reload meanwhile waits and then reaches it.
  std::mutex server_mutex_;
  http::Server* server_ = nullptr;
};

}  // namespace pha
