#include "agent/upstream/host_manager.hpp"

#include <algorithm>

#include "agent/core/url.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

std::optional<double> host_score(const TargetSnapshot& t, bool primary, int bonus) {
  if (t.status != HealthStatus::healthy || t.circuit != CircuitState::closed) {
    return std::nullopt;
  }
  const double rt = t.response_time_ms.value_or(0.0);
  double score = 100.0 - std::min(100.0, rt / 10.0) - 10.0 * static_cast<double>(t.failure_count);
  if (primary) {
    score += bonus;
  }
  return score;
}

namespace {

// Lower is tried earlier. A host the agent saw answer comes before one
// the cluster only reports online, so the probed candidates stay the same
// from round to round.
int tier(const TargetView& t) {
  if (t.health.circuit == CircuitState::half_open) {
    return 4;
  }
  switch (t.state) {
    case HealthStatus::healthy:
      return t.source == StateSource::cluster ? 1 : 0;
    case HealthStatus::unknown:
      return 2;
    case HealthStatus::unhealthy:
      return 3;
  }
  return 3;
}

}  // namespace

std::vector<std::string> order_hosts(const std::vector<TargetView>& hosts,
                                     const std::string& preferred, const std::string& primary,
                                     int bonus, const std::vector<std::string>& exclude) {
  const auto excluded = [&](const std::string& url) {
    return std::find(exclude.begin(), exclude.end(), url) != exclude.end();
  };
  struct Ranked {
    const TargetView* view;
    int tier;
    double score;
    double rt;
    std::size_t index;
  };
  std::vector<std::string> out;
  std::vector<Ranked> rest;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    const auto& h = hosts[i];
    if (h.health.circuit == CircuitState::open || excluded(h.info.url)) {
      continue;
    }
    if (h.info.url == preferred) {
      out.insert(out.begin(), h.info.url);
      continue;
    }
    rest.push_back({&h, tier(h), host_score(h.health, h.info.url == primary, bonus).value_or(0.0),
                    h.health.response_time_ms.value_or(0.0), i});
  }
  std::stable_sort(rest.begin(), rest.end(), [](const Ranked& a, const Ranked& b) {
    if (a.tier != b.tier) {
      return a.tier < b.tier;
    }
    if (a.score != b.score) {
      return a.score > b.score;
    }
    if (a.rt != b.rt) {
      return a.rt < b.rt;
    }
    return a.index < b.index;
  });
  for (const auto& r : rest) {
    out.push_back(r.view->info.url);
  }
  return out;
}

HostManager::HostManager(Live<HostOptions> options, UpstreamMonitor& monitor, Clock& clock,
                         std::function<double()> random, FailoverSink sink)
    : live_(std::move(options)),
      options_(live_()),
      monitor_(monitor),
      clock_(clock),
      random_(std::move(random)),
      sink_(std::move(sink)),
      preferred_(options_.primary) {
  std::lock_guard lock(mutex_);
  publish_targets_locked();
}

void HostManager::emit(const std::vector<FailoverEvent>& events) {
  if (!sink_) {
    return;
  }
  for (const auto& e : events) {
    sink_(e);
  }
}

void HostManager::publish_targets_locked() {
  std::vector<TargetInfo> targets;
  targets.push_back({options_.primary, "config", 1, 1, options_.primary_node});
  for (const auto& h : options_.configured) {
    if (h != options_.primary) {
      targets.push_back({h, "config", 1, 1, ""});
    }
  }
  // (No structured binding: clang 14, which builds the fuzz targets, cannot
  // capture one in a lambda.)
  for (const auto& entry : discovered_) {
    const auto& url = entry.first;
    const bool known = std::any_of(targets.begin(), targets.end(),
                                   [&url](const TargetInfo& t) { return t.url == url; });
    if (!known) {
      targets.push_back({url, "discovered", 1, 1, entry.second.node});
    }
  }
  monitor_.set_targets(targets);
}

std::string HostManager::primary() const {
  std::lock_guard lock(mutex_);
  return options_.primary;
}

std::string HostManager::preferred() const {
  std::lock_guard lock(mutex_);
  return preferred_;
}

bool HostManager::manual() const {
  std::lock_guard lock(mutex_);
  return manual_;
}

std::vector<std::string> HostManager::order_locked() const {
  if (!options_.auto_failover) {
    // The preferred host only; with its breaker open, none.
    if (monitor_.circuit(preferred_) == CircuitState::open) {
      return {};
    }
    return {preferred_};
  }
  return order_hosts(monitor_.targets(), preferred_, options_.primary, options_.primary_bonus);
}

std::vector<std::string> HostManager::order() const {
  std::lock_guard lock(mutex_);
  return order_locked();
}

std::vector<std::string> HostManager::hosts() const {
  std::vector<std::string> out;
  for (const auto& t : monitor_.targets()) {
    out.push_back(t.info.url);
  }
  return out;
}

bool HostManager::use_local() {
  evaluate();  // reads the options
  std::lock_guard lock(mutex_);
  return preferred_ == options_.primary && monitor_.circuit(options_.primary) != CircuitState::open;
}

bool HostManager::has_usable_peer() const {
  std::lock_guard lock(mutex_);
  if (!options_.auto_failover) {
    return false;  // nothing to fall back to: the read stays on the preferred host
  }
  const auto order = order_hosts(monitor_.targets(), "", options_.primary, options_.primary_bonus,
                                 {options_.primary});
  return !order.empty();
}

void HostManager::switch_locked(const std::string& to, const std::string& reason, FailoverKind kind,
                                std::vector<FailoverEvent>& events) {
  if (to == preferred_) {
    return;
  }
  FailoverEvent e;
  e.timestamp = clock_.unix_now();
  e.target = FailoverTarget::proxmox;
  e.from = preferred_;
  e.to = to;
  e.reason = reason;
  e.kind = kind;
  events.push_back(std::move(e));
  preferred_ = to;
  hold_until_.reset();
}

void HostManager::local_failed(const std::string& reason) {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    const auto peers = order_hosts(monitor_.targets(), "", options_.primary, options_.primary_bonus,
                                   {options_.primary});
    if (options_.auto_failover && !peers.empty()) {
      manual_ = false;
      switch_locked(peers.front(), reason, FailoverKind::automatic, events);
    }
  }
  emit(events);
}

void HostManager::answered_by(const std::string& host, const std::string& reason) {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    if (options_.auto_failover && host != preferred_ && !reason.empty()) {
      manual_ = false;
      switch_locked(host, reason, FailoverKind::automatic, events);
    }
  }
  emit(events);
}

void HostManager::evaluate() {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    age_out_locked(now, events);
    if (preferred_ == options_.primary || manual_ || !options_.auto_recovery) {
      hold_until_.reset();
    } else {
      const auto primary = monitor_.target(options_.primary);
      const bool ready =
          primary && primary->health.recovered && primary->health.circuit == CircuitState::closed;
      if (!ready) {
        hold_until_.reset();
      } else if (!hold_until_) {
        const auto hold = std::chrono::milliseconds(static_cast<std::int64_t>(
            std::clamp(random_(), 0.0, 1.0) * static_cast<double>(options_.max_hold.count())));
        hold_until_ = now + hold;
        log::info("proxmox_primary_recovered",
                  "the primary Proxmox host is healthy again; returning to it after a hold",
                  {{"host", options_.primary}, {"hold_ms", hold.count()}});
      }
      if (ready && hold_until_ && now >= *hold_until_) {
        switch_locked(options_.primary, "the primary host is healthy again", FailoverKind::recovery,
                      events);
      }
    }
  }
  emit(events);
}

void HostManager::age_out_locked(Clock::TimePoint now, std::vector<FailoverEvent>& events) {
  bool changed = false;
  for (auto it = discovered_.begin(); it != discovered_.end();) {
    if (now - it->second.last_seen > options_.cleanup_age) {
      log::info("proxmox_host_dropped", "a discovered Proxmox host left /cluster/status",
                {{"host", it->first}, {"node", it->second.node}});
      if (it->first == preferred_) {
        manual_ = false;
        switch_locked(options_.primary, "the host " + it->first + " left the cluster",
                      FailoverKind::automatic, events);
      }
      it = discovered_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) {
    publish_targets_locked();
  }
}

void HostManager::age_out() {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    age_out_locked(clock_.now(), events);
  }
  emit(events);
}

void HostManager::discovered(const ClusterStatus& status) {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    const auto now = clock_.now();
    if (options_.discover) {
      discover_locked(status, now);
      age_out_locked(now, events);
    }
    membership_locked(status);
  }
  emit(events);
}

void HostManager::discover_locked(const ClusterStatus& status, Clock::TimePoint now) {
  const auto primary = parse_url(options_.primary, {"https", 8006});
  if (!primary) {
    return;
  }
  bool changed = false;
  for (const auto& node : status.nodes) {
    if (!node.online || node.ip.empty() || node.local) {
      continue;
    }
    Url url = *primary;
    url.host = node.ip;
    url.path.clear();
    const auto key = url.str();
    if (key == options_.primary || std::find(options_.configured.begin(), options_.configured.end(),
                                             key) != options_.configured.end()) {
      continue;
    }
    auto [it, added] = discovered_.try_emplace(key, Discovered{node.name, now});
    it->second.last_seen = now;
    it->second.node = node.name;
    if (added) {
      log::info("proxmox_host_discovered", "a failover Proxmox host was discovered",
                {{"host", key}, {"node", node.name}});
      changed = true;
    }
  }
  if (changed) {
    publish_targets_locked();
  }
}

void HostManager::membership_locked(const ClusterStatus& status) {
  std::map<std::string, bool> online;
  for (const auto& t : monitor_.targets()) {
    const auto url = parse_url(t.info.url, {"https", 8006});
    const auto node = std::find_if(status.nodes.begin(), status.nodes.end(), [&](const auto& n) {
      return (!t.info.node_name.empty() && n.name == t.info.node_name) ||
             (url && !n.ip.empty() && n.ip == url->host) ||
             (n.local && t.info.url == options_.primary);
    });
    if (node != status.nodes.end()) {
      online[t.info.url] = node->online;
    }
  }
  monitor_.set_reported(online);
}

std::vector<std::string> HostManager::probe_targets(std::size_t peers) {
  refresh();
  std::vector<std::string> out;
  {
    std::lock_guard lock(mutex_);
    out.push_back(preferred_);
    if (options_.primary != preferred_) {
      out.push_back(options_.primary);
    }
    const auto candidates =
        order_hosts(monitor_.targets(), preferred_, options_.primary, options_.primary_bonus, out);
    for (std::size_t i = 0; i < candidates.size() && i < peers; ++i) {
      out.push_back(candidates[i]);
    }
  }
  monitor_.set_probed(out);
  return out;
}

std::optional<std::string> HostManager::prefer(const std::string& host) {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    const auto target = monitor_.target(host);
    if (!target) {
      return "unknown Proxmox host: " + host;
    }
    if (target->health.circuit == CircuitState::open) {
      return "the circuit breaker of " + host + " is open";
    }
    switch_locked(host, "requested through the API", FailoverKind::manual, events);
    manual_ = host != options_.primary;
  }
  emit(events);
  return std::nullopt;
}

void HostManager::reset() {
  refresh();
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    monitor_.reset();
    manual_ = false;
    switch_locked(options_.primary, "failover reset through the API", FailoverKind::manual, events);
  }
  emit(events);
}

RoutePlan HostManager::plan(const HttpRequest& request) const {
  if (request.any_target) {
    auto hosts = order();
    if (!request.hedge_of.empty()) {
      std::erase_if(hosts, [&](const std::string& h) {
        return url_origin(h) == url_origin(request.hedge_of);
      });
    }
    return {.base = primary(), .order = std::move(hosts)};
  }
  const auto host = matching_base(request.url, hosts());
  return {.base = host, .order = {host}, .revisit = !has_usable_peer()};
}

void HostManager::answered(const HttpRequest& request, const Routed& routed) {
  if (request.any_target && !routed.failed.empty() && !is_host_failure(routed.outcome.kind)) {
    answered_by(routed.target, describe_failures(routed.failed));
  }
}

void HostManager::refresh() {
  std::vector<FailoverEvent> events;
  {
    std::lock_guard lock(mutex_);
    auto options = live_();
    if (options == options_) {
      return;
    }
    const bool primary_changed = options.primary != options_.primary;
    options_ = std::move(options);
    if (!options_.discover) {
      discovered_.clear();
    }
    publish_targets_locked();
    const auto known = monitor_.target(preferred_);
    if (primary_changed || !known) {
      manual_ = false;
      switch_locked(options_.primary, "the configuration changed", FailoverKind::manual, events);
    }
  }
  emit(events);
}

}  // namespace pha
