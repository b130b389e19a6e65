#pragma once
// Builds the real clients of the upstreams from the settings: the libcurl
// HTTP client with its TLS options, the retry policy and budget, the
// failover of hosts and endpoints, and the clients on top of them.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>

#include "agent/accountdb/client.hpp"
#include "agent/config/settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/failover/endpoint_pool.hpp"
#include "agent/failover/hosts.hpp"
#include "agent/failover/router.hpp"
#include "agent/net/curl_client.hpp"
#include "agent/net/retry.hpp"
#include "agent/notify/webhook.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/status/monitor.hpp"

namespace pha {

// The short host name (up to the first dot), the node name of last resort.
std::string short_hostname();

RetryPolicy retry_policy(const Settings& s);
HttpClientOptions proxmox_http_options(const Settings& s);
ProxmoxClientOptions proxmox_client_options(const Settings& s);

HttpClientOptions accountdb_http_options(const Settings& s);

// The webhooks' options and their libcurl client (the system's trust store).
WebhookOptions webhook_options(const Settings& s);
std::unique_ptr<HttpClient> webhook_http_client(const Settings& s);

// The health settings of docs/failover.md ("Breakers", "Target health") from the settings.
HealthSettings health_settings(const Settings& s);
HostOptions host_options(const Settings& s);

// The Proxmox side of the agent: its client, the monitor of its hosts, the
// host manager that chooses between them, and the router every request goes
// through. Thread-safe where its parts are.
class ProxmoxUpstream {
 public:
  // `sink` gets every failover event.
  ProxmoxUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                  FailoverSink sink = {});
  ProxmoxClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return monitor_; }
  HostManager& hosts() { return hosts_; }
  const RetryBudget& budget() const { return router_.budget(); }
  // One round of health checks (docs/failover.md "Health checks"): GET /version on each known
  // host whose breaker lets it through, one at a time; discovery from
  // /cluster/status; then the return to the primary is evaluated.
  void health_round();
  void apply(const Settings& settings);  // SIGHUP

 private:
  HttpOutcome route(const HttpRequest& request);
  double random();

  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::atomic<bool> discover_;
  UpstreamMonitor monitor_;
  HostManager hosts_;
  FailoverRouter router_;
  std::unique_ptr<ProxmoxClient> client_;
};

// The AccountDB side: its client, the monitor of its endpoints, the endpoint
// pool with the strategy, and the router.
class AccountDbUpstream {
 public:
  AccountDbUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                    FailoverSink sink = {});
  AccountDbClient& client() { return *client_; }
  UpstreamMonitor& monitor() { return monitor_; }
  EndpointPool& pool() { return pool_; }
  const RetryBudget& budget() const { return router_.budget(); }
  // The recovery checks (docs/failover.md "AccountDB endpoints"): node_info on each endpoint that
  // failed since its last success and whose breaker lets a request through.
  void recovery_round();
  void apply(const Settings& settings);  // SIGHUP

 private:
  HttpOutcome route(const HttpRequest& request);
  double random();

  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
  UpstreamMonitor monitor_;
  EndpointPool pool_;
  FailoverRouter router_;
  std::unique_ptr<AccountDbClient> client_;
};

}  // namespace pha
