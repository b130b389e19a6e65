#include "agent/http/server.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/http/server_impl.hpp"
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

using std::chrono::milliseconds;

// How often deadlines are checked and the loop-lag gauge is set.
constexpr milliseconds kTick{50};

std::string host_port(std::string_view address, int port) {
  const bool v6 = address.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(address) + "]" : std::string(address)) + ":" +
         std::to_string(port);
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

// A server context from a certificate chain and its key, both checked: a
// file that is missing or does not parse, or a key that is not the
// certificate's, is an error naming the file (never its content).
Result<std::shared_ptr<ssl::context>> make_tls_context(const std::string& cert,
                                                       const std::string& key) {
  for (const auto& [what, path] : {std::pair{"certificate", &cert}, std::pair{"key", &key}}) {
    std::FILE* f = std::fopen(path->c_str(), "r");
    if (f == nullptr) {
      return Error{ErrorKind::io, std::string("cannot use TLS ") + what + " file " + *path + ": " +
                                      std::error_code(errno, std::generic_category()).message()};
    }
    std::fclose(f);
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
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
  context->use_certificate_chain_file(cert, ec);
  if (ec) {
    ERR_clear_error();
    return Error{ErrorKind::io, "cannot use TLS certificate file " + cert + ": " + ec.message()};
  }
  context->use_private_key_file(key, ssl::context::pem, ec);
  // OpenSSL checks the key against the certificate as it loads it.
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    return mismatch;
  }
  if (ec) {
    ERR_clear_error();
    return Error{ErrorKind::io, "cannot use TLS key file " + key + ": " + ec.message()};
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return mismatch;
  }
  return context;
}

}  // namespace

// ---------------------------------------------------------------- start and stop

std::shared_ptr<ssl::context> Server::Impl::tls_context() {
  std::lock_guard lock(tls_mutex);
  return ssl_ctx;
}

Status Server::Impl::reload_tls(const std::string& cert_file, const std::string& key_file) {
  if (!tls) {
    return Error{ErrorKind::io, "the HTTP server was not started with TLS"};
  }
  auto fresh = make_tls_context(cert_file, key_file);
  if (!fresh) {
    ++tls_reload_failures;
    return fresh.error();
  }
  std::shared_ptr<ssl::context> old;  // freed outside the lock, if no connection holds it
  std::lock_guard lock(tls_mutex);
  old = std::exchange(ssl_ctx, std::move(*fresh));
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
             {{"address", address}, {"port", bound_port.load()}, {"tls", tls.load()}});
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
    auto context = make_tls_context(options.tls_cert_file, options.tls_key_file);
    if (!context) {
      return context.error();
    }
    ssl_ctx = std::move(*context);
    tls = true;
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

Status Server::reload_tls(const std::string& cert_file, const std::string& key_file) {
  return impl_->reload_tls(cert_file, key_file);
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
  s.tls_reload_failures = i.tls_reload_failures.load();
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
