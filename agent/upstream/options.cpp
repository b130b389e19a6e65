#include "agent/upstream/options.hpp"

#include <algorithm>
#include <unistd.h>

#include <climits>

namespace pha {

namespace {
constexpr std::size_t kProxmoxMaxBody = std::size_t{16} << 20;    // docs/failover.md: 16 MiB
constexpr std::size_t kAccountDbMaxBody = std::size_t{32} << 20;  // docs/failover.md: 32 MiB
constexpr auto kAccountDbConnectTimeout = std::chrono::seconds(5);

}  // namespace

HealthSettings health_settings(const Settings& s) {
  HealthSettings h;
  h.healthy_threshold = s.healthy_threshold;
  h.breaker.threshold = s.circuit_breaker_threshold;
  h.breaker.reset = std::chrono::seconds(s.circuit_breaker_reset);
  h.fresh_for = std::chrono::seconds(2 * s.health_check_interval);
  return h;
}

HostOptions host_options(const Settings& s) {
  HostOptions o;
  o.primary = s.proxmox_host.str();
  for (const auto& h : s.proxmox_hosts) {
    if (h.str() != o.primary) {
      o.configured.push_back(h.str());
    }
  }
  o.primary_node = s.node_name;
  o.discover = s.proxmox_discover_hosts;
  o.cleanup_age = std::chrono::seconds(s.host_cleanup_age);
  o.primary_bonus = s.primary_bonus;
  o.auto_failover = s.auto_failover;
  o.auto_recovery = s.auto_recovery;
  // Consul's rebalancing hold, scaled down: at most 30 s, and never longer
  // than one health-check interval, so the return takes at most one more round.
  o.max_hold = std::min<std::chrono::milliseconds>(std::chrono::seconds(30),
                                                   std::chrono::seconds(s.health_check_interval));
  return o;
}

std::string short_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) {
    return "localhost";
  }
  std::string name(buf);
  return name.substr(0, name.find('.'));
}

RetryPolicy retry_policy(const Settings& s) {
  RetryPolicy p;
  p.max_attempts = s.retry_max_attempts;
  p.base_delay = std::chrono::milliseconds(static_cast<long long>(s.retry_base_delay * 1000.0));
  p.max_delay = std::chrono::seconds(s.retry_max_delay);
  return p;
}

HedgeSettings hedge_settings(const Settings& s) {
  return {.delay_min = std::chrono::milliseconds(s.hedge_delay_min),
          .delay_max = std::chrono::milliseconds(s.hedge_delay_max),
          .budget_percent = s.hedge_budget_percent};
}

HttpClientOptions proxmox_http_options(const Settings& s) {
  HttpClientOptions o;
  o.upstream = "Proxmox";
  o.connect_timeout = std::chrono::seconds(s.proxmox_connect_timeout);
  o.total_timeout = std::chrono::seconds(s.proxmox_timeout);
  o.max_body_bytes = kProxmoxMaxBody;
  o.tls.verify = s.proxmox_verify_ssl;
  o.tls.ca_file = s.proxmox_ca_file;
  o.tls.fingerprints = s.proxmox_fingerprints;
  o.tls.ca_file_setting = "PROXMOX_CA_FILE";
  o.tls.ca_file_hint = "the cluster CA (a copy of /etc/pve/pve-root-ca.pem)";
  o.tls.fingerprint_setting = "PROXMOX_FINGERPRINT";
  return o;
}

ProxmoxCredentials proxmox_credentials(const Settings& s) {
  return {.token_id = s.proxmox_token_id,
          .token_secret = s.proxmox_token_secret,
          .user = s.proxmox_user,
          .password = s.proxmox_password};
}

ProxmoxClientOptions proxmox_client_options(const Settings& s) {
  ProxmoxClientOptions o;
  o.host = s.proxmox_host;
  o.credentials = proxmox_credentials(s);
  o.node_name = s.node_name;
  o.sync_qemu = s.sync_qemu;
  o.sync_lxc = s.sync_lxc;
  o.vm_details = s.vm_details;
  o.details_ttl = std::chrono::seconds(s.vm_details_ttl);
  o.discover_hosts = s.proxmox_discover_hosts;
  o.watch_tasks = s.change_poll_interval > 0;
  o.short_hostname = short_hostname;
  return o;
}

PoolOptions pool_options(const Settings& s) {
  return {.endpoints = s.accountdb_endpoints,
          .strategy = s.accountdb_strategy,
          .auto_failover = s.auto_failover,
          .auto_recovery = s.auto_recovery};
}

AccountDbClientOptions accountdb_client_options(const Settings& s) {
  return {.endpoint = s.accountdb_endpoints.front().url,
          .api_key = s.accountdb_api_key,
          .node_id = s.accountdb_node_id,
          .timeout = std::chrono::seconds(s.accountdb_timeout)};
}

HttpClientOptions accountdb_http_options(const Settings& s) {
  HttpClientOptions o;
  o.upstream = "AccountDB";
  o.connect_timeout = std::min<std::chrono::milliseconds>(
      kAccountDbConnectTimeout, std::chrono::seconds(s.accountdb_timeout));
  o.total_timeout = std::chrono::seconds(s.accountdb_timeout);
  o.max_body_bytes = kAccountDbMaxBody;
  return o;
}

}  // namespace pha
