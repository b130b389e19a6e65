#include "agent/upstream/accountdb_upstream.hpp"

#include "agent/core/url.hpp"
#include "agent/upstream/options.hpp"

namespace pha {

AccountDbUpstream::AccountDbUpstream(const LiveSettings& settings, Clock& clock,
                                     Interrupt& interrupt, FailoverSink sink)
    : monitor_("accountdb", clock, settings.read(health_settings)),
      pool_(settings.read(pool_options), monitor_, clock, std::move(sink)),
      router_(std::make_unique<ObservingClient>(
                  make_curl_client(accountdb_http_options(*settings.get())), monitor_),
              monitor_, settings.read(retry_policy), clock, interrupt, "AccountDB",
              [this] { return random_(); }),
      client_(std::make_unique<AccountDbClient>(
          settings.read(accountdb_client_options),
          [this](const HttpRequest& request) { return route(request); })) {}

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

}  // namespace pha
