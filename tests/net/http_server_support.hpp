// What the HTTP server's net tests share (tests/net/http_server_*_test.cpp):
// a raw-socket client whose bytes are the test, request builders, an echoing
// dispatcher, a gate that holds jobs until the test opens it, and bounded
// waits.

#pragma once

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
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "agent/http/server.hpp"
#include "tests/net/socket_io.hpp"

namespace pha::test::http_server {

using namespace pha::http;
using namespace std::chrono_literals;
using nlohmann::json;
using Ms = std::chrono::milliseconds;

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

  bool send(std::string_view bytes) { return send_all(fd_, bytes); }

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
            a.headers[to_lower(line.substr(0, colon))] = value;
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
      reset_on_close(fd_);
      close();
    }
  }

 private:
  bool fill(std::chrono::steady_clock::time_point end) {
    if (fd_ < 0 || closed_) {
      return false;
    }
    const auto r = read_some(fd_, end, buffer_);
    closed_ = r == ReadResult::closed;
    return r == ReadResult::data;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buffer_;
};

inline std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra + "\r\n";
}

inline std::string post(const std::string& target, const std::string& body) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: test\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
         body;
}

// One request on a new connection to 127.0.0.1, and its answer (nullopt when
// it could not be sent or no answer came).
inline std::optional<Answer> ask(int port, const std::string& request) {
  RawClient c(port);
  if (!c.send(request)) {
    return std::nullopt;
  }
  return c.read_answer();
}

// Answers every request from memory with what it saw.
inline Dispatch echo(const Request& r) {
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

inline ServerOptions options() {
  ServerOptions o;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  return o;
}

inline void start(Server& server) {
  auto started = server.start();
  INFO((started.ok() ? std::string("started") : started.error().message));
  REQUIRE(started.ok());
  REQUIRE(server.port() > 0);
}

// Polls `done` until it holds or the timeout passes.
template <class F>
inline bool eventually(F done, Ms timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

inline bool is_hex16(const std::string& s) {
  return s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// A refusal: the status, the JSON error code, "Connection: close", then the end.
inline void check_refused(RawClient& c, int status, const std::string& code) {
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
inline Dispatcher with_jobs(std::shared_ptr<Gate> gate) {
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
}  // namespace pha::test::http_server
