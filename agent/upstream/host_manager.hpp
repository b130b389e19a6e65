#pragma once
// The Proxmox hosts of docs/failover.md "Proxmox hosts": the
// primary (PROXMOX_HOST, this node's own API), the configured failover hosts
// (PROXMOX_HOSTS) and the discovered ones (online nodes of /cluster/status,
// dropped after HOST_CLEANUP_AGE out of it); the preferred host, its ordered
// list for cluster-wide calls, failing over when the host in use fails, the
// return to the primary after a random hold, and manual failover. Health and
// breakers live in the UpstreamMonitor; this class decides with them.
// Thread-safe.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/proxmox/parse.hpp"
#include "agent/upstream/failover_log.hpp"
#include "agent/upstream/failover_router.hpp"
#include "agent/upstream/upstream.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

// The score of docs/failover.md "Proxmox hosts", for a healthy host with a closed breaker (none
// otherwise): 100, minus a tenth of its moving-average response time in ms
// (at most 100), minus 10 per recent failure, plus `bonus` for the primary.
std::optional<double> host_score(const TargetSnapshot& t, bool primary, int bonus);

// The ordered list for a request: `preferred` (unless its breaker is open),
// then the other hosts that are not open: healthy ones by score (then
// response time), then unknown ones, then unhealthy ones with a closed
// breaker, then half-open ones; configuration order breaks ties. Hosts in
// `exclude` are left out.
std::vector<std::string> order_hosts(const std::vector<TargetView>& hosts,
                                     const std::string& preferred, const std::string& primary,
                                     int bonus, const std::vector<std::string>& exclude = {});

struct HostOptions {
  std::string primary;                    // PROXMOX_HOST, as a base URL
  std::vector<std::string> configured;    // PROXMOX_HOSTS, without the primary
  std::string primary_node;               // PROXMOX_NODE_NAME, when set
  bool discover = true;                   // PROXMOX_DISCOVER_HOSTS
  std::chrono::seconds cleanup_age{300};  // HOST_CLEANUP_AGE
  int primary_bonus = 50;                 // PRIMARY_BONUS
  // The longest random hold before returning to the primary once it is
  // healthy again (Consul rebalancing, scaled down).
  std::chrono::milliseconds max_hold{30'000};
  // AUTO_FAILOVER false: the preferred host stays in use when it fails (its
  // requests fail; health and breakers are still tracked); only an operator
  // moves it. AUTO_RECOVERY false: no return to the primary by itself.
  bool auto_failover = true;
  bool auto_recovery = true;

  bool operator==(const HostOptions&) const = default;
};

using FailoverSink = std::function<void(const FailoverEvent&)>;

class HostManager {
 public:
  // `random` returns numbers in [0, 1); `sink` gets every change of the host
  // in use (called outside the lock).
  // The options are read again at each decision (every call that can change
  // the host in use): a reload takes effect there.
  HostManager(Live<HostOptions> options, UpstreamMonitor& monitor, Clock& clock,
              std::function<double()> random, FailoverSink sink);

  std::string primary() const;
  // The host in use: node-local reads go to the primary only while it is the
  // preferred host; cluster-wide calls go to the preferred host first.
  std::string preferred() const;
  bool manual() const;  // the preferred host was chosen by an operator
  std::vector<std::string> order() const;
  // Whether the guests are read from this node's own API now (the primary is
  // preferred and its breaker is not open). Runs evaluate() first.
  bool use_local();
  // Whether a host other than the primary could answer a cluster-wide call.
  bool has_usable_peer() const;
  // The local read failed with a host failure: prefer the best peer.
  void local_failed(const std::string& reason);
  // A cluster-wide call was answered by `host` after the hosts before it
  // failed (`reason`, empty when none did).
  void answered_by(const std::string& host, const std::string& reason);
  // The return to the primary: once the primary is healthy with a closed
  // breaker (HEALTHY_THRESHOLD successes), a random hold of up to max_hold
  // starts; when it has passed and the primary is still healthy, it is
  // preferred again. Not while an operator's choice holds.
  void evaluate();
  // One read of /cluster/status. Membership: what it says of each known host
  // (online or not; matched by node name, address, or `local` for the
  // primary) is the state of a host that is not probed. Discovery, when on:
  // online nodes with an address become failover hosts on the primary's
  // scheme and port; discovered hosts out of it for cleanup_age are dropped.
  void discovered(const ClusterStatus& status);
  // The hosts one health round probes (docs/failover.md "Health checks"):
  // the host in use, the primary while it is not, and the first `peers`
  // others in the order failover would try them. The monitor is told, so the
  // others' state comes from the cluster and from passive outcomes.
  std::vector<std::string> probe_targets(std::size_t peers);
  // Hosts not seen in /cluster/status for cleanup_age are dropped (also done by discovered()).
  void age_out();
  // POST /failover/proxmox: an error for an unknown or open-circuit host.
  std::optional<std::string> prefer(const std::string& host);
  // POST /failover/reset: every breaker closed, failure counts zeroed, the
  // primary preferred again.
  void reset();
  std::vector<std::string> hosts() const;  // every known host: primary, configured, discovered

  // The selection policy of the Proxmox upstream. A cluster-wide call
  // (`any_target`) goes to the preferred host first, then the others; a
  // node-local one only to the host of its URL, with one attempt when a peer
  // could take over (the cluster-wide fallback read is the faster way out).
  RoutePlan plan(const HttpRequest& request) const;
  // A cluster-wide call answered after hosts before it failed: that host is preferred.
  void answered(const HttpRequest& request, const Routed& routed);

 private:
  struct Discovered {
    std::string node;
    Clock::TimePoint last_seen;
  };
  // Reads the options; a change is applied (a new primary is preferred at once).
  void refresh();
  void publish_targets_locked();
  void age_out_locked(Clock::TimePoint now, std::vector<FailoverEvent>& events);
  void discover_locked(const ClusterStatus& status, Clock::TimePoint now);
  void membership_locked(const ClusterStatus& status);
  void switch_locked(const std::string& to, const std::string& reason, FailoverKind kind,
                     std::vector<FailoverEvent>& events);
  std::vector<std::string> order_locked() const;
  void emit(const std::vector<FailoverEvent>& events);

  mutable std::mutex mutex_;
  Live<HostOptions> live_;
  HostOptions options_;  // as last read
  UpstreamMonitor& monitor_;
  Clock& clock_;
  std::function<double()> random_;
  FailoverSink sink_;
  std::string preferred_;
  bool manual_ = false;
  std::optional<Clock::TimePoint> hold_until_;
  std::map<std::string, Discovered> discovered_;  // by URL
};

}  // namespace pha
