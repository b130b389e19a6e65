#pragma once
// What the agent has seen of one upstream (Proxmox or AccountDB): each of its
// targets (hosts or endpoints) with its health and breaker, request counts
// by failure kind, a latency histogram, and the connection health totals of
// `/status`. Fed by ObservingClient with every attempt (retries and health
// checks included), read by the HTTP API and /metrics. Thread-safe.

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/metrics.hpp"
#include "agent/net/http.hpp"
#include "agent/upstream/target_health.hpp"

namespace pha {

inline constexpr std::size_t kFailureKinds = 8;  // FailureKind::ok .. client

struct TargetInfo {
  std::string url;                // the base URL, as configured (never with a secret)
  std::string source = "config";  // config, discovered
  int priority = 1;               // AccountDB endpoints
  int weight = 1;
  std::string node_name;  // Proxmox hosts, when known
};

struct TargetView {
  TargetInfo info;
  TargetSnapshot health;  // what the agent's own requests showed
  std::int64_t in_flight = 0;
  std::array<std::uint64_t, kFailureKinds> by_kind{};  // attempts by outcome kind
  bool probed = true;                                  // the health round checks it
  std::optional<bool> reported_online;  // the cluster's word; none when not in /cluster/status
  // The state shown and decided on (effective_state): for a target that is
  // not probed, a fresh passive outcome, else the cluster's word.
  HealthStatus state = HealthStatus::unknown;
  StateSource source = StateSource::none;
};

struct EffectiveState {
  HealthStatus state = HealthStatus::unknown;
  StateSource source = StateSource::none;
};
// A probed target: its health once decided. One that is not probed: its
// health when a real request showed it within `fresh_for`. Otherwise what
// the cluster reports (online: healthy, offline: unhealthy), else unknown.
EffectiveState effective_state(const TargetSnapshot& health, bool probed,
                               std::optional<bool> reported_online, std::int64_t unix_now,
                               std::chrono::seconds fresh_for);

struct ConnectionHealth {
  std::optional<std::int64_t> last_successful_call;  // unix seconds
  std::int64_t consecutive_failures = 0;
  std::uint64_t total_calls = 0;
  std::uint64_t total_failures = 0;
  std::optional<double> average_response_time_ms;  // over successful calls
};

// A change of a target's status or circuit, for the status history and the log.
struct TargetChange {
  std::string upstream;
  std::string url;
  TargetSnapshot before;
  TargetSnapshot after;
};

class UpstreamMonitor {
 public:
  using ChangeObserver = std::function<void(const TargetChange&)>;
  // Every attempt's outcome, with the target it went to (its base URL).
  using OutcomeObserver = std::function<void(const std::string& target, const Observation&)>;

  UpstreamMonitor(std::string name, Clock& clock, Live<HealthSettings> settings);

  const std::string& name() const { return name_; }
  // The known targets; the health of a target that stays is kept.
  void set_targets(const std::vector<TargetInfo>& targets);
  // Called (outside the lock) when a target's status or circuit changes.
  void set_change_observer(ChangeObserver observer);
  // Called (outside the lock) after every attempt that reached the transport.
  void set_outcome_observer(OutcomeObserver observer);

  // One attempt: `begin` before sending, `end` with its outcome. Requests
  // marked best-effort (`retry == false` and not a health check) are
  // counted but say nothing about the target's health.
  void begin(const HttpRequest& request);
  void end(const HttpRequest& request, const HttpOutcome& outcome);
  // An attempt abandoned by its hedged race (http.hpp AbandonScope) instead of `end`.
  void abandoned(const HttpRequest& request);
  // A request that never reached the transport (e.g. a breaker refused it).
  void observe(const std::string& url, const Observation& o);

  // The breaker's gate for a request to the target of `url`: false while it
  // is open; in half-open, true once (the trial) until its outcome arrives.
  bool allow(const std::string& url);
  CircuitState circuit(const std::string& url) const;

  // Proxmox: the targets the health round probes (the others are not), and
  // what the cluster reports of each (a target left out: not in it). Until
  // set_probed is called every target counts as probed.
  void set_probed(const std::vector<std::string>& urls);
  void set_reported(const std::map<std::string, bool>& online);

  std::vector<TargetView> targets() const;
  std::optional<TargetView> target(const std::string& url) const;
  ConnectionHealth connection_health() const;
  Histogram::Data latency() const { return latency_.data(); }
  void reset();  // every breaker closed, failure counts zeroed

 private:
  struct Target {
    TargetInfo info;
    TargetHealth health;
    std::int64_t in_flight = 0;
    std::array<std::uint64_t, kFailureKinds> by_kind{};
    bool probed = true;
    std::optional<bool> reported_online;
  };
  // The target that `url` belongs to (the longest matching base URL); a new
  // one, keyed by the URL's origin, when none matches.
  Target& find(const std::string& url);
  void record(Target& t, const Observation& o, bool counts_for_health,
              std::vector<TargetChange>& changes);

  std::string name_;
  Clock& clock_;
  mutable std::mutex mutex_;
  Live<HealthSettings> settings_;  // every target reads it when it decides
  std::vector<std::unique_ptr<Target>> targets_;
  ConnectionHealth totals_;
  double success_ms_sum_ = 0;
  std::uint64_t successes_ = 0;
  Histogram latency_{latency_buckets()};
  ChangeObserver on_change_;
  OutcomeObserver on_outcome_;
};

// Redundancy of a set of targets (docs/failover.md "Redundancy"):
// single, dual or multi by count; degraded when fewer than half are healthy,
// the active one is unhealthy, or no healthy backup exists.
struct Redundancy {
  std::string level;
  bool degraded = false;
  bool operator==(const Redundancy&) const = default;
};
Redundancy redundancy_of(const std::vector<TargetView>& targets, const std::string& active);

// An HttpClient that reports every request it sends to a monitor.
class ObservingClient final : public HttpClient {
 public:
  ObservingClient(std::unique_ptr<HttpClient> inner, UpstreamMonitor& monitor)
      : inner_(std::move(inner)), monitor_(monitor) {}
  HttpOutcome send(const HttpRequest& request) override;
  void cancel() override { inner_->cancel(); }

 private:
  std::unique_ptr<HttpClient> inner_;
  UpstreamMonitor& monitor_;
};

}  // namespace pha
