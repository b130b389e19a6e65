#pragma once
// The agent's own HTTP/1.1 server (docs/http-api.md "Limits"), on Boost.Asio and
// Boost.Beast: one io_context thread accepts, reads, parses (Beast's parser,
// with our limits: wire.hpp) and writes every connection without blocking, so
// that slow or hostile clients cost a file descriptor and a few kilobytes
// each and never a thread. Handlers that answer from memory run on that
// thread; handlers that must wait on an upstream run on a small worker pool
// (asio::thread_pool) and hand their answer back to it.
//
// Limits: connections (at the cap a newcomer takes the place of a connection
// that is closing, idle or slowest to send its request; a canned 503 and close
// only when every connection has a job or an answer under way), request line and
// headers (431/414), body (413, decided from Content-Length before reading it),
// a deadline for a whole request's headers and body (slowloris: 408 and close),
// an idle keep-alive timeout, a write timeout (deadlines are checked every
// 50 ms). Optional TLS (asio::ssl on OpenSSL, TLS >= 1.2), its certificate
// replaceable while running (reload_tls).
// Every answer, the server's own errors included, carries X-Request-ID (the
// client's when it sent a sane one) and errors are JSON {"error": ..., "message": ...}.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/core/result.hpp"

namespace pha::http {

struct Request {
  std::string method;  // as sent (HEAD is dispatched with method "HEAD")
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded, without the query
  std::string query;   // raw, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string peer;            // the client's address, textual (no port)
  bool peer_loopback = false;  // 127.0.0.0/8, ::1, ::ffff:127.x
  std::string request_id;      // the X-Request-ID the answer will carry
  bool tls = false;

  // The first header with that (lower-case) name, or "".
  std::string_view header(std::string_view lower_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
};

// A JSON error answer: {"error": code, "message": message}.
Response error_response(int status, std::string_view code, std::string_view message);

// What a handler does with a request: answer now (on the event loop; must not
// block), or hand a job to the worker pool (it may block; its answer is sent
// when it returns).
struct Dispatch {
  std::optional<Response> now;
  std::function<Response()> job;
};
using Dispatcher = std::function<Dispatch(const Request&)>;

struct ServerOptions {
  std::string bind_address = "127.0.0.1";  // IPv4 or IPv6 literal; "::" is dual-stack
  int port = 0;                            // 0: the kernel picks one (see Server::port())
  std::string tls_cert_file;               // both set: HTTPS
  std::string tls_key_file;
  std::size_t max_connections = 512;
  std::size_t max_body_bytes = std::size_t{64} * 1024;
  std::size_t max_header_bytes = std::size_t{16} * 1024;  // request line + headers
  std::size_t max_headers = 100;
  std::chrono::milliseconds request_timeout{
      10'000};                                     // whole request (headers + body), TLS handshake
  std::chrono::milliseconds idle_timeout{30'000};  // between keep-alive requests
  std::chrono::milliseconds write_timeout{10'000};
  std::size_t max_requests_per_connection = 1000;
  std::size_t workers = 2;           // threads for Dispatch::job
  std::size_t max_queued_jobs = 16;  // more: 503
};

// Counters, for /metrics and /health. All monotonic except the gauges.
struct ServerStats {
  std::uint64_t connections_accepted = 0;
  // At max_connections: newcomers refused, and idle or slow connections closed to make room.
  std::uint64_t connections_rejected = 0;
  std::uint64_t connections_timed_out = 0;
  std::uint64_t tls_handshake_failures = 0;
  std::uint64_t tls_reload_failures = 0;  // reload_tls() calls that kept the old certificate
  std::uint64_t requests = 0;             // answered, any status
  std::uint64_t bad_requests = 0;  // answered by the server itself with 4xx (parse errors, limits)
  std::uint64_t jobs_rejected = 0;
  std::size_t connections_open = 0;  // gauge
  std::size_t jobs_running = 0;      // gauge
  std::size_t jobs_queued = 0;       // gauge
  // The longest time a running job has been running (0 when none): a stuck worker shows here.
  std::chrono::milliseconds oldest_job_age{0};
  // Time since the loop thread last checked the deadlines (every 50 ms); large means it is stuck.
  std::chrono::milliseconds loop_lag{0};
};

class Server {
 public:
  Server(ServerOptions options, Dispatcher dispatcher);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads. The error names the address, or
  // the TLS file that could not be used, and why.
  Status start();
  // The bound port (the real one when options.port was 0).
  int port() const;
  bool tls() const;
  // Certificate renewal (SIGHUP): a new TLS context from these files, which
  // must parse and match as at start (the error says which file and why).
  // Connections accepted from then on use it; those already open keep the
  // one they were accepted with. On an error the context in use stays.
  // Thread-safe; only for a server started with TLS (HTTPS cannot be
  // switched on or off while running).
  Status reload_tls(const std::string& cert_file, const std::string& key_file);
  // Stops accepting, closes every connection, waits for running jobs, joins.
  void stop();
  ServerStats stats() const;
  // Answers counted by status code, for /metrics.
  std::vector<std::pair<int, std::uint64_t>> responses_by_status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pha::http
