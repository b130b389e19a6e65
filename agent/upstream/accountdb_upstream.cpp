#include "agent/upstream/accountdb_upstream.hpp"

#include "agent/upstream/options.hpp"
#include "agent/upstream/settings_transport.hpp"

namespace pha {

AccountDbUpstream::AccountDbUpstream(const LiveSettings& settings, Clock& clock,
                                     Interrupt& interrupt, FailoverSink sink)
    : upstream_({.name = "accountdb",
                 .display = "AccountDB",
                 .health = settings.read(health_settings),
                 .retry = settings.read(retry_policy),
                 .hedge = settings.read(hedge_settings),
                 .transport = std::make_unique<SettingsTransport>(
                     settings,
                     [](const Settings& s) { return make_curl_client(accountdb_http_options(s)); }),
                 .wrap = {}},
                clock, interrupt,
                [&](UpstreamMonitor& monitor, const std::function<double()>& /*random*/) {
                  return std::make_unique<EndpointPool>(settings.read(pool_options), monitor, clock,
                                                        std::move(sink));
                }),
      client_(std::make_unique<AccountDbClient>(
          settings.read(accountdb_client_options),
          [this](const HttpRequest& request) { return upstream_.send(request); })) {}

void AccountDbUpstream::recovery_round() {
  for (const auto& endpoint : pool().to_check()) {
    // The monitor has the outcome (ObservingClient); the client logged it.
    static_cast<void>(client_->check_endpoint(endpoint));
  }
}

}  // namespace pha
