#include "agent/notify/notifier.hpp"

#include <algorithm>

namespace pha {

WebhookEvent NotifyRules::on_failover(const FailoverEvent& e) {
  return {e.kind == FailoverKind::recovery ? "recovery" : "failover", to_json(e)};
}

std::optional<WebhookEvent> NotifyRules::on_cycle(bool success, const std::string& message,
                                                  std::int64_t finished_at) {
  if (success) {
    const auto failed = consecutive_failures_;
    const auto since = failing_since_;
    const bool was_reported = failure_sent_;
    consecutive_failures_ = 0;
    failure_sent_ = false;
    failing_since_.reset();
    last_success_ = finished_at;
    if (!was_reported) {
      return std::nullopt;
    }
    return WebhookEvent{"sync_recovered",
                        {{"failed_cycles", failed},
                         {"failing_since", since ? nlohmann::json(*since) : nlohmann::json()},
                         {"message", message}}};
  }
  if (consecutive_failures_++ == 0) {
    failing_since_ = finished_at;
  }
  if (failure_sent_ || consecutive_failures_ < sync_failures_()) {
    return std::nullopt;
  }
  failure_sent_ = true;
  return WebhookEvent{
      "sync_failed",
      {{"consecutive_failures", consecutive_failures_},
       {"error", message},
       {"failing_since", failing_since_ ? nlohmann::json(*failing_since_) : nlohmann::json()},
       {"last_success", last_success_ ? nlohmann::json(*last_success_) : nlohmann::json()}}};
}

std::optional<WebhookEvent> NotifyRules::on_redundancy(const std::string& upstream,
                                                       const Redundancy& r, bool settled) {
  if (!settled) {  // a target not checked yet (at start, after a reset, newly discovered)
    return std::nullopt;
  }
  const auto it = redundancy_.find(upstream);
  if (it == redundancy_.end()) {
    redundancy_.emplace(upstream, r);
    return std::nullopt;
  }
  if (it->second == r) {
    return std::nullopt;
  }
  const auto before = it->second;
  it->second = r;
  return WebhookEvent{"redundancy",
                      {{"upstream", upstream},
                       {"old_level", before.level},
                       {"new_level", r.level},
                       {"was_degraded", before.degraded},
                       {"degraded", r.degraded}}};
}

std::optional<WebhookEvent> NotifyRules::on_outcome(const std::string& upstream,
                                                    const std::string& target,
                                                    const Observation& o) {
  auto& failing = auth_failing_[upstream + " " + target];
  if (o.kind != FailureKind::auth) {
    // Only an answer that got past authentication clears it.
    if (o.kind == FailureKind::ok || o.kind == FailureKind::client ||
        o.kind == FailureKind::rate_limited) {
      failing = false;
    }
    return std::nullopt;
  }
  if (failing) {
    return std::nullopt;
  }
  failing = true;
  return WebhookEvent{"auth_failed",
                      {{"upstream", upstream}, {"target", target}, {"error", o.error}}};
}

std::optional<WebhookEvent> NotifyRules::on_hold(const std::string& hold,
                                                 const nlohmann::json& fields) {
  if (hold == hold_sent_) {
    return std::nullopt;
  }
  hold_sent_ = hold;
  if (hold.empty()) {
    return std::nullopt;
  }
  return WebhookEvent{"sync_held", fields};
}

void Notifier::publish(const std::optional<WebhookEvent>& e) {
  if (e) {
    webhooks_.publish(*e);
  }
}

void Notifier::failover(const FailoverEvent& e) {
  publish(NotifyRules::on_failover(e));
}

void Notifier::cycle(bool success, const std::string& message, std::int64_t finished_at) {
  std::optional<WebhookEvent> e;
  {
    std::lock_guard lock(mutex_);
    e = rules_.on_cycle(success, message, finished_at);
  }
  publish(e);
}

void Notifier::hold(const std::string& id, const nlohmann::json& fields) {
  std::optional<WebhookEvent> e;
  {
    std::lock_guard lock(mutex_);
    e = rules_.on_hold(id, fields);
  }
  publish(e);
}

void Notifier::not_handed_over(const nlohmann::json& fields) {
  publish(WebhookEvent{"guest_row_not_handed_over", fields});
}

void Notifier::outcome(const std::string& upstream, const std::string& target,
                       const Observation& o) {
  std::optional<WebhookEvent> e;
  {
    std::lock_guard lock(mutex_);
    e = rules_.on_outcome(upstream, target, o);
  }
  publish(e);
}

void Notifier::redundancy(const std::string& upstream, const std::vector<TargetView>& targets,
                          const std::string& in_use) {
  const bool settled = std::none_of(targets.begin(), targets.end(), [](const TargetView& t) {
    return t.health.status == HealthStatus::unknown;
  });
  const auto r = redundancy_of(targets, in_use);
  std::optional<WebhookEvent> e;
  {
    std::lock_guard lock(mutex_);
    e = rules_.on_redundancy(upstream, r, settled);
  }
  if (e) {
    e->fields["in_use"] = in_use;
  }
  publish(e);
}

}  // namespace pha
