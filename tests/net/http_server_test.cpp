// The agent's own HTTP server over real loopback sockets (docs/http-api.md
// "Limits", "Errors"): the answer's standard headers and request ids, keep-alive and
// pipelining, HEAD, every limit and protocol error, slow and idle clients,
// the connection cap, jobs on the worker pool, TLS, IPv6, the counters, stop
// and many clients at once. Clients are raw sockets (the bytes are the test)
// or cpp-httplib for HTTPS; every wait is bounded and nothing sleeps a fixed
// time.

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <random>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "agent/http/server.hpp"
#include "agent/platform/logging.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace pha::http;
using namespace std::chrono_literals;
using nlohmann::json;
using Ms = std::chrono::milliseconds;

namespace {

struct Answer {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  std::string header(const std::string& lower) const {
    const auto it = headers.find(lower);
    return it == headers.end() ? "" : it->second;
  }
  json doc() const { return json::parse(body, nullptr, false); }
};

std::string lower(std::string s) {
  for (auto& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

// A client socket whose every read waits with a timeout.
class RawClient {
 public:
  explicit RawClient(int port, const std::string& host = "127.0.0.1", int receive_buffer = 0) {
    const bool v6 = host.find(':') != std::string::npos;
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<std::uint16_t>(port));
      ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
      len = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<std::uint16_t>(port));
      ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
      len = sizeof(sockaddr_in);
    }
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~RawClient() { close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // One answer (a HEAD answer has no body); nullopt on timeout or close.
  std::optional<Answer> read_answer(bool head = false, Ms timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        Answer a;
        std::size_t pos = buffer_.find("\r\n");
        const auto status_line = buffer_.substr(0, pos);
        if (status_line.size() < 12 || status_line.compare(0, 9, "HTTP/1.1 ") != 0) {
          return std::nullopt;
        }
        a.status = std::stoi(status_line.substr(9, 3));
        a.reason = status_line.substr(13);
        while (pos < head_end) {
          const auto next = buffer_.find("\r\n", pos + 2);
          const auto line = buffer_.substr(pos + 2, next - pos - 2);
          const auto colon = line.find(':');
          if (colon != std::string::npos) {
            auto value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(' '));
            a.headers[lower(line.substr(0, colon))] = value;
          }
          pos = next;
        }
        const auto cl = a.header("content-length");
        const std::size_t length = head || cl.empty() ? 0 : std::stoul(cl);
        if (buffer_.size() >= head_end + 4 + length) {
          a.body = buffer_.substr(head_end + 4, length);
          buffer_.erase(0, head_end + 4 + length);
          return a;
        }
      }
      if (!fill(end)) {
        return std::nullopt;
      }
    }
  }

  // true when the server closed the connection (end of stream or reset)
  // within the timeout. What arrives meanwhile stays in buffer().
  bool wait_closed(Ms timeout = 5s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (fill(end)) {
    }
    return closed_;
  }

  // Whether something (bytes or the end) arrives within the timeout.
  bool readable(Ms timeout) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

  const std::string& buffer() const { return buffer_; }
  int fd() const { return fd_; }

  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  // An abortive close: the server sees a reset.
  void reset() {
    if (fd_ >= 0) {
      linger l{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close();
    }
  }

 private:
  bool fill(std::chrono::steady_clock::time_point end) {
    if (fd_ < 0 || closed_) {
      return false;
    }
    const auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char buf[16384];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

// Answers every request from memory with what it saw.
Dispatch echo(const Request& r) {
  json names = json::array();
  for (const auto& h : r.headers) {
    names.push_back(h.first);
  }
  Response res;
  res.body = json{
      {"method", r.method},
      {"target", r.target},
      {"path", r.path},
      {"query", r.query},
      {"body_size", r.body.size()},
      {"peer", r.peer},
      {"loopback", r.peer_loopback},
      {"request_id", r.request_id},
      {"tls", r.tls},
      {"x_test", std::string(r.header("x-test"))},
      {"names",
       names}}.dump();
  res.headers.emplace_back("X-Handler", "echo");
  return {std::move(res), {}};
}

ServerOptions options() {
  ServerOptions o;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  return o;
}

void start(Server& server) {
  auto started = server.start();
  INFO((started.ok() ? std::string("started") : started.error().message));
  REQUIRE(started.ok());
  REQUIRE(server.port() > 0);
}

// Polls `done` until it holds or the timeout passes.
template <class F>
bool eventually(F done, Ms timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

bool is_hex16(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A refusal: the status, the JSON error code, "Connection: close", then the end.
void check_refused(RawClient& c, int status, const std::string& code) {
  const auto a = c.read_answer();
  REQUIRE(a);
  CHECK(a->status == status);
  CHECK(a->header("content-type") == "application/json");
  CHECK(a->doc().value("error", "") == code);
  CHECK(a->header("connection") == "close");
  CHECK_FALSE(a->header("x-request-id").empty());
  CHECK(c.wait_closed());
}

// Jobs block on it until the test opens it (or 10 s pass).
class Gate {
 public:
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, 10s, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Opens the gate when a test ends early, so that stopping the server (which
// waits for running jobs) does not wait for the gate's own timeout.
struct GateOpener {
  std::shared_ptr<Gate> gate;
  ~GateOpener() { gate->open(); }
};

// "/slow" is a job that waits for the gate; everything else is echoed at once.
Dispatcher with_jobs(std::shared_ptr<Gate> gate) {
  return [gate](const Request& r) -> Dispatch {
    if (r.path != "/slow") {
      return echo(r);
    }
    const auto id = r.request_id;
    return {std::nullopt, [gate, id] {
              gate->wait();
              Response res;
              res.body = json{{"slow", true}, {"request_id", id}}.dump();
              return res;
            }};
  };
}

}  // namespace

TEST_CASE("http server: GET is answered with the dispatcher's answer and the standard headers") {
  Server server(options(), echo);
  start(server);
  RawClient c(server.port());
  REQUIRE(c.connected());

  REQUIRE(c.send(get("/hello%20world/x?a=1&b=%20",
                     "X-Request-ID: abc-123.X:y_z\r\nX-Test:   padded value  \r\n")));
  auto a = c.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->reason == "OK");
  CHECK(a->header("content-type") == "application/json");
  CHECK(a->header("content-length") == std::to_string(a->body.size()));
  CHECK(a->header("x-request-id") == "abc-123.X:y_z");
  CHECK(a->header("connection") == "keep-alive");
  CHECK(a->header("cache-control") == "no-store");
  CHECK(a->header("x-content-type-options") == "nosniff");
  CHECK(a->header("x-handler") == "echo");
  const auto j = a->doc();
  CHECK(j["method"] == "GET");
  CHECK(j["target"] == "/hello%20world/x?a=1&b=%20");
  CHECK(j["path"] == "/hello world/x");
  CHECK(j["query"] == "a=1&b=%20");
  CHECK(j["peer"] == "127.0.0.1");
  CHECK(j["loopback"] == true);
  CHECK(j["tls"] == false);
  CHECK(j["x_test"] == "padded value");
  CHECK(j["request_id"] == "abc-123.X:y_z");
  CHECK(j["names"] == json::array({"host", "x-request-id", "x-test"}));

  SUBCASE("without an id one is made up") {
    REQUIRE(c.send(get("/")));
    a = c.read_answer();
    REQUIRE(a);
    CHECK(is_hex16(a->header("x-request-id")));
    CHECK(a->doc()["request_id"] == a->header("x-request-id"));
  }
  SUBCASE("an insane id is replaced") {
    for (const auto& bad : {std::string("has space"), std::string("a/b"), std::string(129, 'a'),
                            std::string("semi;colon")}) {
      CAPTURE(bad);
      REQUIRE(c.send(get("/", "X-Request-ID: " + bad + "\r\n")));
      a = c.read_answer();
      REQUIRE(a);
      CHECK(is_hex16(a->header("x-request-id")));
    }
    const std::string longest(128, 'z');
    REQUIRE(c.send(get("/", "X-Request-ID: " + longest + "\r\n")));
    a = c.read_answer();
    REQUIRE(a);
    CHECK(a->header("x-request-id") == longest);
  }
}

TEST_CASE("http server: keep-alive and pipelining and Connection close") {
  auto opts = options();
  opts.max_requests_per_connection = 3;
  Server server(opts, echo);
  start(server);

  SUBCASE("two requests one after the other on one connection") {
    RawClient c(server.port());
    for (const auto* path : {"/one", "/two"}) {
      REQUIRE(c.send(get(path)));
      const auto a = c.read_answer();
      REQUIRE(a);
      CHECK(a->doc()["path"] == path);
      CHECK(a->header("connection") == "keep-alive");
    }
    CHECK(server.stats().connections_accepted == 1);
  }
  SUBCASE("pipelined requests in one write are answered in order") {
    RawClient c(server.port());
    REQUIRE(c.send("\r\n" + get("/one") + post("/two", "abc") + get("/three")));
    const auto one = c.read_answer();
    const auto two = c.read_answer();
    const auto three = c.read_answer();
    REQUIRE(one);
    REQUIRE(two);
    REQUIRE(three);
    CHECK(one->doc()["path"] == "/one");
    CHECK(two->doc()["path"] == "/two");
    CHECK(two->doc()["body_size"] == 3);
    CHECK(three->doc()["path"] == "/three");
    // The third request on the connection is its last.
    CHECK(three->header("connection") == "close");
    CHECK(c.wait_closed());
  }
  SUBCASE("Connection close closes after the answer") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/", "Connection: close\r\n")));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(a->header("connection") == "close");
    CHECK(c.wait_closed());
  }
  SUBCASE("HTTP/1.0 closes unless keep-alive is asked for") {
    RawClient c(server.port());
    REQUIRE(c.send("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->header("connection") == "keep-alive");
    REQUIRE(c.send("GET /b HTTP/1.0\r\n\r\n"));
    a = c.read_answer();
    REQUIRE(a);
    CHECK(a->doc()["path"] == "/b");
    CHECK(a->header("connection") == "close");
    CHECK(c.wait_closed());
  }
  SUBCASE("a request followed by the client's end of stream is still answered") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/last")));
    ::shutdown(c.fd(), SHUT_WR);
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->doc()["path"] == "/last");
    CHECK(c.wait_closed());
  }
}

TEST_CASE("http server: HEAD sends the headers without the body") {
  std::atomic<int> heads{0};
  Server server(options(), [&](const Request& r) -> Dispatch {
    heads += r.method == "HEAD" ? 1 : 0;
    Response res;
    res.content_type = "text/plain";
    res.body = "0123456789";
    return {res, {}};
  });
  start(server);
  RawClient c(server.port());
  REQUIRE(c.send("HEAD /x HTTP/1.1\r\nHost: test\r\n\r\n"));
  const auto head = c.read_answer(true);
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->header("content-length") == "10");
  CHECK(head->header("content-type") == "text/plain");
  CHECK(head->body.empty());
  CHECK(heads == 1);
  // Had a body followed, this answer would not parse.
  REQUIRE(c.send(get("/x")));
  const auto a = c.read_answer();
  REQUIRE(a);
  CHECK(a->body == "0123456789");
  CHECK(c.buffer().empty());
}

TEST_CASE("http server: the body limit answers 413 before the body and 64 KiB arrive intact") {
  std::mutex mutex;
  std::string seen;
  std::atomic<int> calls{0};
  Server server(options(), [&](const Request& r) -> Dispatch {
    ++calls;
    {
      std::lock_guard lock(mutex);
      seen = r.body;
    }
    return {Response{200, "application/json", {}, "{}"}, {}};
  });
  start(server);

  SUBCASE("one byte over the limit is refused from Content-Length alone") {
    RawClient c(server.port());
    REQUIRE(c.send("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 65537\r\n\r\n"));
    check_refused(c, 413, "payload_too_large");
    CHECK(calls == 0);
  }
  SUBCASE("a huge Content-Length is refused the same way") {
    RawClient c(server.port());
    REQUIRE(c.send("POST /x HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"));
    check_refused(c, 413, "payload_too_large");
  }
  SUBCASE("exactly 64 KiB is delivered byte for byte") {
    std::string body(64 * 1024, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) {
      body[i] = static_cast<char>(i * 7 + i / 251);
    }
    RawClient c(server.port());
    REQUIRE(c.send(post("/x", body)));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    std::lock_guard lock(mutex);
    CHECK(seen == body);
  }
  SUBCASE("Expect 100-continue gets the interim answer") {
    RawClient c(server.port());
    REQUIRE(c.send(
        "POST /x HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
    const auto interim = c.read_answer();
    REQUIRE(interim);
    CHECK(interim->status == 100);
    REQUIRE(c.send("hello"));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    std::lock_guard lock(mutex);
    CHECK(seen == "hello");
  }
}

TEST_CASE("http server: header limits answer 431 and a huge target 414") {
  Server server(options(), echo);
  start(server);
  auto headers = [](int n) {
    std::string h;
    for (int i = 0; i < n; ++i) {
      h += "X-H" + std::to_string(i) + ": v\r\n";
    }
    return h;
  };
  SUBCASE("as many header fields as allowed") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/", headers(99))));  // and Host: 100
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
  }
  SUBCASE("one header field too many") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/", headers(100))));
    check_refused(c, 431, "headers_too_large");
  }
  SUBCASE("headers over the byte limit") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/", "X-Big: " + std::string(17 * 1024, 'b') + "\r\n")));
    check_refused(c, 431, "headers_too_large");
  }
  SUBCASE("a request line over the limit") {
    RawClient c(server.port());
    REQUIRE(c.send(get("/" + std::string(20 * 1024, 't'))));
    check_refused(c, 414, "uri_too_long");
  }
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
}

TEST_CASE("http server: malformed requests answer 400 411 and 505 and close") {
  Server server(options(), echo);
  start(server);
  struct Row {
    std::string bytes;
    int status;
    const char* code;
  };
  const Row rows[] = {
      {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 400, "bad_request"},
      {"GARBAGE\r\n\r\n", 400, "bad_request"},
      {"GET /%zz HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET /a%00b HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET /a%4 HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET nopath HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET * HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET / HTTP/1.1 extra\r\n\r\n", 400, "bad_request"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET / HTTQ/1.1\r\n\r\n", 400, "bad_request"},
      {"GET /\r\n\r\n", 400, "bad_request"},
      {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "bad_request"},
      {"GET / HTTP/1.1\r\nBad header\r\n\r\n", 400, "bad_request"},
      {"GET / HTTP/1.1\r\nBad name: x\r\n\r\n", 400, "bad_request"},
      {"GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n", 400, "bad_request"},
      {"GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n", 400, "bad_request"},
      {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"},
      {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "bad_request"},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
       "bad_request"},
      {"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!", 400, "bad_request"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
       "length_required"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"},
      {"GET / HTTP/0.9\r\n\r\n", 505, "http_version_not_supported"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.bytes);
    RawClient c(server.port());
    REQUIRE(c.send(row.bytes));
    check_refused(c, row.status, row.code);
  }
  const auto refused = sizeof rows / sizeof rows[0];
  CHECK(server.stats().bad_requests == refused);

  SUBCASE("a refusal after the headers echoes the client's request id") {
    RawClient c(server.port());
    REQUIRE(c.send("POST / HTTP/1.1\r\nX-Request-ID: te-1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 411);
    CHECK(a->header("x-request-id") == "te-1");
  }
  SUBCASE("the same length twice is one length") {
    RawClient c(server.port());
    REQUIRE(c.send("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello" +
                   get("/n")));
    auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(a->doc()["body_size"] == 5);
    a = c.read_answer();
    REQUIRE(a);
    CHECK(a->doc()["path"] == "/n");
  }
  SUBCASE("an unknown but valid method reaches the dispatcher") {
    RawClient c(server.port());
    REQUIRE(c.send("BREW /pot HTTP/1.1\r\n\r\n"));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->doc()["method"] == "BREW");
  }
  SUBCASE("OPTIONS * is a valid target") {
    RawClient c(server.port());
    REQUIRE(c.send("OPTIONS * HTTP/1.1\r\n\r\n"));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->doc()["path"] == "*");
  }
  CHECK(server.stats().requests >= refused);
}

TEST_CASE("http server: a slow client gets 408 while others are served") {
  auto opts = options();
  opts.request_timeout = 300ms;
  Server server(opts, echo);
  start(server);

  RawClient slow(server.port());
  REQUIRE(slow.send("GET / HTTP/1.1\r\nHost: test\r\nX-Slow: "));
  const auto first_byte = std::chrono::steady_clock::now();
  bool others_served = false;
  // One more header byte every 20 ms until the server answers.
  for (int i = 0; i < 200 && !slow.readable(20ms); ++i) {
    REQUIRE(slow.send("a"));
    if (i == 3) {
      RawClient quick(server.port());
      const auto t0 = std::chrono::steady_clock::now();
      REQUIRE(quick.send(get("/quick")));
      const auto a = quick.read_answer();
      REQUIRE(a);
      CHECK(a->status == 200);
      CHECK(std::chrono::steady_clock::now() - t0 < 250ms);
      others_served = true;
    }
  }
  const auto waited = std::chrono::steady_clock::now() - first_byte;
  CHECK(others_served);
  const auto a = slow.read_answer();
  REQUIRE(a);
  CHECK(a->status == 408);
  CHECK(a->doc()["error"] == "request_timeout");
  CHECK(a->header("connection") == "close");
  CHECK(slow.wait_closed());
  CHECK(waited >= 250ms);
  CHECK(waited < 2s);

  {
    // A connection that sends nothing is closed without an answer.
    RawClient silent(server.port());
    CHECK(silent.wait_closed(3s));
    CHECK(silent.buffer().empty());
  }
  CHECK(server.stats().connections_timed_out >= 1);
}

TEST_CASE(
    "http server: at the cap an idle or slow connection makes room - 503 only when all are busy") {
  auto opts = options();
  opts.max_connections = 4;
  Server server(opts, echo);
  start(server);
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(held.back()->connected());
    REQUIRE(eventually([&] { return server.stats().connections_open == held.size(); }));
  }
  // 0 is half way through a request (slowloris), 1 and 2 say nothing, 3 is
  // an idle keep-alive connection after an answer.
  REQUIRE(held[0]->send("GET / HTTP/1.1\r\n"));
  REQUIRE(held[3]->send(get("/first")));
  REQUIRE(held[3]->read_answer());

  // Each newcomer takes a place: the idle keep-alive connection's first, then
  // those of the unfinished requests.
  std::vector<std::unique_ptr<RawClient>> newcomers;
  newcomers.push_back(std::make_unique<RawClient>(server.port()));
  CHECK(held[3]->wait_closed());
  for (int i = 0; i < 3; ++i) {
    newcomers.push_back(std::make_unique<RawClient>(server.port()));
  }
  for (const std::size_t i : {0u, 1u, 2u}) {
    CAPTURE(i);
    CHECK(held[i]->wait_closed());
  }
  // A request that arrives now is answered (the oldest silent newcomer makes room).
  RawClient asking(server.port());
  REQUIRE(asking.send(get("/new")));
  const auto a = asking.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(newcomers[0]->wait_closed());
  CHECK(server.stats().connections_rejected == 5);
  CHECK(server.stats().connections_open == 4);
}

TEST_CASE("http server: connections over the cap get 503 when every one has a job running") {
  auto gate = std::make_shared<Gate>();
  auto opts = options();
  opts.max_connections = 2;
  opts.workers = 2;
  Server server(opts, with_jobs(gate));
  start(server);
  GateOpener opener{gate};
  RawClient one(server.port());
  RawClient two(server.port());
  REQUIRE(one.send(get("/slow")));
  REQUIRE(two.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 2; }));

  RawClient third(server.port());
  auto a = third.read_answer();
  REQUIRE(a);
  CHECK(a->status == 503);
  CHECK(a->doc()["error"] == "overloaded");
  CHECK(a->header("connection") == "close");
  CHECK(is_hex16(a->header("x-request-id")));
  CHECK(third.wait_closed());
  CHECK(server.stats().connections_rejected == 1);

  gate->open();
  for (auto* c : {&one, &two}) {
    a = c->read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
  }
  RawClient later(server.port());
  REQUIRE(later.send(get("/after")));
  a = later.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->doc()["path"] == "/after");
}

TEST_CASE("http server: idle keep-alive connections are closed") {
  auto opts = options();
  opts.idle_timeout = 200ms;
  Server server(opts, echo);
  start(server);
  RawClient c(server.port());
  REQUIRE(c.send(get("/")));
  REQUIRE(c.read_answer());
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait_closed(3s));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 150ms);
  CHECK(waited < 2s);
  CHECK(c.buffer().empty());
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
}

TEST_CASE("http server: a pending write not drained in time closes the connection") {
  auto opts = options();
  opts.write_timeout = 300ms;
  const std::string big(16 << 20, 'x');
  Server server(opts, [&](const Request& r) -> Dispatch {
    if (r.path == "/big") {
      return {Response{200, "text/plain", {}, big}, {}};
    }
    return echo(r);
  });
  start(server);
  RawClient reader_that_never_reads(server.port(), "127.0.0.1", 4096);
  REQUIRE(reader_that_never_reads.send(get("/big")));
  REQUIRE(eventually([&] { return server.stats().connections_timed_out == 1; }));
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
  RawClient other(server.port());
  REQUIRE(other.send(get("/")));
  const auto a = other.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
}

TEST_CASE("http server: a job runs on a worker while the loop keeps answering") {
  auto gate = std::make_shared<Gate>();
  Server server(options(), with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  RawClient waiting(server.port());
  // The request after the job's waits for it: answers keep their order.
  REQUIRE(waiting.send(get("/slow", "X-Request-ID: job-1\r\n") + get("/after-slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 1; }));

  for (int i = 0; i < 3; ++i) {
    RawClient quick(server.port());
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(quick.send(get("/quick")));
    const auto a = quick.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
  }
  CHECK_FALSE(waiting.readable(0ms));
  REQUIRE(eventually([&] { return server.stats().oldest_job_age >= 10ms; }));
  const auto s = server.stats();
  CHECK(s.jobs_queued == 0);
  CHECK(s.loop_lag < 1s);

  gate->open();
  auto a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
  CHECK(a->doc()["slow"] == true);
  CHECK(a->doc()["request_id"] == "job-1");
  CHECK(a->header("x-request-id") == "job-1");
  CHECK(a->header("connection") == "keep-alive");
  a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["path"] == "/after-slow");
  // And the connection goes on.
  REQUIRE(waiting.send(get("/again")));
  a = waiting.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["path"] == "/again");
  CHECK(eventually([&] { return server.stats().jobs_running == 0; }));
  CHECK(server.stats().oldest_job_age == 0ms);
}

TEST_CASE("http server: a client that leaves while its job runs is forgotten") {
  auto gate = std::make_shared<Gate>();
  Server server(options(), with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  auto gone = std::make_unique<RawClient>(server.port());
  auto closed = std::make_unique<RawClient>(server.port());
  REQUIRE(gone->send(get("/slow")));
  REQUIRE(closed->send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 2; }));
  gone->reset();
  closed->close();
  // The reset is seen at once, although nothing is read while the job runs.
  REQUIRE(eventually([&] { return server.stats().connections_open == 1; }));
  gate->open();
  CHECK(eventually([&] { return server.stats().jobs_running == 0; }));
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));

  RawClient after(server.port());
  REQUIRE(after.send(get("/")));
  const auto a = after.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
}

TEST_CASE("http server: a full job queue answers 503 busy") {
  auto gate = std::make_shared<Gate>();
  auto opts = options();
  opts.workers = 1;
  opts.max_queued_jobs = 1;
  Server server(opts, with_jobs(gate));
  start(server);
  GateOpener opener{gate};

  RawClient running(server.port());
  REQUIRE(running.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_running == 1; }));
  RawClient queued(server.port());
  REQUIRE(queued.send(get("/slow")));
  REQUIRE(eventually([&] { return server.stats().jobs_queued == 1; }));

  RawClient refused(server.port());
  REQUIRE(refused.send(get("/slow")));
  auto a = refused.read_answer();
  REQUIRE(a);
  CHECK(a->status == 503);
  CHECK(a->doc()["error"] == "busy");
  CHECK(a->header("retry-after") == "1");
  CHECK(a->header("connection") == "keep-alive");
  CHECK(server.stats().jobs_rejected == 1);

  gate->open();
  for (auto* c : {&running, &queued}) {
    a = c->read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
  }
}

TEST_CASE("http server: a throwing dispatcher or job answers 500 without the exception text") {
  std::vector<std::string> lines;
  log::capture_for_test(&lines);
  {
    Server server(options(), [](const Request& r) -> Dispatch {
      if (r.path == "/throw") {
        throw std::runtime_error("secret-detail-1");
      }
      if (r.path == "/throw-other") {
        throw 42;
      }
      if (r.path == "/throw-job") {
        return {std::nullopt, []() -> Response { throw std::runtime_error("secret-detail-2"); }};
      }
      if (r.path == "/nothing") {
        return {};
      }
      return echo(r);
    });
    start(server);
    RawClient c(server.port());
    for (const auto* path : {"/throw", "/throw-other", "/throw-job", "/nothing"}) {
      CAPTURE(path);
      REQUIRE(c.send(get(path, "X-Request-ID: r-1\r\n")));
      const auto a = c.read_answer();
      REQUIRE(a);
      CHECK(a->status == 500);
      CHECK(a->doc()["error"] == "internal_error");
      CHECK(a->body.find("secret") == std::string::npos);
      CHECK(a->header("x-request-id") == "r-1");
    }
    // The connection is still good.
    REQUIRE(c.send(get("/fine")));
    const auto a = c.read_answer();
    REQUIRE(a);
    CHECK(a->status == 200);
    server.stop();
  }
  log::capture_for_test(nullptr);
  int failures = 0;
  for (const auto& l : lines) {
    failures += l.find("http_handler_failed") != std::string::npos ? 1 : 0;
  }
  CHECK(failures == 3);
}

TEST_CASE("http server: HTTPS with a test certificate") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("server");
  auto opts = options();
  opts.tls_cert_file = cert.cert_pem_path;
  opts.tls_key_file = cert.key_pem_path;
  const std::string big(1 << 20, 'y');
  std::mutex mutex;
  std::string seen_body;
  Server server(opts, [&](const Request& r) -> Dispatch {
    if (r.path == "/big") {
      return {Response{200, "text/plain", {}, big}, {}};
    }
    {
      std::lock_guard lock(mutex);
      seen_body = r.body;
    }
    return echo(r);
  });
  start(server);
  CHECK(server.tls());

  httplib::SSLClient client("127.0.0.1", server.port());
  client.set_ca_cert_path(pki.ca_pem_path().c_str());
  client.enable_server_certificate_verification(true);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  client.set_keep_alive(true);
  auto res = client.Get("/hello?x=1");
  REQUIRE(res);
  CHECK(res->status == 200);
  const auto j = json::parse(res->body);
  CHECK(j["tls"] == true);
  CHECK(j["path"] == "/hello");
  CHECK(is_hex16(res->get_header_value("X-Request-ID")));

  res = client.Get("/big");
  REQUIRE(res);
  CHECK(res->body == big);
  const std::string upload(64 * 1024, 'u');
  res = client.Post("/upload", upload, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 200);
  {
    std::lock_guard lock(mutex);
    CHECK(seen_body == upload);
  }
  CHECK(server.stats().connections_accepted == 1);  // kept alive over TLS

  SUBCASE("plain HTTP to the TLS port is closed and the server goes on") {
    RawClient plain(server.port());
    REQUIRE(plain.send(get("/")));
    CHECK(plain.wait_closed());
    CHECK(plain.buffer().find("HTTP/1.1 200") == std::string::npos);
    CHECK(eventually([&] { return server.stats().tls_handshake_failures == 1; }));
    httplib::SSLClient again("127.0.0.1", server.port());
    again.set_ca_cert_path(pki.ca_pem_path().c_str());
    again.enable_server_certificate_verification(true);
    res = again.Get("/again");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  SUBCASE("a client that resets during the handshake costs nothing") {
    RawClient rude(server.port());
    REQUIRE(rude.send(std::string("\x16\x03\x01\x00\x05hello", 10)));
    rude.reset();
    CHECK(eventually([&] { return server.stats().connections_open <= 1; }));
    res = client.Get("/still");
    REQUIRE(res);
    CHECK(res->status == 200);
  }
}

TEST_CASE("http server: bad TLS files make start fail with the file name") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("server");
  const auto other = pki.issue("other");
  const auto garbage_key = dir.write(
      "garbage.key", "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n");
  struct Row {
    std::string cert;
    std::string key;
    std::string expect;
  };
  const Row rows[] = {
      {cert.cert_pem_path, garbage_key, "cannot use TLS key file " + garbage_key + ": "},
      {dir.path() + "/missing.pem", cert.key_pem_path,
       "cannot use TLS certificate file " + dir.path() + "/missing.pem: No such file"},
      {cert.cert_pem_path, dir.path() + "/missing.key",
       "cannot use TLS key file " + dir.path() + "/missing.key: No such file"},
      {garbage_key, cert.key_pem_path, "cannot use TLS certificate file " + garbage_key + ": "},
      {cert.cert_pem_path, other.key_pem_path,
       "TLS key file " + other.key_pem_path + " does not match"},
      {cert.cert_pem_path, "", "TLS needs both a certificate file and a key file"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.expect);
    auto opts = options();
    opts.tls_cert_file = row.cert;
    opts.tls_key_file = row.key;
    Server server(opts, echo);
    const auto r = server.start();
    REQUIRE_FALSE(r.ok());
    INFO(r.error().message);
    CHECK(r.error().message.find(row.expect) == 0);
    CHECK(r.error().message.find("not-a-key") == std::string::npos);
  }
}

TEST_CASE("http server: start on a port in use fails with the address") {
  Server first(options(), echo);
  start(first);
  auto opts = options();
  opts.port = first.port();
  Server second(opts, echo);
  const auto r = second.start();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "cannot listen on 127.0.0.1:" + std::to_string(first.port()) + ": Address already in use");
  second.stop();  // never started: nothing to do

  opts.bind_address = "localhost";
  Server named(opts, echo);
  const auto n = named.start();
  REQUIRE_FALSE(n.ok());
  CHECK(n.error().message.find("cannot listen on localhost:") == 0);
  CHECK(n.error().message.find("not an IPv4 or IPv6 address") != std::string::npos);
}

TEST_CASE("http server: IPv6 loopback and the dual-stack any address") {
  auto opts = options();
  opts.bind_address = "::1";
  Server v6(opts, echo);
  const auto started = v6.start();
  if (!started.ok()) {
    MESSAGE("no IPv6 here: " << started.error().message);
    return;
  }
  RawClient c(v6.port(), "::1");
  REQUIRE(c.connected());
  REQUIRE(c.send(get("/six")));
  auto a = c.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["peer"] == "::1");
  CHECK(a->doc()["loopback"] == true);

  opts.bind_address = "::";
  Server any(opts, echo);
  start(any);
  RawClient four(any.port(), "127.0.0.1");
  REQUIRE(four.connected());
  REQUIRE(four.send(get("/four")));
  a = four.read_answer();
  REQUIRE(a);
  CHECK(a->doc()["peer"] == "127.0.0.1");
  CHECK(a->doc()["loopback"] == true);
}

TEST_CASE("http server: stats count connections and requests") {
  auto opts = options();
  opts.max_connections = 2;
  Server server(opts, echo);
  start(server);
  CHECK(server.stats().loop_lag < 1s);

  RawClient c1(server.port());
  for (int i = 0; i < 2; ++i) {
    REQUIRE(c1.send(get("/")));
    REQUIRE(c1.read_answer());
  }
  {
    RawClient c2(server.port());
    REQUIRE(c2.send("\x01\x02\r\n\r\n"));
    check_refused(c2, 400, "bad_request");
  }
  REQUIRE(eventually([&] { return server.stats().connections_open == 1; }));
  RawClient c3(server.port());
  REQUIRE(eventually([&] { return server.stats().connections_open == 2; }));
  // At the cap c4 takes the place of c1, idle after its answers.
  RawClient c4(server.port());
  CHECK(c1.wait_closed());
  REQUIRE(eventually([&] { return server.stats().connections_accepted == 4; }));

  const auto s = server.stats();
  CHECK(s.connections_accepted == 4);
  CHECK(s.connections_rejected == 1);
  CHECK(s.connections_open == 2);
  CHECK(s.requests == 3);
  CHECK(s.bad_requests == 1);
  CHECK(s.jobs_rejected == 0);
  CHECK(s.jobs_running == 0);
  CHECK(s.jobs_queued == 0);
  CHECK(s.tls_handshake_failures == 0);
  CHECK(s.loop_lag < 1s);
  const std::vector<std::pair<int, std::uint64_t>> expected{{200, 2}, {400, 1}};
  CHECK(server.responses_by_status() == expected);
  server.stop();
  CHECK(server.stats().loop_lag == 0ms);
}

TEST_CASE("http server: stop with connected clients returns promptly") {
  Server server(options(), echo);
  start(server);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
  }
  REQUIRE(clients[0]->send(get("/")));
  REQUIRE(clients[0]->read_answer());
  REQUIRE(clients[1]->send("GET /half HTTP/1.1\r\n"));
  REQUIRE(eventually([&] { return server.stats().connections_open == 20; }));

  const auto t0 = std::chrono::steady_clock::now();
  server.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  for (auto& c : clients) {
    CHECK(c->wait_closed(2s));
  }
  server.stop();  // again: nothing happens
  CHECK(server.stats().connections_open == 0);
}

TEST_CASE("http server: 300 concurrent clients are all answered") {
  Server server(options(), echo);
  start(server);
  constexpr int kClients = 300;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(clients.back()->connected());
  }
  for (int i = 0; i < kClients; ++i) {
    REQUIRE(clients[static_cast<std::size_t>(i)]->send(get("/n?i=" + std::to_string(i))));
  }
  int answered = 0;
  for (int i = 0; i < kClients; ++i) {
    const auto a = clients[static_cast<std::size_t>(i)]->read_answer();
    if (a && a->status == 200 && a->doc()["query"] == "i=" + std::to_string(i)) {
      ++answered;
    }
  }
  CHECK(answered == kClients);
  const auto s = server.stats();
  CHECK(s.connections_accepted == kClients);
  CHECK(s.connections_open == kClients);
  CHECK(s.requests == kClients);
}

TEST_CASE("http server: random requests never break the server") {
  auto opts = options();
  opts.max_body_bytes = 64;
  opts.max_header_bytes = 512;
  opts.max_headers = 8;
  Server server(opts, echo);
  start(server);
  const std::vector<std::string> pieces = {"GET ",
                                           "POST ",
                                           "HEAD ",
                                           "OPTIONS ",
                                           "/",
                                           "/a",
                                           "%",
                                           "%2",
                                           "%41",
                                           "%00",
                                           "?q=1",
                                           "*",
                                           " HTTP/1.1",
                                           " HTTP/1.0",
                                           " HTTP/2.0",
                                           "\r\n",
                                           "\n",
                                           "\r\n\r\n",
                                           "Content-Length: ",
                                           "5",
                                           "0",
                                           "99999999999",
                                           ", ",
                                           "Transfer-Encoding: chunked",
                                           "Connection: close",
                                           "Connection: keep-alive",
                                           "Expect: 100-continue",
                                           "X-Request-ID: ",
                                           "id-1",
                                           ":",
                                           " ",
                                           "\t",
                                           std::string(1, '\0'),
                                           "\x7f",
                                           "\xff",
                                           "hello",
                                           std::string(300, 'x')};
  std::mt19937 rng(20240611);
  constexpr int kClients = 150;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    std::string bytes;
    const auto n = 1 + rng() % 40;
    for (unsigned k = 0; k < n; ++k) {
      bytes += pieces[rng() % pieces.size()];
    }
    clients.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(clients.back()->send(bytes));
    // The end of the stream: whatever is complete is answered, then the server closes.
    ::shutdown(clients.back()->fd(), SHUT_WR);
  }
  for (auto& c : clients) {
    CHECK(c->wait_closed());
  }
  CHECK(eventually([&] { return server.stats().connections_open == 0; }));
  RawClient good(server.port());
  REQUIRE(good.send(get("/ok")));
  const auto a = good.read_answer();
  REQUIRE(a);
  CHECK(a->status == 200);
}
