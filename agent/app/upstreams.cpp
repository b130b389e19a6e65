#include "agent/app/upstreams.hpp"

#include <algorithm>
#include <map>
#include <unistd.h>

#include <climits>

#include "agent/core/url.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {
constexpr std::size_t kProxmoxMaxBody = std::size_t{16} << 20;    // docs/failover.md: 16 MiB
constexpr std::size_t kAccountDbMaxBody = std::size_t{32} << 20;  // docs/failover.md: 32 MiB
constexpr auto kAccountDbConnectTimeout = std::chrono::seconds(5);
constexpr std::size_t kWebhookMaxBody = std::size_t{64} << 10;  // the answer is not read

}  // namespace

HealthSettings health_settings(const Settings& s) {
  HealthSettings h;
  h.healthy_threshold = s.healthy_threshold;
  h.breaker.threshold = s.circuit_breaker_threshold;
  h.breaker.reset = std::chrono::seconds(s.circuit_breaker_reset);
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
  o.discover_hosts = s.proxmox_discover_hosts;
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

WebhookOptions webhook_options(const Settings& s) {
  WebhookOptions o;
  o.urls = s.webhook_urls;
  o.token = s.webhook_token;
  o.timeout = std::chrono::seconds(s.webhook_timeout);
  o.events = s.webhook_events;
  o.queue_size = static_cast<std::size_t>(s.webhook_queue_size);
  o.retry = retry_policy(s);
  o.health = health_settings(s);
  return o;
}

std::unique_ptr<HttpClient> webhook_http_client(const Settings& s) {
  HttpClientOptions o;
  o.upstream = "webhook";
  o.connect_timeout = std::chrono::seconds(std::min(s.webhook_timeout, 5));
  o.total_timeout = std::chrono::seconds(s.webhook_timeout);
  o.max_body_bytes = kWebhookMaxBody;
  return make_curl_client(o);
}

namespace {

// The configured base URL that `url` begins with (the longest), or its origin.
std::string base_of(const std::string& url, const std::vector<std::string>& bases) {
  std::string best;
  for (const auto& b : bases) {
    if (url.starts_with(b) && b.size() > best.size()) {
      best = b;
    }
  }
  return best.empty() ? url_origin(url) : best;
}

// Quiet neighbour (docs/proxmox.md "Quiet neighbour"): one request at a time to each Proxmox host,
// whichever thread sends it (the sync loop, the health checks). Hosts do not
// wait on each other, so a hung host holds up only its own queue.
class OnePerHost final : public HttpClient {
 public:
  explicit OnePerHost(std::unique_ptr<HttpClient> inner) : inner_(std::move(inner)) {}
  HttpOutcome send(const HttpRequest& request) override {
    std::shared_ptr<std::mutex> host;
    {
      std::lock_guard lock(mutex_);
      auto& m = per_host_[url_origin(request.url)];
      if (!m) {
        m = std::make_shared<std::mutex>();
      }
      host = m;
    }
    std::lock_guard one_at_a_time(*host);
    return inner_->send(request);
  }

 private:
  std::unique_ptr<HttpClient> inner_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::mutex>> per_host_;
};

double draw(std::mutex& mutex, std::mt19937_64& rng) {
  std::lock_guard lock(mutex);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

ProxmoxUpstream::ProxmoxUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                                 FailoverSink sink)
    : discover_(settings.proxmox_discover_hosts),
      monitor_("proxmox", clock, health_settings(settings)),
      hosts_(
          host_options(settings), monitor_, clock, [this] { return random(); }, std::move(sink)),
      router_(std::make_unique<OnePerHost>(std::make_unique<ObservingClient>(
                  make_curl_client(proxmox_http_options(settings)), monitor_)),
              monitor_, retry_policy(settings), clock, interrupt, "Proxmox",
              [this] { return random(); }) {
  client_ = std::make_unique<ProxmoxClient>(
      proxmox_client_options(settings),
      [this](const HttpRequest& request) { return route(request); }, clock);
  client_->set_failover({[this] { return hosts_.use_local(); },
                         [this] { return hosts_.has_usable_peer(); },
                         [this](const std::string& reason) { hosts_.local_failed(reason); }});
}

double ProxmoxUpstream::random() {
  return draw(rng_mutex_, rng_);
}

HttpOutcome ProxmoxUpstream::route(const HttpRequest& request) {
  if (request.any_target) {
    auto routed = router_.send(request, hosts_.primary(), hosts_.order());
    if (!routed.failed.empty() && !is_host_failure(routed.outcome.kind)) {
      hosts_.answered_by(routed.target, describe_failures(routed.failed));
    }
    return std::move(routed.outcome);
  }
  // Only the host of the URL. When a peer could take over, one attempt:
  // the cluster-wide fallback read is the faster way out.
  const auto host = base_of(request.url, hosts_.hosts());
  return router_.send(request, host, {host}, !hosts_.has_usable_peer()).outcome;
}

void ProxmoxUpstream::health_round() {
  for (const auto& host : hosts_.hosts()) {
    if (monitor_.circuit(host) != CircuitState::open) {
      client_->check_health(host);
    }
  }
  if (discover_) {
    if (auto status = client_->cluster_status()) {
      hosts_.discovered(*status);
    } else {
      log::debug("proxmox_discovery", "cannot read /cluster/status for discovery",
                 {{"error", status.error()}});
    }
  }
  hosts_.evaluate();
}

void ProxmoxUpstream::apply(const Settings& settings) {
  monitor_.set_settings(health_settings(settings));
  router_.set_policy(retry_policy(settings));
  discover_ = settings.proxmox_discover_hosts;
  hosts_.set_options(host_options(settings));
  client_->set_credentials(proxmox_client_options(settings).credentials);
}

AccountDbUpstream::AccountDbUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                                     FailoverSink sink)
    : monitor_("accountdb", clock, health_settings(settings)),
      pool_(settings.accountdb_endpoints, settings.accountdb_strategy, monitor_, clock,
            std::move(sink)),
      router_(std::make_unique<ObservingClient>(make_curl_client(accountdb_http_options(settings)),
                                                monitor_),
              monitor_, retry_policy(settings), clock, interrupt, "AccountDB",
              [this] { return random(); }) {
  pool_.set_switches(settings.auto_failover, settings.auto_recovery);
  AccountDbClientOptions o;
  o.endpoint = settings.accountdb_endpoints.front().url;
  o.api_key = settings.accountdb_api_key;
  o.node_id = settings.accountdb_node_id;
  o.timeout = std::chrono::seconds(settings.accountdb_timeout);
  client_ = std::make_unique<AccountDbClient>(
      o, [this](const HttpRequest& request) { return route(request); });
}

double AccountDbUpstream::random() {
  return draw(rng_mutex_, rng_);
}

HttpOutcome AccountDbUpstream::route(const HttpRequest& request) {
  std::vector<std::string> bases;
  for (const auto& t : monitor_.targets()) {
    bases.push_back(t.info.url);
  }
  const auto base = base_of(request.url, bases);
  if (!request.any_target) {
    return router_.send(request, base, {base}, false).outcome;
  }
  auto routed = router_.send(request, base, pool_.order(), true, true);
  pool_.answered(routed);
  return std::move(routed.outcome);
}

void AccountDbUpstream::recovery_round() {
  for (const auto& endpoint : pool_.to_check()) {
    client_->check_endpoint(endpoint);
  }
}

void AccountDbUpstream::apply(const Settings& settings) {
  monitor_.set_settings(health_settings(settings));
  router_.set_policy(retry_policy(settings));
  pool_.set_endpoints(settings.accountdb_endpoints, settings.accountdb_strategy);
  pool_.set_switches(settings.auto_failover, settings.auto_recovery);
  client_->set_api_key(settings.accountdb_api_key);
  client_->set_endpoint(settings.accountdb_endpoints.front().url);
}

}  // namespace pha
