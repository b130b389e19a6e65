#include "agent/http/server.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <set>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <unordered_map>
#include <variant>

#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/core/text.hpp"
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

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using std::chrono::milliseconds;

constexpr TimePoint kNever = TimePoint::max();
constexpr std::uint64_t kListenerId = 0;
constexpr std::uint64_t kWakeId = 1;
constexpr std::size_t kReadChunk = 64 * 1024;
// An idle connection's empty buffers keep at most this much memory.
constexpr std::size_t kKeptBuffer = 16 * 1024;
// Room in the read buffer past one maximal request (the start of a pipelined one).
constexpr std::size_t kReadSlack = 4 * 1024;
// The loop goes round at least this often (timers, the loop-lag gauge).
constexpr milliseconds kMaxLoopWait{250};
// After a final answer: how long, and how much, a closing connection is read
// and discarded, so that a client still sending (a refused body) reads the
// answer instead of a reset.
constexpr milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = 1024 * 1024;
// Out of file descriptors: accepting pauses this long.
constexpr milliseconds kAcceptPause{100};
constexpr std::chrono::seconds kWarnEvery{60};
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string errno_text(int e) {
  return std::error_code(e, std::generic_category()).message();
}

std::string host_port(std::string_view address, int port) {
  const bool v6 = address.find(':') != std::string_view::npos;
  return (v6 ? "[" + std::string(address) + "]" : std::string(address)) + ":" +
         std::to_string(port);
}

struct Peer {
  std::string text;
  bool loopback = false;
};

Peer describe_peer(const sockaddr_storage& ss) {
  Peer p;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    p.text = buf;
    p.loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      // A dual-stack listener: show the IPv4 client as IPv4.
      in_addr v4{};
      std::memcpy(&v4, &a->sin6_addr.s6_addr[12], sizeof v4);
      ::inet_ntop(AF_INET, &v4, buf, sizeof buf);
      p.text = buf;
      p.loopback = a->sin6_addr.s6_addr[12] == 127;
    } else {
      ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
      p.text = buf;
      p.loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
  }
  return p;
}

// The first error OpenSSL queued (the most specific one), then the queue is cleared.
std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) {
    return "unknown OpenSSL error";
  }
  if (const char* reason = ERR_reason_error_string(e)) {
    return reason;
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// A BIO over the non-blocking socket that writes with MSG_NOSIGNAL: the
// agent does not ignore SIGPIPE, and OpenSSL's socket BIO uses write(), so a
// client that resets a TLS connection must not kill the process.
int socket_bio_write(BIO* bio, const char* data, int len) {
  const int fd = *static_cast<const int*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const auto n = ::send(fd, data, static_cast<std::size_t>(len), MSG_NOSIGNAL);
    if (n >= 0) {
      return static_cast<int>(n);
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      BIO_set_retry_write(bio);
    }
    return -1;
  }
}

int socket_bio_read(BIO* bio, char* data, int len) {
  const int fd = *static_cast<const int*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const auto n = ::recv(fd, data, static_cast<std::size_t>(len), 0);
    if (n >= 0) {
      return static_cast<int>(n);
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      BIO_set_retry_read(bio);
    }
    return -1;
  }
}

long socket_bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

enum class Expiry { none, handshake, fresh, request, idle, write, linger };

struct Conn {
  std::uint64_t id = 0;
  int fd = -1;
  SSL* ssl = nullptr;
  Peer peer;
  bool dead = false;

  bool handshaking = false;
  bool handshake_wants_write = false;
  bool read_wants_write = false;  // SSL_read needs the socket writable
  bool write_wants_read = false;  // SSL_write needs the socket readable

  // Reading and parsing.
  std::string in;
  RequestReader reader;       // frames the requests out of `in`
  bool request_open = false;  // bytes of a request have arrived
  bool peer_eof = false;

  // The request being answered (by a job).
  bool busy = false;
  bool answer_head = false;
  bool answer_keep_alive = true;
  std::string answer_request_id;

  // Writing and closing.
  std::string out;
  std::size_t out_off = 0;
  bool close_after_write = false;
  bool lingering = false;
  std::size_t lingered_bytes = 0;
  std::size_t answered = 0;

  TimePoint ready_at{};         // accepted, or handshake done
  TimePoint request_started{};  // first byte of the current request
  TimePoint idle_since{};       // last answer written
  TimePoint write_since{};      // the write buffer became non-empty
  TimePoint linger_until{};
  TimePoint timer = kNever;  // its key in Impl::timers_
  std::uint32_t registered = 0;
};

struct Job {
  std::uint64_t conn = 0;
  std::function<Response()> run;
  std::string method;
  std::string path;
};

struct Completion {
  std::uint64_t conn = 0;
  Response response;
};

enum class Io { done, would_block, eof, error };

}  // namespace

struct Server::Impl {
  Impl(ServerOptions o, Dispatcher d) : options(std::move(o)), dispatcher(std::move(d)) {
    options.workers = std::max<std::size_t>(options.workers, 1);
    read_cap = options.max_header_bytes + options.max_body_bytes + kReadSlack;
    scratch.resize(kReadChunk);
    rng.seed(std::random_device{}());
  }
  ~Impl() { release(); }

  ServerOptions options;
  Dispatcher dispatcher;
  std::size_t read_cap = 0;

  // Set up by start(), owned by the loop thread while it runs.
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  SSL_CTX* ssl_ctx = nullptr;
  BIO_METHOD* bio_method = nullptr;
  std::thread loop_thread;
  std::vector<std::thread> workers;
  std::atomic<int> bound_port{0};

  std::mutex stop_mutex;  // start() and stop()
  bool started = false;
  bool stopped = false;
  std::atomic<bool> stopping{false};

  // Loop thread only.
  std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns;
  std::set<std::pair<TimePoint, std::uint64_t>> timers;
  std::vector<std::uint64_t> dead;
  std::uint64_t next_id = 2;
  std::vector<char> scratch;
  std::mt19937_64 rng;
  TimePoint now{};
  TimePoint accept_paused_until = kNever;
  TimePoint last_cap_warning{};
  TimePoint last_accept_warning{};

  // Worker pool.
  std::mutex jobs_mutex;
  std::condition_variable jobs_cv;
  std::deque<Job> queue;
  std::vector<std::optional<TimePoint>> running;
  std::deque<Completion> completions;
  bool workers_stop = false;

  // Counters.
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> handshake_failures{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bad_requests{0};
  std::atomic<std::uint64_t> jobs_rejected{0};
  std::atomic<std::size_t> open{0};
  std::atomic<SteadyClock::rep> last_tick{0};
  std::atomic<bool> loop_running{false};
  std::array<std::atomic<std::uint64_t>, 600> by_status{};

  // ---- start and stop ----

  Result<bool> start();
  Result<bool> setup_tls();
  void stop();
  void release();
  void wake() const {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof one);
  }

  // ---- the loop ----

  void run();
  void tick() {
    now = SteadyClock::now();
    last_tick.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  }
  int wait_ms() const;
  void accept_all();
  bool make_room();
  void reject(int fd);
  void pause_accepting(int error);
  void on_event(Conn& c, std::uint32_t events);
  void on_timer(Conn& c);
  void take_completions();
  void reap();

  // ---- one connection ----

  void drive(Conn& c);
  bool next_request(Conn& c);
  void dispatch(Conn& c, RequestHead h, std::string body);
  void refuse_request(Conn& c, Refusal r);
  void answer(Conn& c, Response r, bool head_method, bool keep_alive,
              const std::string& request_id);
  void handshake(Conn& c);
  bool read_some(Conn& c);
  void discard_input(Conn& c);
  void flush(Conn& c);
  void begin_close(Conn& c);
  void close_conn(Conn& c);
  bool can_read(const Conn& c) const {
    return !c.handshaking && !c.lingering && !c.busy && !c.close_after_write && !c.peer_eof &&
           c.out.empty() && c.in.size() < read_cap;
  }
  std::pair<TimePoint, Expiry> deadline(const Conn& c) const;
  void settle(Conn& c);  // interest and timer after a change
  Io read_raw(Conn& c, char* data, std::size_t len, std::size_t& got);
  Io write_raw(Conn& c, const char* data, std::size_t len, std::size_t& put);
  std::string new_request_id();

  // ---- workers ----

  void work(std::size_t index);
};

// ---------------------------------------------------------------- start/stop

Result<bool> Server::Impl::setup_tls() {
  const auto& cert = options.tls_cert_file;
  const auto& key = options.tls_key_file;
  for (const auto& [what, path] : {std::pair{"certificate", &cert}, std::pair{"key", &key}}) {
    std::FILE* f = std::fopen(path->c_str(), "r");
    if (f == nullptr) {
      return Error{std::string("cannot use TLS ") + what + " file " + *path + ": " +
                   errno_text(errno)};
    }
    std::fclose(f);
  }
  ERR_clear_error();
  ssl_ctx = SSL_CTX_new(TLS_server_method());
  if (ssl_ctx == nullptr) {
    return Error{"cannot set up TLS: " + openssl_reason()};
  }
  SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
  std::uint64_t ssl_options = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  // A client that closes without close_notify has simply gone away.
  ssl_options |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
  SSL_CTX_set_options(ssl_ctx, ssl_options);
  SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert.c_str()) != 1) {
    return Error{"cannot use TLS certificate file " + cert + ": " + openssl_reason()};
  }
  if (SSL_CTX_use_PrivateKey_file(ssl_ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL checks the key against the certificate as it loads it.
    if (ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return Error{"TLS key file " + key + " does not match the certificate in " + cert};
    }
    return Error{"cannot use TLS key file " + key + ": " + openssl_reason()};
  }
  if (SSL_CTX_check_private_key(ssl_ctx) != 1) {
    ERR_clear_error();
    return Error{"TLS key file " + key + " does not match the certificate in " + cert};
  }
  bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pha socket");
  if (bio_method == nullptr) {
    return Error{"cannot set up TLS: " + openssl_reason()};
  }
  BIO_meth_set_write(bio_method, socket_bio_write);
  BIO_meth_set_read(bio_method, socket_bio_read);
  BIO_meth_set_ctrl(bio_method, socket_bio_ctrl);
  return true;
}

Result<bool> Server::Impl::start() {
  std::lock_guard lock(stop_mutex);
  if (started) {
    return Error{"the HTTP server was already started"};
  }
  auto fail = [this](std::string message) -> Result<bool> {
    release();
    return Error{std::move(message)};
  };
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return fail("TLS needs both a certificate file and a key file");
  }
  if (!options.tls_cert_file.empty()) {
    if (auto r = setup_tls(); !r) {
      return fail(r.error());
    }
  }

  std::string address = options.bind_address;
  if (address.size() > 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  const std::string where = "cannot listen on " + host_port(address, options.port);
  if (options.port < 0 || options.port > 65535) {
    return fail(where + ": the port is out of range");
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  const auto port = htons(static_cast<std::uint16_t>(options.port));
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = port;
    len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = port;
    len = sizeof(sockaddr_in6);
  } else {
    return fail(where + ": not an IPv4 or IPv6 address");
  }
  listen_fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) {
    return fail(where + ": " + errno_text(errno));
  }
  int one = 1;
  ::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) {
    int zero = 0;  // "::" takes IPv4 clients too
    ::setsockopt(listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(listen_fd, SOMAXCONN) != 0) {
    return fail(where + ": " + errno_text(errno));
  }
  if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return fail(where + ": " + errno_text(errno));
  }
  bound_port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);

  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) {
    return fail("cannot start the HTTP server: " + errno_text(errno));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerId;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
  ev.data.u64 = kWakeId;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);

  started = true;
  running.assign(options.workers, std::nullopt);
  tick();
  loop_running = true;
  loop_thread = std::thread([this] { run(); });
  for (std::size_t i = 0; i < options.workers; ++i) {
    workers.emplace_back([this, i] { work(i); });
  }
  log::debug("http_server_listening",
             "HTTP API listening on " + host_port(address, bound_port.load()),
             {{"address", address}, {"port", bound_port.load()}, {"tls", ssl_ctx != nullptr}});
  return true;
}

void Server::Impl::stop() {
  std::lock_guard lock(stop_mutex);
  if (!started || stopped) {
    return;
  }
  stopped = true;
  stopping = true;
  wake();
  if (loop_thread.joinable()) {
    loop_thread.join();
  }
  {
    std::lock_guard jobs(jobs_mutex);
    workers_stop = true;
    queue.clear();  // not started: nobody waits for their answers any more
  }
  jobs_cv.notify_all();
  for (auto& t : workers) {
    t.join();
  }
  workers.clear();
  completions.clear();
  release();
  log::info("http_server_stopped", "HTTP API stopped");
}

void Server::Impl::release() {
  for (int* fd : {&listen_fd, &epoll_fd, &wake_fd}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
  if (ssl_ctx != nullptr) {
    SSL_CTX_free(ssl_ctx);
    ssl_ctx = nullptr;
  }
  if (bio_method != nullptr) {
    BIO_meth_free(bio_method);
    bio_method = nullptr;
  }
}

// ---------------------------------------------------------------- the loop

int Server::Impl::wait_ms() const {
  TimePoint next = now + kMaxLoopWait;
  if (!timers.empty()) {
    next = std::min(next, timers.begin()->first);
  }
  next = std::min(next, accept_paused_until);
  if (next <= now) {
    return 0;
  }
  // Rounded up: waking a little early would only spin.
  return static_cast<int>(std::chrono::ceil<milliseconds>(next - now).count());
}

void Server::Impl::run() {
  std::array<epoll_event, 128> events{};
  while (!stopping.load()) {
    tick();
    const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), wait_ms());
    if (n < 0 && errno != EINTR) {
      log::error("http_loop_failed", "epoll_wait failed: " + errno_text(errno));
      break;
    }
    tick();
    for (int i = 0; i < n && !stopping.load(); ++i) {
      const auto& e = events[static_cast<std::size_t>(i)];
      if (e.data.u64 == kListenerId) {
        accept_all();
      } else if (e.data.u64 == kWakeId) {
        std::uint64_t count = 0;
        (void)!::read(wake_fd, &count, sizeof count);
        take_completions();
      } else if (const auto it = conns.find(e.data.u64); it != conns.end() && !it->second->dead) {
        on_event(*it->second, e.events);
      }
      reap();
    }
    while (!timers.empty() && timers.begin()->first <= now) {
      const auto id = timers.begin()->second;
      timers.erase(timers.begin());
      if (const auto it = conns.find(id); it != conns.end() && !it->second->dead) {
        it->second->timer = kNever;
        on_timer(*it->second);
      }
      reap();
    }
    if (accept_paused_until <= now) {
      accept_paused_until = kNever;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerId;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
    }
  }
  for (auto& [id, c] : conns) {
    close_conn(*c);
  }
  reap();
  timers.clear();
  loop_running = false;
}

void Server::Impl::accept_all() {
  // A bounded batch keeps the other connections served under a flood.
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd =
        ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) {
        continue;
      }
      if (errno != EAGAIN) {
        pause_accepting(errno);
      }
      return;
    }
    if (conns.size() >= options.max_connections && !make_room()) {
      reject(fd);
      continue;
    }
    accepted.fetch_add(1, std::memory_order_relaxed);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto owned = std::make_unique<Conn>();
    Conn& c = *owned;
    c.id = next_id++;
    c.fd = fd;
    c.peer = describe_peer(ss);
    c.ready_at = now;
    c.registered = EPOLLIN;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = c.id;
    if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    conns.emplace(c.id, std::move(owned));
    open.store(conns.size(), std::memory_order_relaxed);
    if (ssl_ctx != nullptr) {
      c.ssl = SSL_new(ssl_ctx);
      BIO* bio = c.ssl != nullptr ? BIO_new(bio_method) : nullptr;
      if (bio == nullptr) {
        ERR_clear_error();
        close_conn(c);
        continue;
      }
      BIO_set_data(bio, &c.fd);
      BIO_set_init(bio, 1);
      SSL_set_bio(c.ssl, bio, bio);
      SSL_set_accept_state(c.ssl);
      c.handshaking = true;
      handshake(c);
    }
    if (!c.dead) {
      settle(c);
    }
  }
}

// At the cap a new connection takes the place of the least useful one: one
// already closing, else the longest idle keep-alive connection, else the
// request that has been arriving the longest (a slowloris client keeps its
// slot for the whole request timeout otherwise, and 512 of them would lock
// every monitor out). Connections whose job or answer is under way are never
// taken; when all are, the newcomer is refused.
bool Server::Impl::make_room() {
  Conn* victim = nullptr;
  int victim_rank = 0;
  TimePoint victim_since{};
  for (auto& [id, owned] : conns) {
    Conn& c = *owned;
    if (c.dead || c.busy || !c.out.empty()) {
      continue;
    }
    int rank = 3;  // an unfinished request (or TLS handshake)
    TimePoint since = c.request_open ? c.request_started : c.ready_at;
    if (c.lingering) {
      rank = 1;
      since = c.linger_until;
    } else if (!c.handshaking && !c.request_open && c.answered > 0) {
      rank = 2;
      since = c.idle_since;
    }
    // Ties (connections accepted in one batch share `now`): the older connection.
    if (victim == nullptr || rank < victim_rank ||
        (rank == victim_rank &&
         (since < victim_since || (since == victim_since && c.id < victim->id)))) {
      victim = &c;
      victim_rank = rank;
      victim_since = since;
    }
  }
  if (victim == nullptr) {
    return false;
  }
  rejected.fetch_add(1, std::memory_order_relaxed);
  close_conn(*victim);
  reap();
  if (now - last_cap_warning >= kWarnEvery || last_cap_warning == TimePoint{}) {
    last_cap_warning = now;
    log::warn("http_connections_capped",
              "connection limit reached; closing the longest idle or slowest connection",
              {{"max_connections", options.max_connections}, {"rejected_total", rejected.load()}});
  }
  return true;
}

void Server::Impl::reject(int fd) {
  rejected.fetch_add(1, std::memory_order_relaxed);
  if (ssl_ctx == nullptr) {
    // Best effort and never blocking: what the client already sent is read
    // first so that closing does not reset the connection under the answer.
    (void)::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT);
    Response r = error_response(503, "overloaded", "too many connections; try again later");
    r.headers.emplace_back("Retry-After", "1");
    const auto bytes = serialize_response(r, false, false, new_request_id());
    (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
  if (now - last_cap_warning >= kWarnEvery || last_cap_warning == TimePoint{}) {
    last_cap_warning = now;
    log::warn("http_connections_capped", "connection limit reached; refusing new connections",
              {{"max_connections", options.max_connections}, {"rejected_total", rejected.load()}});
  }
}

void Server::Impl::pause_accepting(int error) {
  accept_paused_until = now + kAcceptPause;
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = kListenerId;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
  if (now - last_accept_warning >= kWarnEvery || last_accept_warning == TimePoint{}) {
    last_accept_warning = now;
    log::warn("http_accept_failed", "cannot accept connections: " + errno_text(error),
              {{"open_connections", conns.size()}});
  }
}

void Server::Impl::reap() {
  for (const auto id : dead) {
    conns.erase(id);
  }
  dead.clear();
  open.store(conns.size(), std::memory_order_relaxed);
}

void Server::Impl::take_completions() {
  std::deque<Completion> done;
  {
    std::lock_guard lock(jobs_mutex);
    done.swap(completions);
  }
  for (auto& d : done) {
    const auto it = conns.find(d.conn);
    if (it == conns.end() || it->second->dead || !it->second->busy) {
      continue;  // the client went away meanwhile
    }
    Conn& c = *it->second;
    c.busy = false;
    answer(c, std::move(d.response), c.answer_head, c.answer_keep_alive, c.answer_request_id);
    drive(c);
  }
}

void Server::Impl::on_event(Conn& c, std::uint32_t events) {
  if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
    close_conn(c);
    return;
  }
  if (c.handshaking) {
    handshake(c);
  } else if (c.lingering) {
    discard_input(c);
  } else {
    if (!c.out.empty()) {
      flush(c);
    }
    if (!c.dead && can_read(c)) {
      read_some(c);
    }
  }
  if (!c.dead) {
    drive(c);
  }
}

void Server::Impl::on_timer(Conn& c) {
  const auto [when, kind] = deadline(c);
  if (when > now) {
    settle(c);
    return;
  }
  switch (kind) {
    case Expiry::none:
      break;
    case Expiry::request:
      timed_out.fetch_add(1, std::memory_order_relaxed);
      log::debug("http_request_timeout", "request not complete in time", {{"peer", c.peer.text}});
      refuse_request(c, Refusal{408, "request_timeout", "the request took too long to arrive"});
      break;
    case Expiry::handshake:
    case Expiry::fresh:
    case Expiry::write:
      timed_out.fetch_add(1, std::memory_order_relaxed);
      close_conn(c);
      break;
    case Expiry::idle:
    case Expiry::linger:
      close_conn(c);
      break;
  }
  if (!c.dead) {
    drive(c);
  }
}

// ---------------------------------------------------------------- one connection

std::pair<TimePoint, Expiry> Server::Impl::deadline(const Conn& c) const {
  if (c.lingering) {
    return {c.linger_until, Expiry::linger};
  }
  if (c.handshaking) {
    return {c.ready_at + options.request_timeout, Expiry::handshake};
  }
  if (!c.out.empty()) {
    return {c.write_since + options.write_timeout, Expiry::write};
  }
  if (c.busy) {
    return {kNever, Expiry::none};
  }
  if (c.request_open) {
    return {c.request_started + options.request_timeout, Expiry::request};
  }
  if (c.answered == 0) {
    return {c.ready_at + options.request_timeout, Expiry::fresh};
  }
  return {c.idle_since + options.idle_timeout, Expiry::idle};
}

void Server::Impl::settle(Conn& c) {
  std::uint32_t want = 0;
  if (c.handshaking) {
    want = c.handshake_wants_write ? EPOLLOUT : EPOLLIN;
  } else if (c.lingering) {
    want = EPOLLIN;
  } else if (!c.out.empty()) {
    want = c.write_wants_read ? EPOLLIN : EPOLLOUT;
  } else if (can_read(c)) {
    want = c.read_wants_write ? EPOLLOUT : EPOLLIN;
  }
  // With no interest (a job runs) errors and hang-ups are still reported.
  if (want != c.registered) {
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
    c.registered = want;
  }
  const auto when = deadline(c).first;
  if (when != c.timer) {
    if (c.timer != kNever) {
      timers.erase({c.timer, c.id});
    }
    if (when != kNever) {
      timers.emplace(when, c.id);
    }
    c.timer = when;
  }
}

// Parses and answers what the read buffer holds, one request at a time: the
// next one only once the answer to the last one has been written.
void Server::Impl::drive(Conn& c) {
  while (!c.dead && !c.handshaking && !c.lingering && c.out.empty()) {
    if (c.close_after_write) {
      begin_close(c);
      break;
    }
    if (c.busy) {
      break;
    }
    if (next_request(c)) {
      continue;
    }
    if (c.peer_eof) {
      close_conn(c);  // nothing complete can come any more
      break;
    }
    // Records OpenSSL already took off the socket never wake epoll.
    if (c.ssl != nullptr && SSL_has_pending(c.ssl) == 1 && can_read(c) && read_some(c)) {
      continue;
    }
    break;
  }
  if (!c.dead) {
    settle(c);
  }
}

// One step with the next request: refused, its body still awaited (after a
// 100 Continue when asked), or the whole request dispatched. false: nothing
// to do until more bytes arrive.
bool Server::Impl::next_request(Conn& c) {
  auto step = c.reader.next(c.in, options);
  if (auto* more = std::get_if<RequestReader::NeedMore>(&step)) {
    if (!more->send_continue) {
      return false;
    }
    c.out.assign(kContinue);
    c.write_since = now;
    flush(c);
    return true;
  }
  if (auto* r = std::get_if<Refusal>(&step)) {
    refuse_request(c, std::move(*r));
    return true;
  }
  auto& ready = std::get<RequestReader::Ready>(step);
  dispatch(c, std::move(ready.head), std::move(ready.body));
  return true;
}

void Server::Impl::dispatch(Conn& c, RequestHead h, std::string body) {
  if (c.in.empty() && c.in.capacity() > kKeptBuffer) {
    std::string().swap(c.in);
  }
  // A pipelined request already begun: its time runs from now.
  c.request_open = !c.in.empty();
  c.request_started = now;
  const bool keep_alive = h.keep_alive;
  Request req = make_request(std::move(h), std::move(body));
  req.peer = c.peer.text;
  req.peer_loopback = c.peer.loopback;
  if (req.request_id.empty()) {
    req.request_id = new_request_id();
  }
  req.tls = c.ssl != nullptr;

  c.answer_head = req.method == "HEAD";
  c.answer_keep_alive = keep_alive && c.answered + 1 < options.max_requests_per_connection &&
                        !stopping.load(std::memory_order_relaxed);
  c.answer_request_id = req.request_id;
  auto internal_error = [&] {
    return error_response(500, "internal_error", "the server failed to answer this request");
  };

  Dispatch d;
  try {
    d = dispatcher(req);
  } catch (const std::exception& e) {
    log::warn("http_handler_failed", std::string("request handler threw: ") + e.what(),
              {{"method", req.method}, {"path", req.path}, {"request_id", req.request_id}});
    d = Dispatch{internal_error(), {}};
  } catch (...) {
    log::warn("http_handler_failed", "request handler threw",
              {{"method", req.method}, {"path", req.path}, {"request_id", req.request_id}});
    d = Dispatch{internal_error(), {}};
  }
  if (!d.now && !d.job) {
    d.now = internal_error();
  }
  if (d.now) {
    answer(c, std::move(*d.now), c.answer_head, c.answer_keep_alive, c.answer_request_id);
    return;
  }
  {
    std::lock_guard lock(jobs_mutex);
    if (queue.size() < options.max_queued_jobs) {
      queue.push_back(Job{c.id, std::move(d.job), req.method, req.path});
      c.busy = true;
    }
  }
  if (c.busy) {
    jobs_cv.notify_one();
    return;
  }
  jobs_rejected.fetch_add(1, std::memory_order_relaxed);
  Response busy = error_response(503, "busy", "too many requests waiting; try again later");
  busy.headers.emplace_back("Retry-After", "1");
  answer(c, std::move(busy), c.answer_head, c.answer_keep_alive, c.answer_request_id);
}

void Server::Impl::refuse_request(Conn& c, Refusal r) {
  bad_requests.fetch_add(1, std::memory_order_relaxed);
  c.reader.reset();
  c.in.clear();
  c.request_open = false;
  const auto id = r.request_id.empty() ? new_request_id() : r.request_id;
  answer(c, error_response(r.status, r.code, r.message), r.head_method, false, id);
}

void Server::Impl::answer(Conn& c, Response r, bool head_method, bool keep_alive,
                          const std::string& request_id) {
  if (r.status < 100 || r.status > 599) {
    r = error_response(500, "internal_error", "the server failed to answer this request");
  }
  requests.fetch_add(1, std::memory_order_relaxed);
  by_status[static_cast<std::size_t>(r.status)].fetch_add(1, std::memory_order_relaxed);
  ++c.answered;
  if (!keep_alive) {
    c.close_after_write = true;
  }
  if (c.out.empty()) {
    c.write_since = now;
  }
  c.out += serialize_response(r, head_method, keep_alive, request_id);
  flush(c);
}

std::string Server::Impl::new_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  auto v = rng();
  std::string id(16, '0');
  for (auto& ch : id) {
    ch = kHex[v & 0xf];
    v >>= 4;
  }
  return id;
}

void Server::Impl::handshake(Conn& c) {
  ERR_clear_error();
  const int r = SSL_accept(c.ssl);
  if (r == 1) {
    c.handshaking = false;
    c.ready_at = now;
    return;
  }
  const int err = SSL_get_error(c.ssl, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    c.handshake_wants_write = err == SSL_ERROR_WANT_WRITE;
    return;
  }
  handshake_failures.fetch_add(1, std::memory_order_relaxed);
  const auto reason = err == SSL_ERROR_SSL ? openssl_reason() : std::string("connection lost");
  ERR_clear_error();
  log::debug("http_tls_handshake_failed", "TLS handshake failed: " + reason,
             {{"peer", c.peer.text}});
  close_conn(c);
}

Io Server::Impl::read_raw(Conn& c, char* data, std::size_t len, std::size_t& got) {
  got = 0;
  if (c.ssl != nullptr) {
    ERR_clear_error();
    const int n = SSL_read(c.ssl, data, static_cast<int>(std::min<std::size_t>(len, INT32_MAX)));
    c.read_wants_write = false;
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::done;
    }
    switch (SSL_get_error(c.ssl, n)) {
      case SSL_ERROR_WANT_READ:
        return Io::would_block;
      case SSL_ERROR_WANT_WRITE:
        c.read_wants_write = true;
        return Io::would_block;
      case SSL_ERROR_ZERO_RETURN:
        return Io::eof;
      default:
        ERR_clear_error();
        return Io::error;
    }
  }
  for (;;) {
    const auto n = ::recv(c.fd, data, len, 0);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::done;
    }
    if (n == 0) {
      return Io::eof;
    }
    if (errno == EINTR) {
      continue;
    }
    return errno == EAGAIN ? Io::would_block : Io::error;
  }
}

Io Server::Impl::write_raw(Conn& c, const char* data, std::size_t len, std::size_t& put) {
  put = 0;
  if (c.ssl != nullptr) {
    ERR_clear_error();
    const int n = SSL_write(c.ssl, data, static_cast<int>(std::min<std::size_t>(len, INT32_MAX)));
    c.write_wants_read = false;
    if (n > 0) {
      put = static_cast<std::size_t>(n);
      return Io::done;
    }
    switch (SSL_get_error(c.ssl, n)) {
      case SSL_ERROR_WANT_WRITE:
        return Io::would_block;
      case SSL_ERROR_WANT_READ:
        c.write_wants_read = true;
        return Io::would_block;
      default:
        ERR_clear_error();
        return Io::error;
    }
  }
  for (;;) {
    const auto n = ::send(c.fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
      put = static_cast<std::size_t>(n);
      return Io::done;
    }
    if (errno == EINTR) {
      continue;
    }
    return errno == EAGAIN ? Io::would_block : Io::error;
  }
}

// Reads what the socket has, up to the buffer's cap. true when something
// changed (bytes or the end of the stream).
bool Server::Impl::read_some(Conn& c) {
  bool progress = false;
  while (!c.dead && c.in.size() < read_cap) {
    std::size_t got = 0;
    const auto io =
        read_raw(c, scratch.data(), std::min(scratch.size(), read_cap - c.in.size()), got);
    if (io == Io::done) {
      if (!c.request_open) {
        c.request_open = true;
        c.request_started = now;
      }
      c.in.append(scratch.data(), got);
      progress = true;
      continue;
    }
    if (io == Io::eof) {
      c.peer_eof = true;
      return true;
    }
    if (io == Io::error) {
      close_conn(c);
    }
    break;
  }
  return progress;
}

void Server::Impl::discard_input(Conn& c) {
  for (;;) {
    const auto n = ::recv(c.fd, scratch.data(), scratch.size(), 0);
    if (n > 0) {
      c.lingered_bytes += static_cast<std::size_t>(n);
      if (c.lingered_bytes > kLingerBytes) {
        close_conn(c);
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return;
    }
    close_conn(c);
    return;
  }
}

void Server::Impl::flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    std::size_t put = 0;
    const auto io = write_raw(c, c.out.data() + c.out_off, c.out.size() - c.out_off, put);
    if (io == Io::done) {
      c.out_off += put;
      continue;
    }
    if (io == Io::error) {
      close_conn(c);
      return;
    }
    return;  // would block: EPOLLOUT (or EPOLLIN) brings us back
  }
  c.out_off = 0;
  c.out.clear();
  if (c.out.capacity() > kKeptBuffer) {
    std::string().swap(c.out);
  }
  c.idle_since = now;
}

// The final answer is out: the write side closes, and what the client still
// sends is read and dropped for a moment, so that it sees the answer rather
// than a reset.
void Server::Impl::begin_close(Conn& c) {
  if (c.peer_eof) {
    close_conn(c);
    return;
  }
  if (c.ssl != nullptr) {
    ERR_clear_error();
    SSL_shutdown(c.ssl);  // close_notify, best effort
    ERR_clear_error();
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  ::shutdown(c.fd, SHUT_WR);
  c.lingering = true;
  c.linger_until = now + std::min<milliseconds>(kLingerTime, options.request_timeout);
  std::string().swap(c.in);
  std::string().swap(c.out);
  c.reader.reset();
  discard_input(c);
}

void Server::Impl::close_conn(Conn& c) {
  if (c.dead) {
    return;
  }
  c.dead = true;
  if (c.ssl != nullptr) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  if (c.timer != kNever) {
    timers.erase({c.timer, c.id});
    c.timer = kNever;
  }
  dead.push_back(c.id);
}

// ---------------------------------------------------------------- workers

void Server::Impl::work(std::size_t index) {
  std::unique_lock lock(jobs_mutex);
  for (;;) {
    jobs_cv.wait(lock, [this] { return workers_stop || !queue.empty(); });
    if (workers_stop) {
      return;
    }
    Job job = std::move(queue.front());
    queue.pop_front();
    running[index] = SteadyClock::now();
    lock.unlock();

    Completion done{job.conn, {}};
    try {
      done.response = job.run();
    } catch (const std::exception& e) {
      log::warn("http_handler_failed", std::string("request job threw: ") + e.what(),
                {{"method", job.method}, {"path", job.path}});
      done.response =
          error_response(500, "internal_error", "the server failed to answer this request");
    } catch (...) {
      log::warn("http_handler_failed", "request job threw",
                {{"method", job.method}, {"path", job.path}});
      done.response =
          error_response(500, "internal_error", "the server failed to answer this request");
    }
    job.run = nullptr;  // its captures go before the lock is taken

    lock.lock();
    running[index].reset();
    completions.push_back(std::move(done));
    wake();
  }
}

// ---------------------------------------------------------------- Server

Server::Server(ServerOptions options, Dispatcher dispatcher)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(dispatcher))) {}

Server::~Server() {
  stop();
}

Result<bool> Server::start() {
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
  const Impl& i = *impl_;
  ServerStats s;
  s.connections_accepted = i.accepted.load();
  s.connections_rejected = i.rejected.load();
  s.connections_timed_out = i.timed_out.load();
  s.tls_handshake_failures = i.handshake_failures.load();
  s.requests = i.requests.load();
  s.bad_requests = i.bad_requests.load();
  s.jobs_rejected = i.jobs_rejected.load();
  s.connections_open = i.open.load();
  const auto now = SteadyClock::now();
  {
    std::lock_guard lock(impl_->jobs_mutex);
    s.jobs_queued = i.queue.size();
    for (const auto& started : i.running) {
      if (started) {
        ++s.jobs_running;
        s.oldest_job_age =
            std::max(s.oldest_job_age, std::chrono::duration_cast<milliseconds>(now - *started));
      }
    }
  }
  if (i.loop_running.load()) {
    const TimePoint last{SteadyClock::duration(i.last_tick.load())};
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
