#pragma once
// A small HTTP/1.1 server for the simulators, written for them because they
// need what a general server library does not give: a free-text reason phrase
// (Proxmox puts its error messages there) and faults on the wire (a slow or
// hanging answer, a reset or truncated body, refused connections).
//
// One thread per connection (bounded), keep-alive with an idle timeout and a
// request limit per connection, Content-Length bodies only, gzip for large
// bodies when the client accepts it, optional TLS (1.2 or newer). Every wait
// ends promptly when the server stops.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace pha::sim {

struct WireRequest {
  std::string method;
  std::string target;   // as sent: path?query
  std::string path;     // the target up to '?'
  std::string query;    // after '?', still percent-encoded; "" when absent
  std::string version;  // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string peer;                 // "127.0.0.1:40000"
  std::size_t request_on_conn = 1;  // 1 for the first request of its connection
  bool tls = false;

  // The first value of a header ("" when absent); `lower_name` in lower case.
  std::string header(std::string_view lower_name) const;
  bool has_header(std::string_view lower_name) const;
};

// What happens to an answer on the wire.
enum class WireFault {
  none,
  hang,   // no answer: wait while `hang_while()` holds (the peer leaving or stop end it too), then
          // close
  reset,  // send the head and `cut_after` body bytes, then abort the connection (TCP RST)
  truncate,  // announce the full Content-Length, send `cut_after` body bytes, then close normally
};

struct WireResponse {
  int status = 200;
  std::string reason = "OK";  // free text
  // Extra headers. Date, Server, Connection and Content-Length are added by the
  // server (Content-Length only when there is a body or the connection stays open).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A streamed body instead of `body`: `stream` calls `write` with the pieces
  // of exactly `stream_length` bytes and stops when `write` returns false.
  // Never compressed.
  std::size_t stream_length = 0;
  std::function<void(const std::function<bool(std::string_view)>& write)> stream;
  bool close_after = false;  // close the connection after this answer
  bool compressible = true;  // may be gzip-compressed when the client accepts it

  // Wire behaviour.
  std::chrono::milliseconds delay{0};  // wait this long before answering (interruptible)
  WireFault fault = WireFault::none;
  std::size_t cut_after = 0;         // reset/truncate: body bytes sent before the cut
  std::function<bool()> hang_while;  // hang: empty means until the server stops
};

struct WireServerOptions {
  std::string name = "wire";  // for diagnostics only
  std::string bind_address = "127.0.0.1";
  int port = 0;                     // 0: any free port (see port())
  bool also_ipv6_loopback = false;  // also listen on [::1] with the same port, if possible
  std::string cert_pem_path;        // both set: serve HTTPS
  std::string key_pem_path;
  std::chrono::milliseconds idle_timeout{5000};   // Proxmox: 5 s
  std::size_t max_requests_per_connection = 100;  // Proxmox: 100
  std::size_t max_connections = 64;
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  std::size_t gzip_min_bytes = 1024;  // bodies larger than this are compressed when accepted
  bool close_on_error_status = true;  // status >= 400 closes the connection (Proxmox)
  std::string server_header = "pve-api-daemon/3.0";
};

class WireServer {
 public:
  using Handler = std::function<WireResponse(const WireRequest&)>;

  WireServer(WireServerOptions options, Handler handler);
  ~WireServer();
  WireServer(const WireServer&) = delete;
  WireServer& operator=(const WireServer&) = delete;

  // Binds and starts accepting; throws std::runtime_error when it cannot bind
  // or the certificate cannot be loaded.
  void start();
  // Closes every socket, ends every wait and joins every thread. Idempotent.
  void stop();
  bool running() const { return running_.load(); }

  int port() const { return port_.load(); }
  const std::string& bind_address() const { return options_.bind_address; }
  bool tls() const { return !options_.cert_pem_path.empty(); }
  // "http://127.0.0.1:PORT" ("https" with TLS; an IPv6 address in brackets).
  std::string url() const;

  // false: the host is "down": the listening sockets are closed (connection
  // attempts are refused) and open connections are closed. true: listen again
  // on the same port. Returns once the change is in effect; throws when the
  // port cannot be bound again.
  void set_accepting(bool accepting);
  bool accepting() const;

  std::size_t open_connections() const;
  std::size_t connections_accepted() const { return accepted_.load(); }
  // TCP payload bytes received from and sent to clients (TLS included),
  // counted after each answer and when a connection closes.
  std::uint64_t bytes_received() const { return bytes_in_.load(); }
  std::uint64_t bytes_sent() const { return bytes_out_.load(); }

  // Makes hanging answers re-check their `hang_while` now (else within 50 ms).
  void notify();

 private:
  struct Connection;
  struct Tls;

  void accept_loop();
  bool reconcile_listening();  // in the accept thread; false when re-binding failed
  void open_listeners();
  void close_listeners();
  void serve(Connection& conn);
  void reap(bool all);
  void close_connections();

  WireServerOptions options_;
  Handler handler_;
  std::unique_ptr<Tls> tls_;

  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<int> port_{0};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::uint64_t> bytes_in_{0};
  std::atomic<std::uint64_t> bytes_out_{0};
  int stop_pipe_[2] = {-1, -1};  // readable once stop() was called
  int wake_fd_ = -1;             // eventfd that wakes the accept loop

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<int> listen_fds_;
  bool want_accepting_ = true;
  bool is_accepting_ = false;
  std::string accept_error_;
  std::list<std::unique_ptr<Connection>> connections_;
  std::thread accept_thread_;
};

// gzip (RFC 1952) of `data`, as pveproxy sends it with Content-Encoding: gzip.
std::string gzip_compress(std::string_view data);

}  // namespace pha::sim
