#include "tests/sim/wire_server.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent/core/text.hpp"
#include "tests/sim/common/http_reason.hpp"
#include "tests/sim/tcp_bytes.hpp"

namespace pha::sim {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A client that stops sending in the middle of a request is given this long.
constexpr milliseconds kRequestTimeout{30000};
// Bounds on blocking socket calls; stop() shuts sockets down long before.
constexpr int kSocketTimeoutSeconds = 30;
// Hanging answers re-check their condition at least this often.
constexpr milliseconds kRecheck{50};

std::string errno_text(int err) {
  return std::string(std::strerror(err));
}

std::string http_date() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  const auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

void set_timeouts(int fd) {
  timeval tv{};
  tv.tv_sec = kSocketTimeoutSeconds;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int bind_listener(const std::string& address, int port, bool v6) {
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw std::runtime_error("socket: " + errno_text(errno));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = -1;
  if (v6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, address.c_str(), &sa.sin6_addr) != 1) {
      ::close(fd);
      throw std::runtime_error("not an IPv6 address: " + address);
    }
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
      ::close(fd);
      throw std::runtime_error("not an IPv4 address: " + address);
    }
    rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
  }
  if (rc != 0 || ::listen(fd, 128) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error("cannot listen on " + address + ":" + std::to_string(port) + ": " +
                             errno_text(err));
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    throw std::runtime_error("getsockname: " + errno_text(errno));
  }
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

std::string peer_name(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* sa = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &sa->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(sa->sin6_port));
  }
  const auto* sa = reinterpret_cast<const sockaddr_in*>(&ss);
  ::inet_ntop(AF_INET, &sa->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(sa->sin_port));
}

void wake_fd(int fd) {
  if (fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(fd, &one, sizeof one);
  }
}

}  // namespace

std::string WireRequest::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) {
      return v;
    }
  }
  return {};
}

bool WireRequest::has_header(std::string_view lower_name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return h.first == lower_name; });
}

std::string gzip_compress(std::string_view data) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const auto produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    throw std::runtime_error("deflate failed");
  }
  out.resize(produced);
  return out;
}

struct WireServer::Tls {
  SSL_CTX* ctx = nullptr;
  ~Tls() { SSL_CTX_free(ctx); }
};

struct WireServer::Connection {
  std::mutex mutex;  // guards fd against a close racing a shutdown from stop()
  int fd = -1;
  SSL* ssl = nullptr;
  std::string peer;
  std::atomic<bool> done{false};
  std::thread thread;
  // The server's totals, and what of this socket's bytes they already hold.
  std::atomic<std::uint64_t>* bytes_in = nullptr;
  std::atomic<std::uint64_t>* bytes_out = nullptr;
  TcpBytes counted;

  // Adds the socket's bytes since the last call to the server's totals.
  void account() {
    std::lock_guard lock(mutex);
    account_locked();
  }
  void account_locked() {
    if (fd < 0 || bytes_in == nullptr) {
      return;
    }
    const auto now = tcp_bytes(fd);
    if (now.received > counted.received) {
      bytes_in->fetch_add(now.received - counted.received);
    }
    if (now.sent > counted.sent) {
      bytes_out->fetch_add(now.sent - counted.sent);
    }
    counted = {std::max(now.received, counted.received), std::max(now.sent, counted.sent)};
  }

  // Wakes every blocked call on the socket (stop, host down).
  void interrupt() {
    std::lock_guard lock(mutex);
    if (fd >= 0) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  // abort: no TLS close_notify, and a TCP RST instead of a FIN.
  void close(bool abort) {
    std::lock_guard lock(mutex);
    if (fd < 0) {
      return;
    }
    if (abort) {
      linger lg{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (ssl != nullptr) {
      // close_notify, without ever blocking on a peer that stopped reading.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      ERR_clear_error();
      SSL_shutdown(ssl);
    }
    account_locked();
    if (ssl != nullptr) {
      SSL_free(ssl);
      ssl = nullptr;
    }
    ::close(fd);
    fd = -1;
  }
};

namespace {

// Reads and writes of one connection, plain or TLS, with interruptible waits.
class ConnIo {
 public:
  ConnIo(int fd, SSL* ssl, int stop_fd) : fd_(fd), ssl_(ssl), stop_fd_(stop_fd) {}

  enum class Wait { ready, timeout, stopped, peer_gone };

  // Waits until there is something to read.
  Wait wait_readable(milliseconds timeout) const {
    if (ssl_ != nullptr && SSL_has_pending(ssl_) == 1) {
      return Wait::ready;
    }
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int rc = poll_retry(fds, static_cast<int>(timeout.count()));
    if (rc < 0 || fds[1].revents != 0) {
      return Wait::stopped;
    }
    if (rc == 0) {
      return Wait::timeout;
    }
    return Wait::ready;
  }

  // Waits until `deadline` or until `keep_waiting` turns false; ends early
  // (false) when the peer leaves or the server stops.
  bool wait_while(Clock::time_point deadline, const std::function<bool()>& keep_waiting) const {
    for (;;) {
      if (keep_waiting && !keep_waiting()) {
        return true;
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        return true;
      }
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1);
      pollfd fds[2] = {{fd_, POLLRDHUP, 0}, {stop_fd_, POLLIN, 0}};
      const int rc = poll_retry(fds, static_cast<int>(std::min(left, kRecheck).count()));
      if (rc < 0 || fds[1].revents != 0 || fds[0].revents != 0) {
        return false;
      }
    }
  }

  // > 0 bytes read; 0 end of stream or error.
  std::size_t read_some(char* buf, std::size_t n) const {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int r = SSL_read(ssl_, buf, static_cast<int>(std::min<std::size_t>(n, 1 << 20)));
      return r > 0 ? static_cast<std::size_t>(r) : 0;
    }
    for (;;) {
      const auto r = ::recv(fd_, buf, n, 0);
      if (r < 0 && errno == EINTR) {
        continue;
      }
      return r > 0 ? static_cast<std::size_t>(r) : 0;
    }
  }

  bool write_all(std::string_view data) const {
    while (!data.empty()) {
      const auto piece = std::min<std::size_t>(data.size(), 1 << 20);
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int w = SSL_write(ssl_, data.data(), static_cast<int>(piece));
        if (w <= 0) {
          return false;
        }
        data.remove_prefix(static_cast<std::size_t>(w));
        continue;
      }
      const auto w = ::send(fd_, data.data(), piece, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<std::size_t>(w));
    }
    return true;
  }

 private:
  static int poll_retry(pollfd* fds, int timeout_ms) {
    for (;;) {
      const int rc = ::poll(fds, 2, timeout_ms);
      if (rc < 0 && errno == EINTR) {
        continue;
      }
      return rc;
    }
  }

  int fd_;
  SSL* ssl_;
  int stop_fd_;
};

struct ParsedHead {
  WireRequest request;
  std::string error;  // a 400 reason when the head is malformed
};

ParsedHead parse_head(std::string_view head) {
  ParsedHead out;
  auto& req = out.request;
  const auto line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) {
    out.error = reason_phrase(400);
    return out;
  }
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  req.version = std::string(line.substr(sp2 + 1));
  if (!req.version.starts_with("HTTP/1.") || req.target.empty()) {
    out.error = reason_phrase(400);
    return out;
  }
  const auto q = req.target.find('?');
  req.path = req.target.substr(0, q);
  req.query = q == std::string::npos ? "" : req.target.substr(q + 1);
  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view{} : head.substr(line_end + 2);
  while (!rest.empty()) {
    const auto end = rest.find("\r\n");
    const auto h = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
    if (h.empty()) {
      continue;
    }
    const auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      out.error = reason_phrase(400);
      return out;
    }
    req.headers.emplace_back(to_lower(trim(h.substr(0, colon))),
                             std::string(trim(h.substr(colon + 1))));
  }
  return out;
}

bool wants_keep_alive(const WireRequest& req) {
  const auto connection = to_lower(req.header("connection"));
  if (req.version == "HTTP/1.0") {
    return connection.find("keep-alive") != std::string::npos;
  }
  return connection.find("close") == std::string::npos;
}

bool accepts_gzip(const WireRequest& req) {
  const auto ae = to_lower(req.header("accept-encoding"));
  const auto pos = ae.find("gzip");
  if (pos == std::string::npos) {
    return false;
  }
  const auto rest = ae.substr(pos + 4, ae.find(',', pos) - pos - 4);
  return rest.find("q=0") == std::string::npos || rest.find("q=0.") != std::string::npos;
}

// pveproxy's answer to plain HTTP on its HTTPS port.
void redirect_to_https(const ConnIo& io, const std::string& fallback_host,
                       std::size_t max_header_bytes) {
  std::string head;
  char chunk[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < max_header_bytes) {
    const std::size_t got = io.wait_readable(kRequestTimeout) == ConnIo::Wait::ready
                                ? io.read_some(chunk, sizeof chunk)
                                : std::size_t{0};
    if (got == 0) {
      return;
    }
    head.append(chunk, got);
  }
  const auto parsed = parse_head(head.substr(0, head.find("\r\n\r\n")));
  auto host = parsed.request.header("host");
  if (host.empty()) {
    host = fallback_host;
  }
  const std::string target = parsed.request.target.empty() ? "/" : parsed.request.target;
  io.write_all("HTTP/1.1 301 " + reason_phrase(301) + "\r\nLocation: https://" + host + target +
               "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}

}  // namespace

WireServer::WireServer(WireServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

WireServer::~WireServer() {
  stop();
}

void WireServer::start() {
  if (running_.load()) {
    return;
  }
  stopping_.store(false);
  if (!options_.cert_pem_path.empty()) {
    tls_ = std::make_unique<Tls>();
    tls_->ctx = SSL_CTX_new(TLS_server_method());
    if (tls_->ctx == nullptr) {
      throw std::runtime_error("SSL_CTX_new failed");
    }
    SSL_CTX_set_min_proto_version(tls_->ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(tls_->ctx, options_.cert_pem_path.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls_->ctx, options_.key_pem_path.c_str(), SSL_FILETYPE_PEM) !=
            1 ||
        SSL_CTX_check_private_key(tls_->ctx) != 1) {
      throw std::runtime_error(options_.name + ": cannot load the certificate " +
                               options_.cert_pem_path + " and key");
    }
  }
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2: " + errno_text(errno));
  }
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    throw std::runtime_error("eventfd: " + errno_text(errno));
  }
  port_.store(options_.port);
  {
    std::lock_guard lock(mutex_);
    open_listeners();
    want_accepting_ = true;
    is_accepting_ = true;
  }
  running_.store(true);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void WireServer::stop() {
  if (!running_.load()) {
    return;
  }
  stopping_.store(true);
  const char byte = 's';
  [[maybe_unused]] const auto n = ::write(stop_pipe_[1], &byte, 1);
  wake_fd(wake_fd_);
  if (accept_thread_.joinable()) {
    accept_thread_.join();
  }
  {
    std::lock_guard lock(mutex_);
    close_listeners();
    close_connections();
    is_accepting_ = false;
  }
  cv_.notify_all();
  reap(true);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
  ::close(wake_fd_);
  stop_pipe_[0] = stop_pipe_[1] = wake_fd_ = -1;
  tls_.reset();
  running_.store(false);
}

void WireServer::open_listeners() {
  const bool v6 = options_.bind_address.find(':') != std::string::npos;
  const int fd = bind_listener(options_.bind_address, port_.load(), v6);
  listen_fds_.push_back(fd);
  if (port_.load() == 0) {
    port_.store(bound_port(fd));
  }
  if (options_.also_ipv6_loopback && !v6) {
    try {
      listen_fds_.push_back(bind_listener("::1", port_.load(), true));
    } catch (const std::exception&) {
      // No IPv6 loopback on this machine (or the port is taken there): IPv4 only.
    }
  }
}

void WireServer::close_listeners() {
  for (const int fd : listen_fds_) {
    ::close(fd);
  }
  listen_fds_.clear();
}

void WireServer::close_connections() {
  for (auto& c : connections_) {
    c->interrupt();
  }
}

void WireServer::set_accepting(bool accepting) {
  std::unique_lock lock(mutex_);
  if (!running_.load()) {
    want_accepting_ = accepting;
    return;
  }
  want_accepting_ = accepting;
  accept_error_.clear();
  wake_fd(wake_fd_);
  cv_.wait(lock, [&] { return is_accepting_ == want_accepting_ || stopping_.load(); });
  if (!accept_error_.empty()) {
    throw std::runtime_error(accept_error_);
  }
}

std::string WireServer::url() const {
  const auto& a = options_.bind_address;
  const auto host = a.find(':') != std::string::npos ? "[" + a + "]" : a;
  return (tls() ? "https://" : "http://") + host + ":" + std::to_string(port());
}

bool WireServer::accepting() const {
  std::lock_guard lock(mutex_);
  return is_accepting_;
}

std::size_t WireServer::open_connections() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(connections_.begin(), connections_.end(),
                                                [](const auto& c) { return !c->done.load(); }));
}

void WireServer::notify() {
  wake_fd(wake_fd_);
}

bool WireServer::reconcile_listening() {
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    if (want_accepting_ == is_accepting_) {
      return true;
    }
    if (want_accepting_) {
      try {
        open_listeners();
      } catch (const std::exception& e) {
        accept_error_ = e.what();
        close_listeners();
      }
    } else {
      close_listeners();
      close_connections();
    }
    is_accepting_ = want_accepting_;
    changed = true;
  }
  if (changed) {
    cv_.notify_all();
  }
  return true;
}

void WireServer::reap(bool all) {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard lock(mutex_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (all || (*it)->done.load()) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) {
      c->thread.join();
    }
    c->close(false);
  }
}

void WireServer::accept_loop() {
  while (!stopping_.load()) {
    reconcile_listening();
    reap(false);
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    {
      std::lock_guard lock(mutex_);
      const auto live = static_cast<std::size_t>(std::count_if(
          connections_.begin(), connections_.end(), [](const auto& c) { return !c->done.load(); }));
      // At the connection limit new connections wait in the backlog.
      if (is_accepting_ && live < options_.max_connections) {
        for (const int fd : listen_fds_) {
          fds.push_back({fd, POLLIN, 0});
        }
      }
    }
    const int rc = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), 200);
    if (rc <= 0) {
      continue;
    }
    if (fds[0].revents != 0) {
      std::uint64_t v = 0;
      [[maybe_unused]] const auto n = ::read(wake_fd_, &v, sizeof v);
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) == 0) {
        continue;
      }
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      set_timeouts(fd);
      auto conn = std::make_unique<Connection>();
      conn->fd = fd;
      conn->bytes_in = &bytes_in_;
      conn->bytes_out = &bytes_out_;
      conn->peer = peer_name(ss);
      auto* c = conn.get();
      {
        std::lock_guard lock(mutex_);
        connections_.push_back(std::move(conn));
      }
      accepted_.fetch_add(1);
      c->thread = std::thread([this, c] {
        serve(*c);
        c->done.store(true);
        wake_fd(wake_fd_);
      });
    }
  }
}

void WireServer::serve(Connection& conn) {
  // A write to a peer that left must fail with EPIPE, not kill the process.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  if (tls_) {
    // A plain HTTP request on the HTTPS port is redirected to https, as
    // pveproxy does; a TLS handshake starts with a record of type 22.
    const ConnIo plain(conn.fd, nullptr, stop_pipe_[0]);
    unsigned char first = 0;
    if (plain.wait_readable(kRequestTimeout) != ConnIo::Wait::ready ||
        ::recv(conn.fd, &first, 1, MSG_PEEK) != 1) {
      conn.close(false);
      return;
    }
    if (first != 0x16) {
      redirect_to_https(plain, options_.bind_address + ":" + std::to_string(port_.load()),
                        options_.max_header_bytes);
      conn.close(false);
      return;
    }
    std::lock_guard lock(conn.mutex);
    conn.ssl = SSL_new(tls_->ctx);
    if (conn.ssl == nullptr) {
      return;
    }
    SSL_set_fd(conn.ssl, conn.fd);
  }
  if (conn.ssl != nullptr) {
    ERR_clear_error();
    if (SSL_accept(conn.ssl) != 1) {
      conn.close(false);
      return;
    }
  }
  const ConnIo io(conn.fd, conn.ssl, stop_pipe_[0]);

  // Writes one answer; false when the connection must end now (after a fault).
  const auto deliver = [&](const WireRequest& req, WireResponse& res, bool keep_alive) {
    if (res.delay.count() > 0 && !io.wait_while(Clock::now() + res.delay, nullptr)) {
      conn.close(true);
      return false;
    }
    if (res.fault == WireFault::hang) {
      // No answer at all; the client gives up, or the fault is cleared.
      const auto keep = res.hang_while;
      io.wait_while(Clock::time_point::max(), [&] { return !keep || keep(); });
      conn.close(false);
      return false;
    }
    std::string encoding;
    const bool streamed = static_cast<bool>(res.stream);
    if (!streamed && res.compressible && res.body.size() > options_.gzip_min_bytes &&
        accepts_gzip(req)) {
      res.body = gzip_compress(res.body);
      encoding = "gzip";
    }
    const std::size_t length = streamed ? res.stream_length : res.body.size();
    const std::string date = http_date();
    std::string head = "HTTP/1.1 " + std::to_string(res.status) + " " + res.reason + "\r\n";
    head += "Cache-Control: max-age=0\r\n";
    head += keep_alive ? "Connection: Keep-Alive\r\n" : "Connection: close\r\n";
    head += "Date: " + date + "\r\n";
    head += "Pragma: no-cache\r\n";
    head += "Server: " + options_.server_header + "\r\n";
    for (const auto& [k, v] : res.headers) {
      head += k + ": " + v + "\r\n";
    }
    if (!encoding.empty()) {
      head += "Content-Encoding: " + encoding + "\r\n";
    }
    // An empty answer on a closing connection carries no length (Proxmox's
    // empty error bodies); otherwise the length frames the body.
    if (length > 0 || keep_alive) {
      head += "Content-Length: " + std::to_string(length) + "\r\n";
    }
    head += "Expires: " + date + "\r\n\r\n";
    if (!io.write_all(head)) {
      conn.close(true);
      return false;
    }
    const bool cut = res.fault == WireFault::reset || res.fault == WireFault::truncate;
    std::size_t budget = cut ? std::min(res.cut_after, length) : length;
    if (req.method == "HEAD") {
      budget = 0;
    }
    bool ok = true;
    if (streamed) {
      res.stream([&](std::string_view piece) {
        const auto n = std::min(piece.size(), budget);
        if (n > 0 && !io.write_all(piece.substr(0, n))) {
          ok = false;
          return false;
        }
        budget -= n;
        return budget > 0;
      });
    } else if (budget > 0) {
      ok = io.write_all(std::string_view(res.body).substr(0, budget));
    }
    if (!ok || res.fault == WireFault::reset) {
      conn.close(true);
      return false;
    }
    if (res.fault == WireFault::truncate) {
      conn.close(false);
      return false;
    }
    return true;
  };

  const auto simple = [](int status, std::string reason) {
    WireResponse r;
    r.status = status;
    r.reason = std::move(reason);
    r.close_after = true;
    return r;
  };

  std::string buf;
  char chunk[16384];
  for (std::size_t n = 1;; ++n) {
    // The head, waiting at most the idle timeout for its first byte.
    std::size_t head_end = std::string::npos;
    bool ended = false;
    while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
      if (buf.size() > options_.max_header_bytes) {
        WireRequest dummy;
        auto r = simple(431, reason_phrase(431));
        deliver(dummy, r, false);
        ended = true;
        break;
      }
      const auto wait = io.wait_readable(buf.empty() ? options_.idle_timeout : kRequestTimeout);
      const std::size_t got =
          wait == ConnIo::Wait::ready ? io.read_some(chunk, sizeof chunk) : std::size_t{0};
      if (got == 0) {
        ended = true;
        break;
      }
      buf.append(chunk, got);
    }
    if (ended) {
      break;
    }
    auto parsed = parse_head(std::string_view(buf).substr(0, head_end));
    buf.erase(0, head_end + 4);
    WireRequest& req = parsed.request;
    req.peer = conn.peer;
    req.request_on_conn = n;
    req.tls = conn.ssl != nullptr;
    if (!parsed.error.empty()) {
      auto r = simple(400, parsed.error);
      deliver(req, r, false);
      break;
    }
    const auto te = to_lower(req.header("transfer-encoding"));
    if (!te.empty() && te != "identity") {
      auto r = simple(501, "chunked transfer encoding not supported");
      deliver(req, r, false);
      break;
    }
    std::size_t content_length = 0;
    if (req.has_header("content-length")) {
      const auto cl = parse_int(req.header("content-length"));
      if (!cl || *cl < 0) {
        auto r = simple(400, reason_phrase(400));
        deliver(req, r, false);
        break;
      }
      content_length = static_cast<std::size_t>(*cl);
    }
    if (content_length > options_.max_body_bytes) {
      auto r = simple(413, reason_phrase(413));
      deliver(req, r, false);
      break;
    }
    if (content_length > buf.size() && iequals(req.header("expect"), "100-continue") &&
        !io.write_all("HTTP/1.1 100 " + reason_phrase(100) + "\r\n\r\n")) {
      break;
    }
    while (buf.size() < content_length) {
      const auto wait = io.wait_readable(kRequestTimeout);
      const std::size_t got =
          wait == ConnIo::Wait::ready ? io.read_some(chunk, sizeof chunk) : std::size_t{0};
      if (got == 0) {
        ended = true;
        break;
      }
      buf.append(chunk, got);
    }
    if (ended) {
      break;
    }
    req.body = buf.substr(0, content_length);
    buf.erase(0, content_length);

    WireResponse res;
    try {
      res = handler_(req);
    } catch (const std::exception& e) {
      res = simple(500, std::string("internal error: ") + e.what());
    }
    const bool keep_alive =
        wants_keep_alive(req) && !res.close_after && n < options_.max_requests_per_connection &&
        !(options_.close_on_error_status && res.status >= 400) && !stopping_.load();
    if (!deliver(req, res, keep_alive) || !keep_alive) {
      break;
    }
    conn.account();
  }
  conn.close(false);
}

}  // namespace pha::sim
