#pragma once
// Servers for the loopback tests, in the test process, on port 0: a
// cpp-httplib server (HTTP or HTTPS) run in a thread, and a raw socket server
// whose connection handlers write exactly the bytes a test needs (a custom
// reason phrase, a body cut off, a connection closed while idle). No fixed
// sleeps: starts wait for "listening", reads wait with timeouts, and stopping
// shuts every socket down so that blocked handlers return at once.

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <set>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <httplib.h>

#include "tests/net/socket_io.hpp"

namespace pha::test {

// Runs an httplib::Server (or SSLServer) on host:0 in a thread.
class HttplibRunner {
 public:
  explicit HttplibRunner(httplib::Server& server, const std::string& host = "127.0.0.1")
      : server_(server), host_(host) {
    port_ = server_.bind_to_any_port(host);
    if (port_ <= 0) {
      return;
    }
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < end) {
      std::this_thread::yield();
    }
  }
  ~HttplibRunner() {
    server_.stop();
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  HttplibRunner(const HttplibRunner&) = delete;
  HttplibRunner& operator=(const HttplibRunner&) = delete;

  bool ok() const { return port_ > 0 && server_.is_running(); }
  int port() const { return port_; }
  std::string url(const std::string& path, const std::string& scheme = "http") const {
    const bool v6 = host_.find(':') != std::string::npos;
    return scheme + "://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_) + path;
  }

 private:
  httplib::Server& server_;
  std::string host_;
  int port_ = -1;
  std::thread thread_;
};

// One accepted connection of a RawServer.
class RawConnection {
 public:
  RawConnection(int fd, int index, std::atomic<int>& requests, std::mutex& mutex,
                std::set<int>& open)
      : fd_(fd), index_(index), requests_(requests), mutex_(mutex), open_(open) {}
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  int index() const { return index_; }  // accept order, from 0

  // Reads one request (head and Content-Length body). nullopt when the peer
  // closed, the socket was shut down, or nothing came within `timeout`.
  std::optional<std::string> read_request(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto head = buffer_.substr(0, head_end + 4);
        const auto total = head.size() + content_length(head);
        if (buffer_.size() >= total) {
          auto request = buffer_.substr(0, total);
          buffer_.erase(0, total);
          ++requests_;
          return request;
        }
      }
      if (!fill(end)) {
        return std::nullopt;
      }
    }
  }

  bool write(std::string_view bytes) { return send_all(fd_, bytes); }

  // Blocks until the peer closes the connection (or the server stops).
  void wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (fill(end)) {
    }
  }

  // An orderly close (FIN).
  void close() {
    if (fd_ >= 0) {
      // Out of the server's list first: stop() must never shut down a
      // descriptor number that the process has reused meanwhile.
      std::lock_guard lock(mutex_);
      open_.erase(fd_);
      ::close(fd_);
      fd_ = -1;
    }
  }
  // An abortive close: the peer sees "connection reset".
  void reset() {
    if (fd_ >= 0) {
      reset_on_close(fd_);
      close();
    }
  }
  int fd() const { return fd_; }

 private:
  static std::size_t content_length(const std::string& head) {
    std::string lower;
    for (char c : head) {
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const auto p = lower.find("\r\ncontent-length:");
    if (p == std::string::npos) {
      return 0;
    }
    return static_cast<std::size_t>(std::stoul(lower.substr(p + 17)));
  }

  bool fill(std::chrono::steady_clock::time_point end) {
    return fd_ >= 0 && read_some(fd_, end, buffer_) == ReadResult::data;
  }

  int fd_;
  int index_;
  std::atomic<int>& requests_;
  std::mutex& mutex_;
  std::set<int>& open_;
  std::string buffer_;
};

// Accepts connections on host:0 and runs `handler` for each, in its own
// thread. Counts accepted connections and the requests handlers read.
class RawServer {
 public:
  using Handler = std::function<void(RawConnection&)>;

  explicit RawServer(Handler handler, const std::string& host = "127.0.0.1")
      : handler_(std::move(handler)), host_(host) {
    const bool v6 = host.find(':') != std::string::npos;
    listen_fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
      return;
    }
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      ::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr);
      len = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      ::inet_pton(AF_INET, host.c_str(), &a->sin_addr);
      len = sizeof(sockaddr_in);
    }
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~RawServer() { stop(); }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  std::string url(const std::string& path, const std::string& scheme = "http") const {
    const bool v6 = host_.find(':') != std::string::npos;
    return scheme + "://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_) + path;
  }

  void stop() {
    if (wake_[1] >= 0) {
      const char c = 'x';
      (void)!::write(wake_[1], &c, 1);
    }
    if (acceptor_.joinable()) {
      acceptor_.join();
    }
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    for (auto& t : handlers_) {
      t.join();
    }
    handlers_.clear();
    for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
    }
  }

 private:
  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      if (p[1].revents != 0) {
        return;
      }
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      const int index = connections_++;
      {
        std::lock_guard lock(mutex_);
        open_.insert(fd);
      }
      handlers_.emplace_back([this, fd, index] {
        RawConnection c(fd, index, requests_, mutex_, open_);
        handler_(c);
      });
    }
  }

  Handler handler_;
  std::string host_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = -1;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::set<int> open_;
  std::thread acceptor_;
  std::vector<std::thread> handlers_;
};

// A port on 127.0.0.1 where nothing listens (bound, then closed).
inline int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), len);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace pha::test
