#include "agent/notify/webhook.hpp"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "agent/core/url.hpp"
#include "agent/core/version.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/thread_guard.hpp"
#include "agent/upstream/failover_router.hpp"

namespace pha {

namespace {

constexpr auto kBreakerPoll = std::chrono::seconds(1);

// The curl client names the URL (without its query) in its messages; a
// receiver's path may be its secret, so messages show the origin instead.
std::string scrub(std::string message, const std::string& url, const std::string& shown) {
  const auto bare = url.substr(0, url.find('?'));
  for (const auto& needle : {url, bare}) {
    for (auto at = message.find(needle); at != std::string::npos;
         at = message.find(needle, at + shown.size())) {
      message.replace(at, needle.size(), shown);
    }
  }
  return message;
}

bool refused(FailureKind k) {
  return k == FailureKind::tls || k == FailureKind::auth || k == FailureKind::client;
}

}  // namespace

std::string webhook_body(const WebhookEvent& e, std::int64_t timestamp, const std::string& node,
                         std::string_view version) {
  nlohmann::json body = {{"event", e.name},
                         {"timestamp", timestamp},
                         {"node", node},
                         {"agent_version", std::string(version)}};
  if (e.fields.is_object()) {
    for (const auto& [key, value] : e.fields.items()) {
      body.emplace(key, value);  // never replaces the four above
    }
  }
  return body.dump();
}

std::string webhook_signature(std::string_view token, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

struct Webhooks::Receiver {
  std::string url;
  std::string shown;
  RetryBudget budget;
  std::thread thread;

  std::mutex mutex;  // below
  std::condition_variable cv;
  std::deque<std::pair<std::string, std::string>> queue;  // event name, body
  bool stopping = false;
  WebhookReceiverStats stats;
};

Webhooks::Webhooks(Live<WebhookOptions> options, std::unique_ptr<HttpClient> http, Clock& clock,
                   std::function<std::string()> node, std::function<double()> random)
    : options_(std::move(options)),
      start_(options_()),
      clock_(clock),
      monitor_("webhook", clock, options_.map([](const WebhookOptions& o) { return o.health; })),
      http_(std::make_unique<ObservingClient>(std::move(http), monitor_)),
      node_(std::move(node)),
      random_(std::move(random)) {
  if (!random_) {
    random_ = [this] { return entropy_(); };
  }
  std::vector<TargetInfo> targets;
  std::vector<std::string> shown;
  for (const auto& url : start_.urls) {
    auto r = std::make_unique<Receiver>();
    r->url = url;
    // Two receivers on one origin are told apart by their place in the list.
    r->shown = url_display(url);
    if (std::count(shown.begin(), shown.end(), r->shown) > 0) {
      r->shown += " #" + std::to_string(receivers_.size() + 1);
    }
    shown.push_back(url_display(url));
    r->stats.url = r->shown;
    targets.push_back({.url = url, .source = "config"});
    receivers_.push_back(std::move(r));
  }
  monitor_.set_targets(targets);
}

Webhooks::~Webhooks() {
  stop();
}

void Webhooks::start() {
  for (auto& r : receivers_) {
    if (!r->thread.joinable()) {
      r->thread = std::thread([this, &rec = *r] { run_guarded("webhook", [&] { run(rec); }); });
    }
  }
}

void Webhooks::stop() {
  interrupt_.request_stop();
  http_->cancel();  // a delivery that hangs ends within about a second
  for (auto& r : receivers_) {
    {
      std::lock_guard lock(r->mutex);
      r->stopping = true;
    }
    r->cv.notify_all();
  }
  for (auto& r : receivers_) {
    if (r->thread.joinable()) {
      r->thread.join();
    }
  }
}

bool Webhooks::wants(std::string_view event) const {
  const auto events = options_().events;
  return !receivers_.empty() && std::find(events.begin(), events.end(), event) != events.end();
}

void Webhooks::publish(const WebhookEvent& event) {
  if (!wants(event.name)) {
    return;
  }
  const auto body =
      webhook_body(event, clock_.unix_now(), node_ ? node_() : std::string(), kVersion);
  const auto capacity = options_().queue_size;
  ++published_;
  for (auto& r : receivers_) {
    bool dropped = false;
    {
      std::lock_guard lock(r->mutex);
      while (r->queue.size() >= capacity) {
        r->queue.pop_front();
        r->stats.dropped_queue_full++;
        dropped = true;
      }
      r->queue.emplace_back(event.name, body);
    }
    r->cv.notify_one();
    if (dropped) {
      log::warn("webhook_dropped", "the webhook queue is full: the oldest event was dropped",
                {{"receiver", r->shown}, {"queue_size", capacity}});
    }
  }
}

void Webhooks::run(Receiver& r) {
  int failed_rounds = 0;
  for (;;) {
    std::pair<std::string, std::string> next;
    {
      std::unique_lock lock(r.mutex);
      r.cv.wait(lock, [&r] { return r.stopping || !r.queue.empty(); });
      if (r.stopping) {
        return;
      }
      next = r.queue.front();  // stays queued (and counted) until it is done with
    }
    // An open breaker: the event waits untried until a trial may go.
    if (monitor_.circuit(r.url) == CircuitState::open) {
      if (clock_.wait_for(interrupt_, kBreakerPoll) == WakeReason::stopped) {
        return;
      }
      continue;
    }
    if (deliver(r, next)) {
      failed_rounds = 0;
      continue;
    }
    const auto delay = backoff_delay(options_().retry, ++failed_rounds, random_ ? random_() : 0.5);
    if (clock_.wait_for(interrupt_, delay) == WakeReason::stopped) {
      return;
    }
  }
}

bool Webhooks::deliver(Receiver& r, const std::pair<std::string, std::string>& next) {
  const auto& [event, body] = next;
  HttpRequest request;
  const auto policy = options_().retry;
  request.timeout = start_.timeout;
  request.headers = {{"Content-Type", "application/json"}, {"X-Webhook-Event", event}};
  if (!start_.token.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + start_.token);
    request.headers.emplace_back("X-Signature", webhook_signature(start_.token, body));
  }
  request.method = "POST";
  request.url = r.url;
  request.body = body;
  request.idempotent = false;
  const RouteContext ctx{*http_, &monitor_,  r.budget, policy,
                         clock_, interrupt_, random_,  "webhook"};
  const auto routed = route_request(ctx, request, r.url, {r.url}, true);
  const auto& o = routed.outcome;
  std::lock_guard lock(r.mutex);
  const auto done = [&r, &next] {
    // publish() may have dropped it meanwhile for a newer one.
    if (!r.queue.empty() && r.queue.front() == next) {
      r.queue.pop_front();
    }
    return true;
  };
  if (o.ok()) {
    r.stats.delivered++;
    r.stats.last_delivery = clock_.unix_now();
    return done();
  }
  if (interrupt_.stop_requested()) {
    return false;
  }
  auto error = o.error.empty() ? "HTTP " + std::to_string(o.status) : o.error;
  error = scrub(std::move(error), r.url, r.shown);
  r.stats.last_error = error;
  const log::Fields fields = {{"receiver", r.shown},
                              {"event", event},
                              {"kind", std::string(to_string(o.kind))},
                              {"status", o.status},
                              {"error", error}};
  if (refused(o.kind)) {
    r.stats.dropped_rejected++;
    log::warn("webhook_rejected", "a webhook receiver refused an event; it is dropped", fields);
    return done();
  }
  r.stats.failed++;
  log::warn("webhook_failed", "a webhook delivery failed; the event stays queued", fields);
  return false;
}

WebhookStats Webhooks::stats() const {
  WebhookStats s;
  s.enabled = !receivers_.empty();
  s.events = options_().events;
  s.published = published_.load();
  for (const auto& r : receivers_) {
    std::lock_guard lock(r->mutex);
    auto st = r->stats;
    st.queued = r->queue.size();
    st.circuit = monitor_.circuit(r->url);
    s.receivers.push_back(std::move(st));
  }
  return s;
}

}  // namespace pha
