#include "agent/http/server.hpp"

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/core/backoff.hpp"
#include "agent/http/wire.hpp"
#include "agent/platform/logging.hpp"

namespace pha::http {

std::string_view Request::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) {
      return value;
    }
  }
  return {};
}

Response error_response(int status, std::string_view code, std::string_view message) {
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"error", std::string(code)}, {"message", std::string(message)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::milliseconds;

constexpr TimePoint kNever = TimePoint::max();
// How often deadlines are checked and the loop-lag gauge is set.
constexpr milliseconds kTick{50};
// After a final answer: how long, and how much, a closing connection is read
// and discarded, so that a client still sending (a refused body) reads the
// answer instead of a reset.
constexpr milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = std::size_t{1024} * 1024;
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
constexpr std::size_t kKeptBuffer =
    std::size_t{16} * 1024;                // an idle connection's buffer keeps at most this
constexpr milliseconds kAcceptPause{100};  // out of file descriptors: accepting pauses
constexpr std::chrono::seconds kWarnEvery{60};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string host_port(std::string_view address, int port) {
  const bool v6 = address.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(address) + "]" : std::string(address)) + ":" +
         std::to_string(port);
}

Response internal_error() {
  return error_response(500, "internal_error", "the server failed to answer this request");
}

// What a handler returns, or `fallback` (and a log line) when it throws.
// The log fields are made only then: this runs for every request.
template <class T, class F, class Fields>
T guarded(F&& f, T fallback, const std::string& what, Fields&& fields) {
  try {
    return f();
  } catch (const std::exception& e) {
    log::warn("http_handler_failed", what + " threw: " + e.what(), fields());
  } catch (...) {
    log::warn("http_handler_failed", what + " threw", fields());
  }
  return fallback;
}

}  // namespace

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
  std::optional<ssl::context> ssl_ctx;
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
      requests{0}, bad_requests{0}, jobs_rejected{0};
  std::atomic<std::size_t> open{0};
  std::atomic<Clock::rep> last_tick{0};
  std::atomic<bool> loop_running{false};
  std::array<std::atomic<std::uint64_t>, 600> by_status{};

  Status start();
  Status setup_tls();
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

  void start() {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto address = socket.remote_endpoint(ignored).address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
      // A dual-stack listener: show the IPv4 client as IPv4.
      address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    peer = address.to_string();
    loopback = address.is_loopback();
    ready_at = Clock::now();
    if (!srv.ssl_ctx) {
      drive();
      return;
    }
    tls.emplace(socket, *srv.ssl_ctx);
    handshaking = true;
    tls->async_handshake(ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
      self->handshaking = false;
      if (self->closed) {
        return;
      }
      if (ec) {
        ++self->srv.handshake_failures;
        log::debug("http_tls_handshake_failed", "TLS handshake failed: " + ec.message(),
                   {{"peer", self->peer}});
        self->close();
        return;
      }
      self->ready_at = Clock::now();
      self->drive();
    });
  }

  // Frames and answers what the input holds, one request at a time.
  void drive() {
    while (!closed && !busy && !writing && !draining && !handshaking) {
      auto step = reader.next();
      if (auto* more = std::get_if<RequestReader::NeedMore>(&step)) {
        if (more->send_continue) {
          write_continue();
          return;
        }
        if (peer_eof) {
          close();  // nothing complete can come any more
          return;
        }
        break;
      }
      if (auto* refusal = std::get_if<Refusal>(&step)) {
        refuse(*refusal);
        return;
      }
      dispatch(std::get<RequestReader::Ready>(std::move(step)));
    }
    read();
  }

  void read() {
    auto& in = reader.input();
    if (reading || closed || busy || writing || peer_eof || handshaking ||
        (!draining && in.size() >= srv.read_cap)) {
      return;
    }
    if (in.size() == 0 && in.capacity() > kKeptBuffer) {
      in.shrink_to_fit();
    }
    reading = true;
    const auto room = draining ? kReadChunk : std::min(kReadChunk, srv.read_cap - in.size());
    io([&](auto& s) { s.async_read_some(in.prepare(room), done(&Conn::on_read)); });
  }

  void on_read(error_code ec, std::size_t n) {
    reading = false;
    if (closed) {
      return;
    }
    reader.input().commit(n);
    if (draining) {
      lingered += n;
      reader.input().consume(reader.input().size());
      if (ec || lingered > kLingerBytes) {
        close();
      } else {
        read();
      }
      return;
    }
    if (n > 0 && !request_open) {
      request_open = true;
      request_started = Clock::now();
    }
    if (late) {
      refuse(Refusal{408, "request_timeout", "the request took too long to arrive"});
      return;
    }
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      peer_eof = true;
    } else if (ec) {
      close();
      return;
    }
    drive();
  }

  void dispatch(RequestReader::Ready ready) {
    Request& req = ready.request;
    req.peer = peer;
    req.peer_loopback = loopback;
    req.tls = tls.has_value();
    if (req.request_id.empty()) {
      req.request_id = srv.new_request_id();
    }
    request_open = false;
    answer_head = req.method == "HEAD";
    answer_keep_alive = ready.keep_alive &&
                        answered + 1 < srv.options.max_requests_per_connection &&
                        !srv.stopping.load(std::memory_order_relaxed);
    answer_id = req.request_id;
    Dispatch d = srv.call(req);
    if (d.now) {
      answer(std::move(*d.now));
    } else if (srv.submit(weak_from_this(), std::move(d.job), req)) {
      // Nothing is read while the job runs, but a reset is seen at once.
      busy = true;
      socket.async_wait(tcp::socket::wait_error, [self = shared_from_this()](error_code ec) {
        if (!ec && self->busy) {
          self->close();
        }
      });
    } else {
      Response r = error_response(503, "busy", "too many requests waiting; try again later");
      r.headers.emplace_back("Retry-After", "1");
      answer(std::move(r));
    }
  }

  void job_done(Response r) {
    if (closed || !busy) {
      return;
    }
    busy = false;
    error_code ignored;
    socket.cancel(ignored);  // the wait for a reset
    answer(std::move(r));
  }

  void refuse(const Refusal& r) {
    ++srv.bad_requests;
    reader.reset();
    answer_head = r.head_method;
    answer_keep_alive = false;
    answer_id = r.request_id.empty() ? srv.new_request_id() : r.request_id;
    answer(error_response(r.status, r.code, r.message));
  }

  void answer(Response r) {
    if (r.status < 100 || r.status > 599) {
      r = internal_error();
    }
    ++srv.requests;
    ++srv.by_status[static_cast<std::size_t>(r.status)];
    ++answered;
    out.emplace(make_answer(std::move(r), answer_head, answer_keep_alive, answer_id));
    writing = true;
    write_since = Clock::now();
    io([&](auto& s) { boost::beast::http::async_write(s, *out, done(&Conn::on_written)); });
  }

  void write_continue() {
    writing = true;
    write_since = Clock::now();
    io([&](auto& s) {
      asio::async_write(s, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](error_code ec, std::size_t) {
                          self->writing = false;
                          if (ec) {
                            self->close();
                          } else {
                            self->drive();
                          }
                        });
    });
  }

  void on_written(error_code ec, std::size_t) {
    writing = false;
    out.reset();
    if (closed || ec) {
      close();
      return;
    }
    idle_since = Clock::now();
    if (!answer_keep_alive) {
      linger();
      return;
    }
    // A pipelined request already begun: its time runs from now.
    request_open = reader.input().size() > 0;
    request_started = idle_since;
    drive();
  }

  // The final answer is out: the write side closes, and what the client
  // still sends is read and dropped for a moment (over TLS: until its
  // close_notify), so that it sees the answer rather than a reset.
  void linger() {
    if (peer_eof) {
      close();
      return;
    }
    draining = true;
    linger_until = Clock::now() + std::min<milliseconds>(kLingerTime, srv.options.request_timeout);
    reader.reset();
    if (tls) {
      tls->async_shutdown([self = shared_from_this()](error_code) { self->close(); });
      return;
    }
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    read();
  }

  void close() {
    if (closed) {
      return;
    }
    const auto self = shared_from_this();
    closed = true;
    error_code ignored;
    socket.close(ignored);
    srv.conns.erase(id);
    srv.open.store(srv.conns.size(), std::memory_order_relaxed);
  }

  TimePoint deadline() const {
    const auto& o = srv.options;
    if (draining) {
      return linger_until;
    }
    if (handshaking) {
      return ready_at + o.request_timeout;
    }
    if (writing) {
      return write_since + o.write_timeout;
    }
    if (busy || late) {
      return kNever;
    }
    if (request_open) {
      return request_started + o.request_timeout;
    }
    return answered == 0 ? ready_at + o.request_timeout : idle_since + o.idle_timeout;
  }

  void expire() {
    if (draining) {
      close();  // lingered long enough
      return;
    }
    if (!handshaking && !writing && !request_open && answered > 0) {
      close();  // idle long enough
      return;
    }
    ++srv.timed_out;
    if (handshaking || writing || !request_open || !reading) {
      close();
      return;
    }
    // Slowloris: the read under way is cancelled, and its end answers 408.
    log::debug("http_request_timeout", "request not complete in time", {{"peer", peer}});
    late = true;
    error_code ignored;
    socket.cancel(ignored);
  }
};

// ---------------------------------------------------------------- start and stop

Status Server::Impl::setup_tls() {
  const auto& cert = options.tls_cert_file;
  const auto& key = options.tls_key_file;
  for (const auto& [what, path] : {std::pair{"certificate", &cert}, std::pair{"key", &key}}) {
    std::FILE* f = std::fopen(path->c_str(), "r");
    if (f == nullptr) {
      return Error{ErrorKind::io, std::string("cannot use TLS ") + what + " file " + *path + ": " +
                                      std::error_code(errno, std::generic_category()).message()};
    }
    std::fclose(f);
  }
  ssl_ctx.emplace(ssl::context::tls_server);
  SSL_CTX* ctx = ssl_ctx->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  std::uint64_t flags = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  flags |= SSL_OP_IGNORE_UNEXPECTED_EOF;  // a client gone without close_notify has simply gone
#endif
  SSL_CTX_set_options(ctx, flags);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  const auto mismatch =
      Error{ErrorKind::io, "TLS key file " + key + " does not match the certificate in " + cert};
  error_code ec;
  ssl_ctx->use_certificate_chain_file(cert, ec);
  if (ec) {
    return Error{ErrorKind::io, "cannot use TLS certificate file " + cert + ": " + ec.message()};
  }
  ssl_ctx->use_private_key_file(key, ssl::context::pem, ec);
  // OpenSSL checks the key against the certificate as it loads it.
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    return mismatch;
  }
  if (ec) {
    return Error{ErrorKind::io, "cannot use TLS key file " + key + ": " + ec.message()};
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return mismatch;
  }
  return {};
}

Status Server::Impl::listen() {
  std::string address = options.bind_address;
  if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  const std::string where = "cannot listen on " + host_port(address, options.port);
  if (options.port < 0 || options.port > 65535) {
    return Error{ErrorKind::io, where + ": the port is out of range"};
  }
  error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) {
    return Error{ErrorKind::io, where + ": not an IPv4 or IPv6 address"};
  }
  const tcp::endpoint endpoint(ip, static_cast<std::uint16_t>(options.port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  }
  if (!ec && ip.is_v6() && ip.is_unspecified()) {
    acceptor.set_option(asio::ip::v6_only(false), ec);  // "::" takes IPv4 clients too
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (!ec) {
    acceptor.non_blocking(true, ec);  // on_accept takes a burst without blocking the loop
  }
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return Error{ErrorKind::io, where + ": " + ec.message()};
  }
  bound_port = acceptor.local_endpoint(ec).port();
  log::debug("http_server_listening", "HTTP API listening on " + host_port(address, bound_port),
             {{"address", address}, {"port", bound_port.load()}, {"tls", ssl_ctx.has_value()}});
  return {};
}

Status Server::Impl::start() {
  std::lock_guard lock(stop_mutex);
  if (started) {
    return Error{ErrorKind::io, "the HTTP server was already started"};
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return Error{ErrorKind::io, "TLS needs both a certificate file and a key file"};
  }
  if (!options.tls_cert_file.empty()) {
    if (auto r = setup_tls(); !r) {
      ssl_ctx.reset();
      return r;
    }
  }
  if (auto r = listen(); !r) {
    return r;
  }
  started = true;
  pool = std::make_unique<asio::thread_pool>(std::max<std::size_t>(options.workers, 1));
  accept();
  tick();
  loop_running = true;
  loop = std::thread([this] {
    io.run();
    loop_running = false;
  });
  return {};
}

void Server::Impl::stop() {
  std::lock_guard lock(stop_mutex);
  if (!started || stopped) {
    return;
  }
  stopped = true;
  stopping = true;
  asio::post(io, [this] {
    error_code ignored;
    acceptor.close(ignored);
    tick_timer.cancel();
    accept_timer.cancel();
    std::vector<std::shared_ptr<Conn>> all;
    for (const auto& [id, c] : conns) {
      all.push_back(c);
    }
    for (const auto& c : all) {
      c->close();
    }
  });
  loop.join();
  pool->stop();  // jobs not started are dropped: nobody waits for their answers any more
  pool->join();
  {
    std::lock_guard jobs(jobs_mutex);
    queued = 0;
  }
  log::info("http_server_stopped", "HTTP API stopped");
}

// ---------------------------------------------------------------- the loop

void Server::Impl::accept() {
  acceptor.async_accept([this](error_code ec, tcp::socket s) { on_accept(ec, std::move(s)); });
}

void Server::Impl::on_accept(error_code ec, tcp::socket s) {
  if (stopping || ec == asio::error::operation_aborted) {
    return;
  }
  if (ec) {
    const auto now = Clock::now();
    if (now - last_accept_warning >= kWarnEvery || last_accept_warning == TimePoint{}) {
      last_accept_warning = now;
      log::warn("http_accept_failed", "cannot accept connections: " + ec.message(),
                {{"open_connections", conns.size()}});
    }
    accept_timer.expires_after(kAcceptPause);
    accept_timer.async_wait([this](error_code e) {
      if (!e && !stopping) {
        accept();
      }
    });
    return;
  }
  admit(std::move(s));
  // Every connection already waiting is taken now, not one per pass of the
  // loop: after a burst of clients (a Prometheus restart, a load test) the
  // last one would otherwise wait for every request of the others. Only
  // below the cap: at it, each newcomer gets a pass to send its request
  // before the next one may take its place (make_room).
  while (conns.size() < options.max_connections) {
    tcp::socket next(io);
    acceptor.accept(next, ec);  // non-blocking: would_block ends the burst
    if (ec) {
      break;
    }
    admit(std::move(next));
  }
  accept();
}

void Server::Impl::admit(tcp::socket s) {
  if (conns.size() >= options.max_connections && !make_room()) {
    reject(s);
    return;
  }
  ++accepted;
  auto c = std::make_shared<Conn>(*this, std::move(s));
  c->id = next_id++;
  conns.emplace(c->id, c);
  open.store(conns.size(), std::memory_order_relaxed);
  c->start();
}

// At the cap a new connection takes the place of the least useful one: one
// already closing, else the longest idle keep-alive connection, else the
// request that has been arriving the longest (a slowloris client keeps its
// slot for the whole request timeout otherwise, and 512 of them would lock
// every monitor out). Connections whose job or answer is under way are never
// taken; when all are, the newcomer is refused.
bool Server::Impl::make_room() {
  Conn* victim = nullptr;
  std::pair<int, TimePoint> victim_key{};
  for (const auto& [id, c] : conns) {
    if (c->busy || c->writing) {
      continue;
    }
    std::pair key{3, c->request_open ? c->request_started : c->ready_at};
    if (c->draining) {
      key = {1, c->linger_until};
    } else if (!c->handshaking && !c->request_open && c->answered > 0) {
      key = {2, c->idle_since};
    }
    // Ties (connections accepted at the same instant): the older connection.
    if (victim == nullptr || key < victim_key || (key == victim_key && c->id < victim->id)) {
      victim = c.get();
      victim_key = key;
    }
  }
  if (victim == nullptr) {
    return false;
  }
  ++rejected;
  victim->close();
  warn_capped("connection limit reached; closing the longest idle or slowest connection");
  return true;
}

void Server::Impl::reject(tcp::socket& s) {
  ++rejected;
  error_code ignored;
  if (!ssl_ctx) {
    // Best effort and never blocking: what the client already sent is read
    // first so that closing does not reset the connection under the answer.
    s.non_blocking(true, ignored);
    std::array<char, 4096> scratch{};
    s.read_some(asio::buffer(scratch), ignored);
    Response r = error_response(503, "overloaded", "too many connections; try again later");
    r.headers.emplace_back("Retry-After", "1");
    const auto bytes = serialize_response(r, false, false, new_request_id());
    s.write_some(asio::buffer(bytes), ignored);
    s.shutdown(tcp::socket::shutdown_send, ignored);
  }
  s.close(ignored);
  warn_capped("connection limit reached; refusing new connections");
}

void Server::Impl::warn_capped(std::string_view message) {
  const auto now = Clock::now();
  if (now - last_cap_warning >= kWarnEvery || last_cap_warning == TimePoint{}) {
    last_cap_warning = now;
    log::warn("http_connections_capped", message,
              {{"max_connections", options.max_connections}, {"rejected_total", rejected.load()}});
  }
}

// Deadlines (request, idle, write, handshake, linger) are checked every tick.
void Server::Impl::tick() {
  const auto now = Clock::now();
  last_tick.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  std::vector<std::shared_ptr<Conn>> due;
  for (const auto& [id, c] : conns) {
    if (c->deadline() <= now) {
      due.push_back(c);
    }
  }
  for (const auto& c : due) {
    c->expire();
  }
  tick_timer.expires_after(kTick);
  tick_timer.async_wait([this](error_code ec) {
    if (!ec && !stopping) {
      tick();
    }
  });
}

Dispatch Server::Impl::call(const Request& req) {
  Dispatch d = guarded<Dispatch>(
      [&] { return dispatcher(req); }, Dispatch{internal_error(), {}}, "request handler",
      [&] {
        return log::Fields{
            {"method", req.method}, {"path", req.path}, {"request_id", req.request_id}};
      });
  if (!d.now && !d.job) {
    d.now = internal_error();
  }
  return d;
}

// Runs a job on the worker pool; its answer goes back to the connection on
// the loop thread, if the connection is still there.
bool Server::Impl::submit(std::weak_ptr<Conn> conn, std::function<Response()> job,
                          const Request& req) {
  {
    std::lock_guard lock(jobs_mutex);
    if (queued >= options.max_queued_jobs) {
      ++jobs_rejected;
      return false;
    }
    ++queued;
  }
  asio::post(*pool, [this, conn = std::move(conn), job = std::move(job), method = req.method,
                     path = req.path]() mutable {
    std::multiset<TimePoint>::iterator me;
    {
      std::lock_guard lock(jobs_mutex);
      --queued;
      me = running.insert(Clock::now());
    }
    Response r = guarded<Response>([&] { return job(); }, internal_error(), "request job",
                                   [&] {
                                     return log::Fields{{"method", method}, {"path", path}};
                                   });
    job = nullptr;  // its captures go before the lock is taken
    {
      std::lock_guard lock(jobs_mutex);
      running.erase(me);
    }
    asio::post(io, [conn, r = std::move(r)]() mutable {
      if (const auto c = conn.lock()) {
        c->job_done(std::move(r));
      }
    });
  });
  return true;
}

// ---------------------------------------------------------------- Server

Server::Server(ServerOptions options, Dispatcher dispatcher)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(dispatcher))) {}

Server::~Server() {
  stop();
}

Status Server::start() {
  return impl_->start();
}

int Server::port() const {
  return impl_->bound_port.load();
}

bool Server::tls() const {
  return !impl_->options.tls_cert_file.empty() && !impl_->options.tls_key_file.empty();
}

void Server::stop() {
  impl_->stop();
}

ServerStats Server::stats() const {
  Impl& i = *impl_;
  ServerStats s;
  s.connections_accepted = i.accepted.load();
  s.connections_rejected = i.rejected.load();
  s.connections_timed_out = i.timed_out.load();
  s.tls_handshake_failures = i.handshake_failures.load();
  s.requests = i.requests.load();
  s.bad_requests = i.bad_requests.load();
  s.jobs_rejected = i.jobs_rejected.load();
  s.connections_open = i.open.load();
  const auto now = Clock::now();
  {
    std::lock_guard lock(i.jobs_mutex);
    s.jobs_queued = i.queued;
    s.jobs_running = i.running.size();
    if (!i.running.empty()) {
      s.oldest_job_age = std::chrono::duration_cast<milliseconds>(now - *i.running.begin());
    }
  }
  if (i.loop_running.load()) {
    const TimePoint last{Clock::duration(i.last_tick.load())};
    s.loop_lag = std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(now - last));
  }
  return s;
}

std::vector<std::pair<int, std::uint64_t>> Server::responses_by_status() const {
  std::vector<std::pair<int, std::uint64_t>> out;
  for (std::size_t status = 0; status < impl_->by_status.size(); ++status) {
    if (const auto n = impl_->by_status[status].load(); n > 0) {
      out.emplace_back(static_cast<int>(status), n);
    }
  }
  return out;
}

}  // namespace pha::http
