#pragma once
// The Agent wires the real pieces together and owns the threads and shutdown:
// the Proxmox and AccountDB clients, the sync engine and its loop.

#include <mutex>

#include "agent/config/loader.hpp"
#include "agent/core/clock.hpp"

namespace pha {

class AccountDbClient;
class SyncEngine;
class SyncLoop;

struct RunOptions {
  bool once = false;     // one cycle, its report as JSON on stdout
  bool dry_run = false;  // send nothing that writes to AccountDB
};

class Agent {
 public:
  Agent(LoadedConfig config, Clock& clock, RunOptions options = {});

  // Runs until stop() (or one cycle with `once`); returns the exit code.
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
  RunOptions options_;
  Interrupt interrupt_;
  SyncEngine* engine_ = nullptr;  // set while run() runs
  SyncLoop* loop_ = nullptr;
  AccountDbClient* accountdb_ = nullptr;
};

}  // namespace pha
