#include "agent/app/upstreams.hpp"

#include <algorithm>
#include <unistd.h>

#include <climits>

namespace pha {

namespace {
constexpr std::size_t kProxmoxMaxBody = std::size_t{16} << 20;    // resilience.md: 16 MiB
constexpr std::size_t kAccountDbMaxBody = std::size_t{32} << 20;  // resilience.md: 32 MiB
constexpr auto kAccountDbConnectTimeout = std::chrono::seconds(5);

std::unique_ptr<HttpClient> observed(std::unique_ptr<HttpClient> client, UpstreamMonitor* monitor) {
  if (monitor == nullptr) {
    return client;
  }
  return std::make_unique<ObservingClient>(std::move(client), *monitor);
}
}  // namespace

HealthSettings health_settings(const Settings& s) {
  HealthSettings h;
  h.healthy_threshold = s.healthy_threshold;
  h.breaker.threshold = s.circuit_breaker_threshold;
  h.breaker.reset = std::chrono::seconds(s.circuit_breaker_reset);
  return h;
}

std::vector<TargetInfo> proxmox_targets(const Settings& s) {
  std::vector<TargetInfo> out;
  out.push_back({s.proxmox_host.str(), "config", 1, 1, s.node_name});
  for (const auto& h : s.proxmox_hosts) {
    if (h.str() != s.proxmox_host.str()) {
      out.push_back({h.str(), "config", 1, 1, ""});
    }
  }
  return out;
}

std::vector<TargetInfo> accountdb_targets(const Settings& s) {
  std::vector<TargetInfo> out;
  for (const auto& e : s.accountdb_endpoints) {
    out.push_back({e.url.str(), "config", e.priority, e.weight, ""});
  }
  return out;
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

ProxmoxClientOptions proxmox_client_options(const Settings& s) {
  ProxmoxClientOptions o;
  o.host = s.proxmox_host;
  o.credentials.token_id = s.proxmox_token_id;
  o.credentials.token_secret = s.proxmox_token_secret;
  o.credentials.user = s.proxmox_user;
  o.credentials.password = s.proxmox_password;
  o.node_name = s.node_name;
  o.sync_qemu = s.sync_qemu;
  o.sync_lxc = s.sync_lxc;
  o.vm_details = s.vm_details;
  o.details_ttl = std::chrono::seconds(s.vm_details_ttl);
  o.short_hostname = short_hostname;
  return o;
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

RetryingTransport::RetryingTransport(std::unique_ptr<HttpClient> http, RetryPolicy policy,
                                     Clock& clock, Interrupt& interrupt, std::string upstream)
    : http_(std::move(http)),
      policy_(policy),
      clock_(clock),
      interrupt_(interrupt),
      upstream_(std::move(upstream)) {}

double RetryingTransport::random() {
  std::lock_guard lock(rng_mutex_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

HttpOutcome RetryingTransport::operator()(const HttpRequest& request) {
  return send_with_retry(
      *http_, request, policy_, budget_, clock_, interrupt_, [this] { return random(); },
      upstream_);
}

ProxmoxUpstream::ProxmoxUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                                 UpstreamMonitor* monitor)
    : transport_(observed(make_curl_client(proxmox_http_options(settings)), monitor),
                 retry_policy(settings), clock, interrupt, "Proxmox") {
  client_ = std::make_unique<ProxmoxClient>(
      proxmox_client_options(settings),
      [this](const HttpRequest& request) { return transport_(request); }, clock);
}

AccountDbUpstream::AccountDbUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                                     UpstreamMonitor* monitor)
    : transport_(observed(make_curl_client(accountdb_http_options(settings)), monitor),
                 retry_policy(settings), clock, interrupt, "AccountDB") {
  AccountDbClientOptions o;
  o.endpoint = settings.accountdb_endpoints.front().url;
  o.api_key = settings.accountdb_api_key;
  o.node_id = settings.accountdb_node_id;
  o.timeout = std::chrono::seconds(settings.accountdb_timeout);
  client_ = std::make_unique<AccountDbClient>(
      o, [this](const HttpRequest& request) { return transport_(request); });
}

}  // namespace pha
