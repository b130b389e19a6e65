#pragma once
// The agent's object graph, built in one place: the status store and the
// failover log, the webhooks and their rules, the two upstreams, the sync
// engine and its loop, the health checks, and the HTTP API with its server.
// Every part reads the settings in force through `LiveSettings` when it acts;
// a reload swaps them and runs a cycle at once. Nothing here starts a thread:
// Agent::run does, in order.

#include <atomic>
#include <cstdint>
#include <mutex>

#include "agent/config/live_settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/http/api.hpp"
#include "agent/http/server.hpp"
#include "agent/notify/notifier.hpp"
#include "agent/notify/webhook.hpp"
#include "agent/status/store.hpp"
#include "agent/sync/changes.hpp"
#include "agent/sync/engine.hpp"
#include "agent/sync/loop.hpp"
#include "agent/upstream/accountdb_upstream.hpp"
#include "agent/upstream/failover_log.hpp"
#include "agent/upstream/health_checker.hpp"
#include "agent/upstream/proxmox_upstream.hpp"

namespace pha {

struct RunOptions {
  bool once = false;     // one cycle, its report as JSON on stdout
  bool dry_run = false;  // send nothing that writes to AccountDB
};

class Components {
 public:
  // `settings` and `clock` must outlive the graph; `interrupt` ends every
  // upstream wait on stop.
  Components(const LiveSettings& settings, Clock& clock, Interrupt& interrupt, RunOptions run);
  Components(const Components&) = delete;
  Components& operator=(const Components&) = delete;

  // What the state files held: notes for the log.
  void load_state();
  // --once: one cycle, logged, without the loop.
  CycleReport run_once();
  // The HTTP API's view of the graph; `server` answers its own questions.
  ApiContext api_context(const http::Server& server);
  LoopState loop_state() const;

  const LiveSettings& settings;
  Clock& clock;
  const RunOptions run;
  StatusStore store;
  FailoverLog failover_log;
  Webhooks webhooks;
  Notifier notifier;
  ProxmoxUpstream proxmox;
  AccountDbUpstream accountdb;
  SyncEngine engine;
  SyncLoop loop;
  ChangeWatcher changes;
  HealthChecker checker;

 private:
  std::string node_name() const;
  std::string accountdb_in_use();
  // After each health round and target change: the redundancy webhooks, and
  // the overall state's startup and redundancy parts.
  void check_redundancy();
  // The systemd STATUS= line from the overall state and the last cycle, sent when it changed.
  void publish_status(bool after_cycle);
  // A change of the host or endpoint in use: persisted, logged, in the status, a webhook.
  void failover(const FailoverEvent& e);
  void on_cycle(const CycleReport& report);

  std::atomic<std::int64_t> owner_id_{-1};  // the AccountDB owner of the node, once known
  std::mutex status_mutex_;
  std::string published_state_;        // the state of the last STATUS= line sent
  LiveSettings::Subscription reload_;  // a reload runs a cycle at once
};

// The HTTP API and its server, over a graph.
class HttpService {
 public:
  explicit HttpService(Components& components);
  http::Server& server() { return server_; }

 private:
  Api api_;
  http::Server server_;
};

}  // namespace pha
