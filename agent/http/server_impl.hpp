#pragma once
// The insides of Server (server.hpp), shared by its three files: server.cpp
// (start, stop, the tick, the worker pool), admission.cpp (accepting and the
// connection cap) and connection.cpp (one connection's reads and writes).
// Nothing outside agent/http/ includes it.

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include "agent/core/backoff.hpp"
#include "agent/http/server.hpp"
#include "agent/http/wire.hpp"

namespace pha::http {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

inline Response internal_error() {
  return error_response(500, "internal_error", "the server failed to answer this request");
}

struct Server::Impl {
  struct Conn;
  Impl(ServerOptions o, Dispatcher d) : options(std::move(o)), dispatcher(std::move(d)) {
    read_cap = options.max_header_bytes + options.max_body_bytes + 4096;
  }

  ServerOptions options;
  Dispatcher dispatcher;
  std::size_t read_cap = 0;  // a connection's unframed bytes: one maximal request and a bit
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer tick_timer{io};
  asio::steady_timer accept_timer{io};
  std::atomic<bool> tls{false};  // set by start(): the server speaks TLS, for its whole life
  std::mutex tls_mutex;
  std::shared_ptr<ssl::context> ssl_ctx;  // under tls_mutex; reload_tls() replaces it
  std::unique_ptr<asio::thread_pool> pool;
  std::thread loop;
  std::atomic<int> bound_port{0};
  std::mutex stop_mutex;  // start() and stop()
  bool started = false;
  bool stopped = false;
  std::atomic<bool> stopping{false};

  // The loop thread only.
  std::unordered_map<std::uint64_t, std::shared_ptr<Conn>> conns;
  std::uint64_t next_id = 1;
  RandomSource ids;
  TimePoint last_cap_warning{};
  TimePoint last_accept_warning{};

  std::mutex jobs_mutex;
  std::size_t queued = 0;
  std::multiset<TimePoint> running;  // when each running job started

  std::atomic<std::uint64_t> accepted{0}, rejected{0}, timed_out{0}, handshake_failures{0},
      requests{0}, bad_requests{0}, jobs_rejected{0}, tls_reload_failures{0};
  std::atomic<std::size_t> open{0};
  std::atomic<Clock::rep> last_tick{0};
  std::atomic<bool> loop_running{false};
  std::array<std::atomic<std::uint64_t>, 600> by_status{};

  Status start();
  // The context new connections get (null without TLS).
  std::shared_ptr<ssl::context> tls_context();
  Status reload_tls(const std::string& cert_file, const std::string& key_file);
  Status listen();
  void stop();
  void accept();
  void on_accept(error_code ec, tcp::socket s);
  void admit(tcp::socket s);
  bool make_room();
  void reject(tcp::socket& s);
  void warn_capped(std::string_view message);
  void tick();
  Dispatch call(const Request& req);
  bool submit(std::weak_ptr<Conn> conn, std::function<Response()> job, const Request& req);
  std::string new_request_id() { return ids.hex_id(); }
};

// One connection. Every member runs on the loop thread; at most one read and
// one write are under way, never both: the next request is read only once
// the answer to the last one is written.
struct Server::Impl::Conn : std::enable_shared_from_this<Conn> {
  Conn(Impl& s, tcp::socket sock) : srv(s), socket(std::move(sock)), reader(s.options) {}

  Impl& srv;
  tcp::socket socket;
  // The context the connection was accepted with: a reload does not pull it
  // from under the stream (declared first, so the stream goes first).
  std::shared_ptr<ssl::context> tls_ctx;
  std::optional<ssl::stream<tcp::socket&>> tls;
  RequestReader reader;
  std::optional<Answer> out;
  std::uint64_t id = 0;
  std::string peer;
  bool loopback = false;
  bool handshaking = false, reading = false, writing = false, busy = false, draining = false,
       closed = false, peer_eof = false, request_open = false, late = false;
  bool answer_head = false, answer_keep_alive = true;
  std::string answer_id;
  std::size_t answered = 0, lingered = 0;
  TimePoint ready_at{}, request_started{}, idle_since{}, write_since{}, linger_until{};

  // Runs f on the stream the bytes go through.
  template <class F>
  void io(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(socket);
    }
  }
  auto done(void (Conn::*member)(error_code, std::size_t)) {
    return [self = shared_from_this(), member](error_code ec, std::size_t n) {
      ((*self).*member)(ec, n);
    };
  }

  void start();
  void drive();
  void read();
  void on_read(error_code ec, std::size_t n);
  void dispatch(RequestReader::Ready ready);
  void job_done(Response r);
  void refuse(const Refusal& r);
  void answer(Response r);
  void write_continue();
  void on_written(error_code ec, std::size_t);
  void linger();
  void close();
  TimePoint deadline() const;
  void expire();
};

}  // namespace pha::http
