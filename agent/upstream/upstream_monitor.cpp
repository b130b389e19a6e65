#include "agent/upstream/upstream_monitor.hpp"

#include <algorithm>

#include "agent/core/url.hpp"

namespace pha {

namespace {

bool counts_for_health(const HttpRequest& r) {
  return r.retry || r.health_check;
}

}  // namespace

UpstreamMonitor::UpstreamMonitor(std::string name, Clock& clock, Live<HealthSettings> settings)
    : name_(std::move(name)), clock_(clock), settings_(std::move(settings)) {}

void UpstreamMonitor::set_targets(const std::vector<TargetInfo>& targets) {
  std::lock_guard lock(mutex_);
  std::vector<std::unique_ptr<Target>> next;
  for (const auto& info : targets) {
    std::unique_ptr<Target> t;
    for (auto& old : targets_) {
      if (old && old->info.url == info.url) {
        t = std::move(old);
        break;
      }
    }
    if (!t) {
      t = std::make_unique<Target>(Target{info, TargetHealth(settings_), 0, {}, true, {}});
    }
    t->info = info;
    next.push_back(std::move(t));
  }
  targets_ = std::move(next);
}

void UpstreamMonitor::set_change_observer(ChangeObserver observer) {
  std::lock_guard lock(mutex_);
  on_change_ = std::move(observer);
}

void UpstreamMonitor::set_outcome_observer(OutcomeObserver observer) {
  std::lock_guard lock(mutex_);
  on_outcome_ = std::move(observer);
}

UpstreamMonitor::Target& UpstreamMonitor::find(const std::string& url) {
  Target* best = nullptr;
  for (auto& t : targets_) {
    const auto& base = t->info.url;
    if (url.starts_with(base) &&
        (url.size() == base.size() || url[base.size()] == '/' || url[base.size()] == '?') &&
        (best == nullptr || base.size() > best->info.url.size())) {
      best = t.get();
    }
  }
  if (best != nullptr) {
    return *best;
  }
  const auto origin = url_origin(url);
  for (auto& t : targets_) {
    if (t->info.url == origin) {
      return *t;
    }
  }
  TargetInfo info;
  info.url = origin;
  info.source = "discovered";
  targets_.push_back(std::make_unique<Target>(Target{info, TargetHealth(settings_), 0, {}}));
  return *targets_.back();
}

void UpstreamMonitor::begin(const HttpRequest& request) {
  std::lock_guard lock(mutex_);
  find(request.url).in_flight++;
}

void UpstreamMonitor::record(Target& t, const Observation& o, bool for_health,
                             std::vector<TargetChange>& changes) {
  t.by_kind[static_cast<std::size_t>(o.kind)]++;
  totals_.total_calls++;
  if (o.kind == FailureKind::ok) {
    totals_.last_successful_call = clock_.unix_now();
    totals_.consecutive_failures = 0;
    success_ms_sum_ += static_cast<double>(o.elapsed.count());
    ++successes_;
    totals_.average_response_time_ms = success_ms_sum_ / static_cast<double>(successes_);
  } else if (for_health) {
    totals_.total_failures++;
    totals_.consecutive_failures++;
  }
  latency_.observe(static_cast<double>(o.elapsed.count()) / 1000.0);
  if (!for_health) {
    return;
  }
  const auto now = clock_.now();
  const auto before = t.health.snapshot(now);
  if (t.health.observe(o, now, clock_.unix_now())) {
    changes.push_back({name_, t.info.url, before, t.health.snapshot(now)});
  }
}

void UpstreamMonitor::abandoned(const HttpRequest& request) {
  std::lock_guard lock(mutex_);
  find(request.url).in_flight--;
}

void UpstreamMonitor::end(const HttpRequest& request, const HttpOutcome& outcome) {
  std::vector<TargetChange> changes;
  ChangeObserver observer;
  OutcomeObserver outcome_observer;
  Observation o{outcome.kind, outcome.elapsed, outcome.error};
  std::string target;
  {
    std::lock_guard lock(mutex_);
    auto& t = find(request.url);
    t.in_flight--;
    if (!outcome.ok() && o.error.empty()) {
      o.error = "HTTP " + std::to_string(outcome.status) +
                (outcome.reason.empty() ? "" : " " + outcome.reason);
    }
    record(t, o, counts_for_health(request), changes);
    observer = on_change_;
    outcome_observer = on_outcome_;
    if (outcome_observer) {
      target = t.info.url;
    }
  }
  if (observer) {
    for (const auto& c : changes) {
      observer(c);
    }
  }
  if (outcome_observer) {
    outcome_observer(target, o);
  }
}

void UpstreamMonitor::observe(const std::string& url, const Observation& o) {
  std::vector<TargetChange> changes;
  ChangeObserver observer;
  {
    std::lock_guard lock(mutex_);
    record(find(url), o, true, changes);
    observer = on_change_;
  }
  if (observer) {
    for (const auto& c : changes) {
      observer(c);
    }
  }
}

bool UpstreamMonitor::allow(const std::string& url) {
  std::lock_guard lock(mutex_);
  return find(url).health.breaker().allow(clock_.now());
}

CircuitState UpstreamMonitor::circuit(const std::string& url) const {
  std::lock_guard lock(mutex_);
  // find() may add a target; a const look-up must not, so search by hand.
  for (const auto& t : targets_) {
    if (t->info.url == url) {
      return t->health.breaker().state(clock_.now());
    }
  }
  return CircuitState::closed;
}

void UpstreamMonitor::set_probed(const std::vector<std::string>& urls) {
  std::lock_guard lock(mutex_);
  for (auto& t : targets_) {
    t->probed = std::find(urls.begin(), urls.end(), t->info.url) != urls.end();
  }
}

void UpstreamMonitor::set_reported(const std::map<std::string, bool>& online) {
  std::lock_guard lock(mutex_);
  for (auto& t : targets_) {
    const auto it = online.find(t->info.url);
    t->reported_online = it == online.end() ? std::nullopt : std::optional<bool>(it->second);
  }
}

EffectiveState effective_state(const TargetSnapshot& health, bool probed,
                               std::optional<bool> reported_online, std::int64_t unix_now,
                               std::chrono::seconds fresh_for) {
  if (health.status != HealthStatus::unknown) {
    if (probed) {
      return {health.status, StateSource::probed};
    }
    if (health.last_checked && unix_now - *health.last_checked <= fresh_for.count()) {
      return {health.status, StateSource::passive};
    }
  }
  // A probed host not decided yet (too few checks) keeps the cluster's word meanwhile.
  if (reported_online) {
    return {*reported_online ? HealthStatus::healthy : HealthStatus::unhealthy,
            StateSource::cluster};
  }
  return {HealthStatus::unknown, probed ? StateSource::probed : StateSource::none};
}

std::vector<TargetView> UpstreamMonitor::targets() const {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  const auto unix_now = clock_.unix_now();
  const auto fresh_for = settings_().fresh_for;
  std::vector<TargetView> out;
  out.reserve(targets_.size());
  for (const auto& t : targets_) {
    auto health = t->health.snapshot(now);
    const auto e = effective_state(health, t->probed, t->reported_online, unix_now, fresh_for);
    out.push_back({t->info, std::move(health), t->in_flight, t->by_kind, t->probed,
                   t->reported_online, e.state, e.source});
  }
  return out;
}

std::optional<TargetView> UpstreamMonitor::target(const std::string& url) const {
  for (auto& t : targets()) {
    if (t.info.url == url) {
      return t;
    }
  }
  return std::nullopt;
}

ConnectionHealth UpstreamMonitor::connection_health() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

void UpstreamMonitor::reset() {
  std::lock_guard lock(mutex_);
  for (auto& t : targets_) {
    t->health.reset();
  }
  totals_.consecutive_failures = 0;
}

HttpOutcome ObservingClient::send(const HttpRequest& request) {
  monitor_.begin(request);
  auto outcome = inner_->send(request);
  if (abandoned()) {
    monitor_.abandoned(request);  // neither an answer nor a failure of the target
  } else {
    monitor_.end(request, outcome);
  }
  return outcome;
}

Redundancy redundancy_of(const std::vector<TargetView>& targets, const std::string& active) {
  Redundancy r;
  const auto n = targets.size();
  r.level = n <= 1 ? "single" : n == 2 ? "dual" : "multi";
  std::size_t healthy = 0;
  bool active_healthy = false;
  bool healthy_backup = false;
  for (const auto& t : targets) {
    const bool ok = t.state == HealthStatus::healthy;
    healthy += ok ? 1 : 0;
    if (t.info.url == active) {
      active_healthy = ok;
    } else if (ok) {
      healthy_backup = true;
    }
  }
  r.degraded = healthy * 2 < n || !active_healthy || !healthy_backup;
  return r;
}

}  // namespace pha
