#pragma once
// When the agent tells its webhook receivers something: the rules that turn
// what happens (a failover event, a cycle, a change of redundancy, an
// outcome of a request) into at most one webhook event each. Pure, not
// thread-safe: the owner locks.
//
// - failover: a change of the host or endpoint in use, automatic or manual;
//   recovery: a return to the primary (or a better endpoint). The fields are
//   those of /failover/events.
// - redundancy: the level (single, dual, multi) or the degraded flag of an
//   upstream changed. Only values seen while no target's health is unknown
//   count, and the first of them is the baseline, so a start-up (or a reset)
//   sends nothing.
// - sync_failed: once, when WEBHOOK_SYNC_FAILURES cycles in a row failed;
//   sync_recovered: the first successful cycle after a sync_failed.
// - auth_failed: a target answered 401/403 after having answered anything
//   else (or nothing yet); again only after it accepted the credentials.
// - sync_held: the change brake holds changes it did not hold before (a new
//   hold id); again only for another set of changes, or after a cycle that
//   held nothing.
// - guest_row_not_handed_over: a guest that migrated here got a new row,
//   because the agent of the node it left did not name its row (each time).

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/live.hpp"
#include "agent/notify/webhook.hpp"
#include "agent/upstream/failover_log.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

class NotifyRules {
 public:
  // WEBHOOK_SYNC_FAILURES, read when a cycle fails.
  explicit NotifyRules(Live<int> sync_failures) : sync_failures_(std::move(sync_failures)) {}

  static WebhookEvent on_failover(const FailoverEvent& e);
  std::optional<WebhookEvent> on_cycle(bool success, const std::string& message,
                                       std::int64_t finished_at);
  // `settled`: no target of the upstream has an unknown health.
  std::optional<WebhookEvent> on_redundancy(const std::string& upstream, const Redundancy& r,
                                            bool settled);
  std::optional<WebhookEvent> on_outcome(const std::string& upstream, const std::string& target,
                                         const Observation& o);
  // After a cycle that planned: `hold` is the id of what the change brake
  // holds ("" for nothing), `fields` what the event says of it.
  std::optional<WebhookEvent> on_hold(const std::string& hold, const nlohmann::json& fields);

 private:
  Live<int> sync_failures_;
  int consecutive_failures_ = 0;
  bool failure_sent_ = false;
  std::optional<std::int64_t> failing_since_;
  std::optional<std::int64_t> last_success_;
  std::map<std::string, Redundancy> redundancy_;  // by upstream, once settled
  std::map<std::string, bool> auth_failing_;      // by "upstream target"
  std::string hold_sent_;                         // the hold id last sent, "" after none
};

// The rules and the webhooks together, for the agent's threads (the sync
// loop, the health checks, the HTTP workers): each call applies a rule and
// publishes what it gives, without waiting on the network.
class Notifier {
 public:
  Notifier(Webhooks& webhooks, Live<int> sync_failures)
      : webhooks_(webhooks), rules_(std::move(sync_failures)) {}

  void failover(const FailoverEvent& e);
  void cycle(bool success, const std::string& message, std::int64_t finished_at);
  void hold(const std::string& id, const nlohmann::json& fields);
  // A guest that migrated here whose row was not handed over.
  void not_handed_over(const nlohmann::json& fields);
  void outcome(const std::string& upstream, const std::string& target, const Observation& o);
  // The redundancy of an upstream's targets with `in_use` the one in use.
  void redundancy(const std::string& upstream, const std::vector<TargetView>& targets,
                  const std::string& in_use);

 private:
  void publish(const std::optional<WebhookEvent>& e);

  Webhooks& webhooks_;
  std::mutex mutex_;
  NotifyRules rules_;
};

}  // namespace pha
