#pragma once
// The options of the upstreams' parts, read from the settings: the libcurl
// client's timeouts, limits and TLS, the retry policy, the health settings
// and the Proxmox hosts. Pure functions, so the wiring is tested without a
// network.

#include <string>

#include "agent/accountdb/client.hpp"
#include "agent/config/settings.hpp"
#include "agent/core/backoff.hpp"
#include "agent/net/curl_client.hpp"
#include "agent/net/hedge.hpp"
#include "agent/proxmox/client.hpp"
#include "agent/upstream/endpoint_pool.hpp"
#include "agent/upstream/host_manager.hpp"
#include "agent/upstream/target_health.hpp"

namespace pha {

// The short host name (up to the first dot), the node name of last resort.
std::string short_hostname();

RetryPolicy retry_policy(const Settings& s);
HedgeSettings hedge_settings(const Settings& s);
HttpClientOptions proxmox_http_options(const Settings& s);
ProxmoxCredentials proxmox_credentials(const Settings& s);
ProxmoxClientOptions proxmox_client_options(const Settings& s);
HttpClientOptions accountdb_http_options(const Settings& s);

// The health settings of docs/failover.md ("Breakers", "Target health").
HealthSettings health_settings(const Settings& s);
HostOptions host_options(const Settings& s);
PoolOptions pool_options(const Settings& s);
AccountDbClientOptions accountdb_client_options(const Settings& s);

}  // namespace pha
