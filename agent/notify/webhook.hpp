#pragma once
// Webhooks: each event the operator chose (WEBHOOK_EVENTS) is POSTed as one
// JSON object to every receiver of WEBHOOK_URLS. Delivery never blocks the
// caller: each receiver has a bounded queue (the oldest event is dropped and
// counted when it is full) and its own thread, which sends through the
// agent's one retry layer (route_request: backoff, Retry-After, a retry
// budget) and a breaker per receiver. While a receiver's breaker is open its
// events wait in the queue, untried, and go out once a trial succeeds; an
// event the receiver refuses (tls, auth, other 4xx) is dropped and counted.
//
// With WEBHOOK_TOKEN set, every request carries `Authorization: Bearer` and
// `X-Signature: sha256=<hex HMAC-SHA256 of the body keyed with the token>`.
// A receiver's URL is shown by its origin only: many receivers keep their own
// secret in the path.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/backoff.hpp"
#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/net/http.hpp"
#include "agent/net/retry.hpp"
#include "agent/upstream/upstream_monitor.hpp"

namespace pha {

struct WebhookEvent {
  std::string name;  // one of kWebhookEventNames
  nlohmann::json fields = nlohmann::json::object();
};

// The body: {"event", "timestamp", "node", "agent_version"} and the event's
// own fields (which never replace those four).
std::string webhook_body(const WebhookEvent& e, std::int64_t timestamp, const std::string& node,
                         std::string_view version);

// "sha256=" and the lower-case hex HMAC-SHA256 of `body` keyed with `token`.
std::string webhook_signature(std::string_view token, std::string_view body);

struct WebhookOptions {
  std::vector<std::string> urls;
  std::string token;  // "" = no Authorization and no X-Signature
  std::chrono::milliseconds timeout{5000};
  std::vector<std::string> events;  // the names that are sent
  std::size_t queue_size = 100;     // per receiver
  RetryPolicy retry;
  HealthSettings health;  // the breaker of each receiver
};

struct WebhookReceiverStats {
  std::string url;  // shown form: the origin, "/..." when there is more
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;              // deliveries that failed after their retries
  std::uint64_t dropped_queue_full = 0;  // oldest events dropped for a newer one
  std::uint64_t dropped_rejected = 0;    // events the receiver refused (tls, auth, 4xx)
  std::size_t queued = 0;
  CircuitState circuit = CircuitState::closed;
  std::optional<std::int64_t> last_delivery;  // unix seconds
  std::optional<std::string> last_error;
};

struct WebhookStats {
  bool enabled = false;
  std::vector<std::string> events;
  std::uint64_t published = 0;  // events accepted for sending (before any queue)
  std::vector<WebhookReceiverStats> receivers;
};

class Webhooks {
 public:
  // `http` sends for every receiver at once (it must be thread-safe); the
  // node's name is read when an event is published. `random` returns numbers
  // in [0, 1) for the backoff's jitter.
  // The events, queue size, retry policy and health settings are read when
  // used (a reload changes them); the URLs, token and timeout are the start's.
  Webhooks(Live<WebhookOptions> options, std::unique_ptr<HttpClient> http, Clock& clock,
           std::function<std::string()> node, std::function<double()> random);
  ~Webhooks();
  Webhooks(const Webhooks&) = delete;
  Webhooks& operator=(const Webhooks&) = delete;

  // Starts one thread per receiver; stop() ends them, a delivery in progress
  // within about a second (queued events are dropped).
  void start();
  void stop();

  bool wants(std::string_view event) const;
  // Queues the event for every receiver when it is one the operator chose;
  // returns at once.
  void publish(const WebhookEvent& event);

  WebhookStats stats() const;
  UpstreamMonitor& monitor() { return monitor_; }

 private:
  struct Receiver;
  void run(Receiver& r);
  // One event (name, body) to one receiver: true when it is done with (sent
  // or refused, and out of the queue).
  bool deliver(Receiver& r, const std::pair<std::string, std::string>& next);

  Live<WebhookOptions> options_;
  const WebhookOptions start_;
  Clock& clock_;
  UpstreamMonitor monitor_;
  std::unique_ptr<HttpClient> http_;
  std::function<std::string()> node_;
  RandomSource entropy_;  // the default of random_
  std::function<double()> random_;
  Interrupt interrupt_;
  std::vector<std::unique_ptr<Receiver>> receivers_;
  std::atomic<std::uint64_t> published_{0};
};

}  // namespace pha
