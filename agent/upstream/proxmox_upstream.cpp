#include "agent/upstream/proxmox_upstream.hpp"

#include <map>
#include <mutex>

#include "agent/core/url.hpp"
#include "agent/platform/logging.hpp"
#include "agent/upstream/options.hpp"
#include "agent/upstream/settings_transport.hpp"

namespace pha {

namespace {

// Quiet neighbour (docs/proxmox.md): one request at a time to each Proxmox host,
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

// Proxmox's own words about an answer: a node it does not know is a wrong
// setting, not a host in trouble (client.hpp is_unknown_node_answer), so it
// is neither retried nor held against the host, and nothing fails over.
class ProxmoxAnswers final : public HttpClient {
 public:
  explicit ProxmoxAnswers(std::unique_ptr<HttpClient> inner) : inner_(std::move(inner)) {}
  HttpOutcome send(const HttpRequest& request) override {
    auto o = inner_->send(request);
    if (is_unknown_node_answer(o)) {
      o.kind = FailureKind::client;
    }
    return o;
  }
  void cancel() override { inner_->cancel(); }

 private:
  std::unique_ptr<HttpClient> inner_;
};

}  // namespace

ProxmoxUpstream::ProxmoxUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                                 FailoverSink sink)
    : settings_(settings),
      upstream_({.name = "proxmox",
                 .display = "Proxmox",
                 .health = settings.read(health_settings),
                 .retry = settings.read(retry_policy),
                 .hedge = settings.read(hedge_settings),
                 .transport = std::make_unique<SettingsTransport>(
                     settings,
                     [](const Settings& s) { return make_curl_client(proxmox_http_options(s)); }),
                 .wrap = [](std::unique_ptr<HttpClient> inner) -> std::unique_ptr<HttpClient> {
                   return std::make_unique<OnePerHost>(
                       std::make_unique<ProxmoxAnswers>(std::move(inner)));
                 }},
                clock, interrupt, [&](UpstreamMonitor& monitor, std::function<double()> random) {
                  return std::make_unique<HostManager>(settings.read(host_options), monitor, clock,
                                                       std::move(random), std::move(sink));
                }) {
  auto& hosts = upstream_.policy();
  client_ = std::make_unique<ProxmoxClient>(
      settings.read(proxmox_client_options),
      [this](const HttpRequest& request) { return upstream_.send(request); }, clock,
      ProxmoxFailover{[&hosts] { return hosts.use_local(); },
                      [&hosts] { return hosts.has_usable_peer(); },
                      [&hosts](const std::string& reason) { hosts.local_failed(reason); },
                      &upstream_.hedging()});
}

void ProxmoxUpstream::health_round() {
  auto& hosts = upstream_.policy();
  // Membership first: it tells the state of the hosts that are not probed,
  // and discovery may add hosts.
  if (auto status = client_->cluster_status()) {
    hosts.discovered(*status);
  } else {
    log::debug("proxmox_cluster_status", "cannot read /cluster/status",
               {{"error", status.error().message}});
  }
  const auto peers = static_cast<std::size_t>(settings_.get()->health_check_peers);
  for (const auto& host : hosts.probe_targets(peers)) {
    if (upstream_.monitor().circuit(host) != CircuitState::open) {
      // The monitor has the outcome (ObservingClient); the debug log says why.
      if (auto checked = client_->check_health(host); !checked) {
        log::debug("proxmox_health_check", checked.error().message, {{"host", host}});
      }
    }
  }
  hosts.evaluate();
}

}  // namespace pha
