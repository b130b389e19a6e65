#include <boost/asio/write.hpp>
#include <boost/beast/http/write.hpp>

#include "agent/http/server_impl.hpp"
#include "agent/platform/logging.hpp"

namespace pha::http {

namespace {

using std::chrono::milliseconds;

constexpr TimePoint kNever = TimePoint::max();
// After a final answer: how long, and how much, a closing connection is read
// and discarded, so that a client still sending (a refused body) reads the
// answer instead of a reset.
constexpr milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = std::size_t{1024} * 1024;
constexpr std::size_t kReadChunk = std::size_t{16} * 1024;
constexpr std::size_t kKeptBuffer =
    std::size_t{16} * 1024;  // an idle connection's buffer keeps at most this
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

void Server::Impl::Conn::start() {
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
  tls_ctx = srv.tls_context();
  if (!tls_ctx) {
    drive();
    return;
  }
  tls.emplace(socket, *tls_ctx);
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
void Server::Impl::Conn::drive() {
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

void Server::Impl::Conn::read() {
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

void Server::Impl::Conn::on_read(error_code ec, std::size_t n) {
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

void Server::Impl::Conn::dispatch(RequestReader::Ready ready) {
  Request& req = ready.request;
  req.peer = peer;
  req.peer_loopback = loopback;
  req.tls = tls.has_value();
  if (req.request_id.empty()) {
    req.request_id = srv.new_request_id();
  }
  request_open = false;
  answer_head = req.method == "HEAD";
  answer_keep_alive = ready.keep_alive && answered + 1 < srv.options.max_requests_per_connection &&
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

void Server::Impl::Conn::job_done(Response r) {
  if (closed || !busy) {
    return;
  }
  busy = false;
  error_code ignored;
  socket.cancel(ignored);  // the wait for a reset
  answer(std::move(r));
}

void Server::Impl::Conn::refuse(const Refusal& r) {
  ++srv.bad_requests;
  reader.reset();
  answer_head = r.head_method;
  answer_keep_alive = false;
  answer_id = r.request_id.empty() ? srv.new_request_id() : r.request_id;
  answer(error_response(r.status, r.code, r.message));
}

void Server::Impl::Conn::answer(Response r) {
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

void Server::Impl::Conn::write_continue() {
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

void Server::Impl::Conn::on_written(error_code ec, std::size_t) {
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
void Server::Impl::Conn::linger() {
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

void Server::Impl::Conn::close() {
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

TimePoint Server::Impl::Conn::deadline() const {
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

void Server::Impl::Conn::expire() {
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

}  // namespace pha::http
