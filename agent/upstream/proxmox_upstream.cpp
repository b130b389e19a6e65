#include "agent/upstream/proxmox_upstream.hpp"

#include <map>
#include <mutex>

#include "agent/core/url.hpp"
#include "agent/platform/logging.hpp"
#include "agent/upstream/options.hpp"

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

}  // namespace

ProxmoxUpstream::ProxmoxUpstream(const LiveSettings& settings, Clock& clock, Interrupt& interrupt,
                                 FailoverSink sink)
    : settings_(settings),
      monitor_("proxmox", clock, settings.read(health_settings)),
      hosts_(
          settings.read(host_options), monitor_, clock, [this] { return random_(); },
          std::move(sink)),
      router_(std::make_unique<OnePerHost>(std::make_unique<ObservingClient>(
                  make_curl_client(proxmox_http_options(*settings.get())), monitor_)),
              monitor_, settings.read(retry_policy), clock, interrupt, "Proxmox",
              [this] { return random_(); }) {
  auto options = proxmox_client_options(*settings.get());
  options.credentials = settings.read(proxmox_credentials);
  client_ = std::make_unique<ProxmoxClient>(
      std::move(options), [this](const HttpRequest& request) { return route(request); }, clock,
      ProxmoxFailover{[this] { return hosts_.use_local(); },
                      [this] { return hosts_.has_usable_peer(); },
                      [this](const std::string& reason) { hosts_.local_failed(reason); }});
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
  const auto host = matching_base(request.url, hosts_.hosts());
  return router_.send(request, host, {host}, !hosts_.has_usable_peer()).outcome;
}

void ProxmoxUpstream::health_round() {
  for (const auto& host : hosts_.hosts()) {
    if (monitor_.circuit(host) != CircuitState::open) {
      // The monitor has the outcome (ObservingClient); the debug log says why.
      if (auto checked = client_->check_health(host); !checked) {
        log::debug("proxmox_health_check", checked.error().message, {{"host", host}});
      }
    }
  }
  if (settings_.get()->proxmox_discover_hosts) {
    if (auto status = client_->cluster_status()) {
      hosts_.discovered(*status);
    } else {
      log::debug("proxmox_discovery", "cannot read /cluster/status for discovery",
                 {{"error", status.error().message}});
    }
  }
  hosts_.evaluate();
}

}  // namespace pha
