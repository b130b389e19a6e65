#pragma once
// Builds the real clients of the upstreams from the settings: the libcurl
// HTTP client with its TLS options, the retry policy and budget, and the
// Proxmox client on top of them.

#include <functional>
#include <memory>
#include <mutex>
#include <random>

#include "agent/accountdb/client.hpp"
#include "agent/config/settings.hpp"
#include "agent/core/clock.hpp"
#include "agent/net/curl_client.hpp"
#include "agent/net/retry.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/status/monitor.hpp"

namespace pha {

// The short host name (up to the first dot), the node name of last resort.
std::string short_hostname();

RetryPolicy retry_policy(const Settings& s);
HttpClientOptions proxmox_http_options(const Settings& s);
ProxmoxClientOptions proxmox_client_options(const Settings& s);

HttpClientOptions accountdb_http_options(const Settings& s);

// The health settings of resilience.md from the settings.
HealthSettings health_settings(const Settings& s);
// The targets the monitors know from the settings: the Proxmox host(s), the AccountDB endpoints.
std::vector<TargetInfo> proxmox_targets(const Settings& s);
std::vector<TargetInfo> accountdb_targets(const Settings& s);

// An HTTP client with the retry layer of resilience.md around it: one per
// upstream, with its own retry budget. Thread-safe.
class RetryingTransport {
 public:
  RetryingTransport(std::unique_ptr<HttpClient> http, RetryPolicy policy, Clock& clock,
                    Interrupt& interrupt, std::string upstream);
  HttpOutcome operator()(const HttpRequest& request);

 private:
  double random();
  std::unique_ptr<HttpClient> http_;
  RetryPolicy policy_;
  RetryBudget budget_;
  Clock& clock_;
  Interrupt& interrupt_;
  std::string upstream_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

// The Proxmox side of the agent, owning what its client needs.
class ProxmoxUpstream {
 public:
  // With a monitor, every request is reported to it.
  ProxmoxUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                  UpstreamMonitor* monitor = nullptr);
  ProxmoxClient& client() { return *client_; }

 private:
  RetryingTransport transport_;
  std::unique_ptr<ProxmoxClient> client_;
};

// The AccountDB side: the first endpoint of ACCOUNTDB_URL until failover arrives.
class AccountDbUpstream {
 public:
  AccountDbUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                    UpstreamMonitor* monitor = nullptr);
  AccountDbClient& client() { return *client_; }

 private:
  RetryingTransport transport_;
  std::unique_ptr<AccountDbClient> client_;
};

}  // namespace pha
