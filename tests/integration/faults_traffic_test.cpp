// Fault injection, traffic to the agent (issue 8): slowloris, thousands of
// concurrent connections beyond the 512 cap, oversized headers and bodies
// from many clients at once, random bytes. Throughout each attack a prober
// asks /health on a fresh connection every 50 ms: every answer must be 200
// and come within a bound. (Single hostile requests are in api_test.)

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <fcntl.h>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/faults.hpp"

using namespace pha;
using namespace pha::test;
using namespace std::chrono_literals;

namespace {

// Under AddressSanitizer (a Debug build, several times slower) the loop needs headroom.
#ifdef __SANITIZE_ADDRESS__
constexpr auto kHealthBound = 2500ms;
#else
constexpr auto kHealthBound = 1000ms;
#endif

// Asks /health on a fresh connection every 50 ms until stopped.
class HealthProbe {
 public:
  explicit HealthProbe(int port) : port_(port) {
    thread_ = std::thread([this] { run(); });
  }
  ~HealthProbe() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Waits (at most `timeout`) until `more` probes have been made from now:
  // the attack is held while they run.
  bool wait_probes(std::size_t more, std::chrono::milliseconds timeout) {
    const auto target = probes_.load() + more;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (probes_.load() < target && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);  // a poll interval
    }
    return probes_.load() >= target;
  }
  // Checks every probe made so far: answered 200 within the bound.
  void check(std::size_t min_probes) {
    stop();
    MESSAGE("health probes: ", probes_.load(), ", failed: ", failed_,
            ", slowest: ", slowest_.count(), " ms");
    CHECK(probes_ >= min_probes);
    CHECK_MESSAGE(failed_ == 0, "first failure: ", first_failure_);
    CHECK(slowest_ < kHealthBound);
  }

 private:
  void run() {
    while (!stop_) {
      httplib::Client c("127.0.0.1", port_);
      c.set_connection_timeout(3s);
      c.set_read_timeout(3s);
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.Get("/health");
      const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      ++probes_;
      slowest_ = std::max(slowest_, took);
      if (!r || r->status != 200) {
        if (failed_++ == 0) {
          first_failure_ = r ? "status " + std::to_string(r->status) + ": " + r->body
                             : httplib::to_string(r.error());
        }
      }
      std::this_thread::sleep_for(50ms);  // the probe interval
    }
  }

  int port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::atomic<std::size_t> probes_{0};
  std::size_t failed_ = 0;
  std::string first_failure_;
  std::chrono::milliseconds slowest_{0};
};

// A non-blocking connection to the agent (the connect may still be in progress).
int open_connection(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  REQUIRE_MESSAGE((rc == 0 || errno == EINPROGRESS), "connect: ", std::strerror(errno));
  return fd;
}

// Sends what it can without blocking; false once the peer is gone.
bool send_some(int fd, std::string_view bytes) {
  const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  return n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN;
}

void close_all(std::vector<int>& fds) {
  for (const int fd : fds) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  fds.clear();
}

// Drains whatever the agent sent on each connection; returns the status codes seen.
std::map<int, int> statuses(const std::vector<int>& fds) {
  std::map<int, int> seen;
  char buf[4096];
  for (const int fd : fds) {
    const auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n >= 12 && std::string_view(buf, 9) == "HTTP/1.1 ") {
      ++seen[std::atoi(buf + 9)];
    } else {
      ++seen[0];
    }
  }
  return seen;
}

struct Target {
  World w;
  std::unique_ptr<RunningAgent> a;
  Target() {
    a = std::make_unique<RunningAgent>(w, fast_env());
    REQUIRE(a->wait_cycles(1));
  }
  std::uint64_t metric(const std::string& name) {
    const auto body = a->get("/metrics")->body;
    const auto at = body.find("\n" + name + " ");
    REQUIRE_MESSAGE(at != std::string::npos, name);
    return std::stoull(body.substr(at + name.size() + 2));
  }
  // After the attack: still syncing, and no connection left behind.
  void survives() {
    CHECK(last_status(cycle(*a)) == "ok");
    CHECK(a->wait_status(
        [&](const nlohmann::json&) {
          return metric("proxmox_host_agent_http_connections_open") <= 2;
        },
        15s));
    check_matches_proxmox(w, whitelist_of(w));
    CHECK(a->stop().exit_code == 0);
  }
};

}  // namespace

TEST_CASE("faults traffic: slowloris beyond the connection cap - health still answers") {
  Target t;
  HealthProbe probe(t.a->port());
  // 600 clients (the cap is 512) each send their request a byte at a time.
  const std::string request = "GET /status HTTP/1.1\r\nHost: agent\r\nX-Slow: ";
  std::vector<int> fds;
  for (int i = 0; i < 600; ++i) {
    fds.push_back(open_connection(t.a->port()));
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t sent = 0;
  while (std::chrono::steady_clock::now() - t0 < 4s) {
    const char byte = sent < request.size() ? request[sent] : 'a';
    for (auto& fd : fds) {
      if (fd >= 0 && !send_some(fd, std::string_view(&byte, 1))) {
        ::close(fd);
        fd = -1;
      }
    }
    ++sent;
    std::this_thread::sleep_for(100ms);  // the attacker's pace
  }
  probe.check(30);
  const auto still_open = std::count_if(fds.begin(), fds.end(), [](int fd) { return fd >= 0; });
  MESSAGE("slowloris connections still open after 4 s: ", still_open);
  close_all(fds);
  CHECK(t.metric("proxmox_host_agent_http_connections_rejected_total") > 0);
  t.survives();
}

TEST_CASE("faults traffic: 3000 concurrent connections - health still answers") {
  Target t;
  HealthProbe probe(t.a->port());
  std::vector<int> fds;
  // (/health: the scenario is about connections, not request load; 1500
  // /status renders in a burst hold the loop for 2.8 s under ASan.)
  const std::string keep_alive = "GET /health HTTP/1.1\r\nHost: agent\r\n\r\n";
  for (int i = 0; i < 3000; ++i) {
    fds.push_back(open_connection(t.a->port()));
    if (i % 2 == 0) {
      send_some(fds.back(), keep_alive);  // then stays open, idle
    }
    if (i % 100 == 0) {
      std::this_thread::sleep_for(5ms);  // lets the connects complete
    }
  }
  CHECK(probe.wait_probes(10, 20s));  // the connections are held while the prober asks
  probe.check(10);
  const auto seen = statuses(fds);
  for (const auto& [status, n] : seen) {
    MESSAGE("status ", status, ": ", n, " connections");
    CHECK((status == 0 || status == 200 || status == 503 || status == 408));
  }
  close_all(fds);
  t.survives();
}

TEST_CASE("faults traffic: oversized headers and bodies from many clients - bounded memory") {
  Target t;
  const int pid = t.a->process().pid();
  const auto hwm_before = proc_status_kb(pid, "VmHWM");
  HealthProbe probe(t.a->port());
  std::vector<int> headers;
  std::vector<int> bodies;
  for (int i = 0; i < 64; ++i) {
    headers.push_back(open_connection(t.a->port()));
    bodies.push_back(open_connection(t.a->port()));
  }
  std::this_thread::sleep_for(50ms);  // the connects complete
  const std::string header_chunk = "X-" + std::string(8190, 'h') + ": v\r\n";
  const std::string body_head =
      "POST /sync/trigger HTTP/1.1\r\nHost: agent\r\nContent-Length: 1000000000\r\n\r\n";
  const std::string body_chunk(64 * 1024, 'b');
  for (const int fd : headers) {
    send_some(fd, "GET /status HTTP/1.1\r\nHost: agent\r\n");
  }
  for (const int fd : bodies) {
    send_some(fd, body_head);
  }
  // Each client pushes about 2 MB.
  for (int round = 0; round < 32; ++round) {
    for (const int fd : headers) {
      send_some(fd, header_chunk);
    }
    for (const int fd : bodies) {
      send_some(fd, body_chunk);
    }
    std::this_thread::sleep_for(20ms);
  }
  CHECK(probe.wait_probes(5, 10s));  // the sockets stay open while the prober asks
  probe.check(8);
  const auto h = statuses(headers);
  const auto b = statuses(bodies);
  MESSAGE("oversized headers: ", h.count(431) ? h.at(431) : 0,
          " x 431; bodies: ", b.count(413) ? b.at(413) : 0, " x 413");
  CHECK(h.count(431) == 1);
  CHECK(b.count(413) == 1);
  for (const auto& [status, n] : h) {
    CHECK((status == 431 || status == 0));
  }
  for (const auto& [status, n] : b) {
    CHECK((status == 413 || status == 0));
  }
  close_all(headers);
  close_all(bodies);
  const auto grew_kb = proc_status_kb(pid, "VmHWM") - hwm_before;
  MESSAGE("peak RSS grew by ", grew_kb, " kB for 128 clients x 2 MB");
  CHECK(grew_kb < 32 * 1024);
  t.survives();
}

TEST_CASE("faults traffic: random bytes on hundreds of connections - errors and health answers") {
  Target t;
  const auto bad_before = t.metric("proxmox_host_agent_http_bad_requests_total");
  HealthProbe probe(t.a->port());
  std::mt19937_64 rng(11);  // fixed seed: the same bytes on every run
  std::vector<int> fds;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 50; ++i) {
      fds.push_back(open_connection(t.a->port()));
    }
    std::this_thread::sleep_for(20ms);
    for (const int fd : fds) {
      std::string bytes(1 + rng() % 4096, '\0');
      for (auto& c : bytes) {
        c = static_cast<char>(rng());
      }
      // Half of them look like the start of a request first.
      if (rng() % 2 == 0) {
        bytes = "GET /" + bytes;
      }
      bytes += "\r\n\r\n";
      send_some(fd, bytes);
    }
    std::this_thread::sleep_for(100ms);
    for (const auto& [status, n] : statuses(fds)) {
      CHECK_MESSAGE((status == 0 || (status >= 400 && status < 500)), "status ", status);
    }
    close_all(fds);
  }
  probe.check(8);
  CHECK(t.metric("proxmox_host_agent_http_bad_requests_total") > bad_before + 100);
  t.survives();
}
