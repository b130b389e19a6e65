#include "agent/upstream/accountdb_upstream.hpp"

#include "agent/core/url.hpp"
#include "agent/upstream/options.hpp"

namespace pha {

AccountDbUpstream::AccountDbUpstream(const Settings& settings, Clock& clock, Interrupt& interrupt,
                                     FailoverSink sink)
    : monitor_("accountdb", clock, health_settings(settings)),
      pool_(settings.accountdb_endpoints, settings.accountdb_strategy, monitor_, clock,
            std::move(sink)),
      router_(std::make_unique<ObservingClient>(make_curl_client(accountdb_http_options(settings)),
                                                monitor_),
              monitor_, retry_policy(settings), clock, interrupt, "AccountDB",
              [this] { return random_(); }) {
  pool_.set_switches(settings.auto_failover, settings.auto_recovery);
  AccountDbClientOptions o;
  o.endpoint = settings.accountdb_endpoints.front().url;
  o.api_key = settings.accountdb_api_key;
  o.node_id = settings.accountdb_node_id;
  o.timeout = std::chrono::seconds(settings.accountdb_timeout);
  client_ = std::make_unique<AccountDbClient>(
      o, [this](const HttpRequest& request) { return route(request); });
}

HttpOutcome AccountDbUpstream::route(const HttpRequest& request) {
  std::vector<std::string> bases;
  for (const auto& t : monitor_.targets()) {
    bases.push_back(t.info.url);
  }
  const auto base = matching_base(request.url, bases);
  if (!request.any_target) {
    return router_.send(request, base, {base}, false).outcome;
  }
  auto routed = router_.send(request, base, pool_.order(), true, true);
  pool_.answered(routed);
  return std::move(routed.outcome);
}

void AccountDbUpstream::recovery_round() {
  for (const auto& endpoint : pool_.to_check()) {
    // The monitor has the outcome (ObservingClient); the client logged it.
    static_cast<void>(client_->check_endpoint(endpoint));
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
