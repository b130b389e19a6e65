#include "agent/notify/webhook_options.hpp"

#include <algorithm>

#include "agent/net/curl_client.hpp"
#include "agent/upstream/options.hpp"

namespace pha {

namespace {
constexpr std::size_t kWebhookMaxBody = std::size_t{64} << 10;  // the answer is not read
}  // namespace

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

}  // namespace pha
