#pragma once
// The Agent wires the real pieces together and owns the threads and shutdown:
// the Proxmox and AccountDB clients and their monitors, the sync engine and
// its loop, the health checks, the status store and the HTTP API.

#include <functional>
#include <memory>
#include <mutex>

#include "agent/config/loader.hpp"
#include "agent/core/clock.hpp"

namespace pha {

class AccountDbUpstream;
struct CycleReport;
class HealthChecker;
class Notifier;
class Webhooks;
struct Liveness;
class ProxmoxUpstream;
class StatusStore;
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
  int run_once(SyncEngine& engine);
  std::shared_ptr<const Settings> live_settings() const;
  // STATUS= for systemd after each cycle.
  void notify_cycle(const CycleReport& report, std::int64_t next_cycle_at) const;
  // Blocks until stop(); meanwhile pings systemd's watchdog while `liveness` holds.
  void wait_for_stop(const std::function<Liveness()>& liveness);

  mutable std::mutex mutex_;
  LoadedConfig config_;
  std::shared_ptr<const Settings> settings_;  // what the HTTP API reads, swapped on reload
  Clock& clock_;
  RunOptions options_;
  Interrupt interrupt_;
  // Set while run() runs, for reload().
  SyncEngine* engine_ = nullptr;
  SyncLoop* loop_ = nullptr;
  HealthChecker* checker_ = nullptr;
  StatusStore* store_ = nullptr;
  ProxmoxUpstream* proxmox_ = nullptr;
  AccountDbUpstream* accountdb_ = nullptr;
  Webhooks* webhooks_ = nullptr;
  Notifier* notifier_ = nullptr;
};

}  // namespace pha
