// Accepting connections and the connection cap (docs/http-api.md "Limits").
#include <boost/asio/ip/tcp.hpp>

#include "agent/http/server_impl.hpp"
#include "agent/platform/logging.hpp"

namespace pha::http {

namespace {

constexpr std::chrono::milliseconds kAcceptPause{100};  // out of file descriptors: accepting pauses
constexpr std::chrono::seconds kWarnEvery{60};

}  // namespace

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
  if (!tls) {
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

}  // namespace pha::http
