#pragma once
// Outgoing HTTP as the agent sees it: a request, and an outcome value that
// every caller must look at. Every outcome is classified once, here, into a
// failure kind of docs/failover.md "Failure kinds".

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/result.hpp"

namespace pha {

enum class FailureKind { ok, network, timeout, tls, server, rate_limited, auth, client };

std::string_view to_string(FailureKind k);
// A failure that counts against the host or endpoint (its health, its breaker).
bool is_host_failure(FailureKind k);
// Whether retrying can help (network, timeout, server; rate_limited after Retry-After).
bool is_retryable(FailureKind k);
// The kind of a completed HTTP exchange, from its status alone: 2xx ok, 401/403
// auth, 429 rate_limited, 5xx (and Proxmox's 595/596) server, 501 and other
// 4xx client. (A 501 is Proxmox's "no such method": an API error.)
FailureKind classify_status(int status);
// The error kind of a failed exchange (not ok): the same name.
ErrorKind error_kind(FailureKind k);
// An error that counts against the host that answered: a host failure, or
// an answer that is not what the protocol says (a host serving garbage is
// as good as down for the caller).
bool is_host_failure(ErrorKind k);

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // full URL: scheme://host:port/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // 0 = the client's configured total timeout.
  std::chrono::milliseconds timeout{0};
  // Whether sending it twice is harmless (GET, HEAD, PUT to an existing id...).
  // Only idempotent requests are retried quietly on a stale kept-alive connection.
  bool idempotent = true;
  // false: one attempt only, and its outcome says nothing about the upstream's
  // health (it is not fed to the retry budget): for best-effort calls whose
  // failure is an ordinary answer, such as a guest agent that does not run.
  bool retry = true;
  // A health check: one attempt, outside the retry budget, but its outcome
  // is what the target's health is made of.
  bool health_check = false;
  // Any target of the upstream can answer it (cluster-wide state, or any
  // AccountDB endpoint): the failover layer may send it to another host than
  // the one in `url`. false: only the host in `url` (Proxmox `/nodes/{node}/`
  // calls, which a peer would forward back to that node anyway).
  bool any_target = false;
  // A hedge (agent/net/hedge.hpp) of a request to this target (a URL):
  // the selection policy leaves that target out.
  std::string hedge_of;
};

struct HttpOutcome {
  FailureKind kind = FailureKind::network;
  int status = 0;      // 0 when no HTTP response arrived
  std::string reason;  // the HTTP reason phrase (Proxmox puts its error message there)
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::chrono::milliseconds elapsed{0};
  std::string error;  // for failures: what went wrong, for an operator; never a secret
  // False when the request surely did not reach the server (connection
  // refused, DNS failure, TLS rejected before sending): a non-idempotent
  // request may then be retried safely.
  bool maybe_sent = false;
  std::optional<std::chrono::seconds> retry_after;  // from a Retry-After header

  bool ok() const { return kind == FailureKind::ok; }
  std::string header(std::string_view lower_name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Sends one request (no retries across attempts: that is the retry layer's
  // job). Thread-safe: several requests may be in flight at once.
  virtual HttpOutcome send(const HttpRequest& request) = 0;
  // Shutdown: transfers in progress end within about a second, and later
  // ones fail at once (a `network` failure). Safe from any thread.
  virtual void cancel() {}
};

// A hedged attempt (agent/net/hedge.hpp) runs on a thread of its own.
// Once its race is decided without it, it is abandoned: the transport ends
// its transfer soon after (libcurl's progress callback, at most about a
// second), no retry follows, and its outcome is neither counted nor held
// against the target. A thread outside a race is never abandoned.
class AbandonScope {
 public:
  explicit AbandonScope(std::shared_ptr<const std::atomic<bool>> flag);
  ~AbandonScope();
  AbandonScope(const AbandonScope&) = delete;
  AbandonScope& operator=(const AbandonScope&) = delete;

 private:
  std::shared_ptr<const std::atomic<bool>> previous_;
};
// The flag of the race the current thread runs an attempt for (null outside one).
const std::atomic<bool>* abandon_flag();
bool abandoned();

// How the upstreams' clients send: one request, through whatever retry and
// failover the application wires in (agent/upstream/failover_router.hpp), or a
// fake in tests.
using Transport = std::function<HttpOutcome(const HttpRequest&)>;

}  // namespace pha
