// WireServer: reason phrases, keep-alive rules, gzip, chunked requests, and
// the wire faults (delay, hang, reset, truncate, refused connections).

#include "tests/sim/wire_server.hpp"

#include <atomic>

#include <doctest/doctest.h>

#include "tests/sim/sim_client.hpp"
#include "tests/sim/sim_fixture.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using namespace std::chrono_literals;

namespace {

// A plain-HTTP server whose handler answers what the test asks for.
struct Echo {
  explicit Echo(WireServerOptions o = {})
      : server(std::move(o), [this](const WireRequest& req) {
          ++requests;
          last = req;
          return respond ? respond(req) : WireResponse{.body = "ok"};
        }) {
    server.start();
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + path;
  }
  Request request(const std::string& path = "/") const {
    Request r;
    r.url = url(path);
    return r;
  }

  std::function<WireResponse(const WireRequest&)> respond;
  std::atomic<int> requests{0};
  WireRequest last;
  WireServer server;
};

}  // namespace

TEST_CASE("the reason phrase is free text and the request is parsed") {
  Echo e;
  e.respond = [](const WireRequest&) {
    return WireResponse{.status = 500,
                        .reason =
                            "Configuration file 'nodes/pve1/qemu-server/999.conf' does not "
                            "exist",
                        .body = "{\"data\":null}"};
  };
  auto req = e.request("/api2/json/x?type=vm&full=0");
  req.headers = {"X-Test: yes"};
  const auto r = fetch(req);
  CHECK(r.status == 500);
  CHECK(r.reason == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist");
  CHECK(r.body == "{\"data\":null}");
  CHECK(e.last.method == "GET");
  CHECK(e.last.path == "/api2/json/x");
  CHECK(e.last.query == "type=vm&full=0");
  CHECK(e.last.header("x-test") == "yes");
}

TEST_CASE("a POST body is read by its Content-Length") {
  Echo e;
  auto req = e.request("/post");
  req.method = "POST";
  req.body = std::string(5000, 'x');  // large enough for curl to send Expect: 100-continue
  const auto r = fetch(req);
  CHECK(r.status == 200);
  CHECK(e.last.body == req.body);
}

TEST_CASE("keep-alive reuses a connection up to the request limit") {
  Echo e({.max_requests_per_connection = 3});
  Client c;
  CHECK(c.send(e.request()).new_connections == 1);
  const auto second = c.send(e.request());
  CHECK(second.new_connections == 0);
  CHECK(second.header("connection") == "Keep-Alive");
  const auto third = c.send(e.request());
  CHECK(third.new_connections == 0);
  CHECK(third.header("connection") == "close");
  CHECK(c.send(e.request()).new_connections == 1);
  CHECK(e.server.connections_accepted() == 2);
}

TEST_CASE("an error status closes the connection") {
  Echo e;
  e.respond = [](const WireRequest& req) {
    if (req.path == "/fail") {
      return WireResponse{.status = 401, .reason = "No ticket"};
    }
    return WireResponse{.body = "ok"};
  };
  Client c;
  CHECK(c.send(e.request()).new_connections == 1);
  const auto failed = c.send(e.request("/fail"));
  CHECK(failed.status == 401);
  CHECK(failed.new_connections == 0);
  CHECK(failed.header("connection") == "close");
  CHECK_FALSE(failed.has_header("content-length"));  // Proxmox's empty error body
  CHECK(c.send(e.request()).new_connections == 1);
}

TEST_CASE("an idle connection is closed after the idle timeout") {
  Echo e({.idle_timeout = 100ms});
  Client c;
  CHECK(c.send(e.request()).status == 200);
  CHECK(e.server.open_connections() == 1);
  CHECK(eventually([&] { return e.server.open_connections() == 0; }));
  CHECK(c.send(e.request()).new_connections == 1);
}

TEST_CASE("bodies over 1 KiB are gzip-compressed when the client accepts it") {
  Echo e;
  const std::string big(4000, 'a');
  e.respond = [&](const WireRequest& req) {
    return WireResponse{.body = req.path == "/big" ? big : std::string(1000, 'b')};
  };
  auto req = e.request("/big");
  req.raw_gzip = true;
  auto r = fetch(req);
  CHECK(r.header("content-encoding") == "gzip");
  CHECK(r.body.size() < big.size());
  CHECK(gunzip(r.body) == big);
  req.raw_gzip = false;
  r = fetch(req);
  CHECK_FALSE(r.has_header("content-encoding"));
  CHECK(r.body == big);
  req = e.request("/small");
  req.raw_gzip = true;
  r = fetch(req);
  CHECK_FALSE(r.has_header("content-encoding"));
  CHECK(r.body.size() == 1000);
}

TEST_CASE("chunked request bodies are refused with 501") {
  Echo e;
  auto req = e.request("/post");
  req.method = "POST";
  req.headers = {"Transfer-Encoding: chunked"};
  req.body = "hello";
  const auto r = fetch(req);
  CHECK(r.status == 501);
  CHECK(r.reason == "chunked transfer encoding not supported");
  CHECK(e.requests == 0);
}

TEST_CASE("a delayed answer arrives after the delay and a short client timeout fires first") {
  Echo e;
  e.respond = [](const WireRequest&) { return WireResponse{.body = "late", .delay = 150ms}; };
  auto r = fetch(e.request());
  CHECK(r.body == "late");
  CHECK(r.elapsed >= 150ms);
  auto req = e.request();
  req.timeout = 50ms;
  r = fetch(req);
  CHECK(r.code == CURLE_OPERATION_TIMEDOUT);
}

TEST_CASE("a hanging answer ends when its condition clears and when the server stops") {
  Echo e;
  std::atomic<bool> hang{true};
  e.respond = [&](const WireRequest&) {
    return WireResponse{.fault = WireFault::hang, .hang_while = [&] { return hang.load(); }};
  };
  auto req = e.request();
  req.timeout = 100ms;
  CHECK(fetch(req).code == CURLE_OPERATION_TIMEDOUT);
  // The server notices the client left.
  CHECK(eventually([&] { return e.server.open_connections() == 0; }));

  req.timeout = 10s;
  std::thread clear([&] {
    eventually([&] { return e.server.open_connections() == 1; });
    hang = false;
  });
  const auto r = fetch(req);
  clear.join();
  CHECK(r.code == CURLE_GOT_NOTHING);
  CHECK(r.elapsed < 5s);

  hang = true;
  std::thread stopper([&] {
    eventually([&] { return e.server.open_connections() == 1; });
    e.server.stop();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto stopped = fetch(req);
  stopper.join();
  CHECK_FALSE(stopped.transfer_ok());
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("reset and truncated bodies are transfer errors") {
  Echo e;
  const std::string body(2000, 'x');
  e.respond = [&](const WireRequest& req) {
    WireResponse r{.body = body, .compressible = false};
    r.fault = req.path == "/reset" ? WireFault::reset : WireFault::truncate;
    r.cut_after = 1000;
    return r;
  };
  const auto reset = fetch(e.request("/reset"));
  CHECK(reset.code == CURLE_RECV_ERROR);
  CHECK(reset.body.size() <= 1000);
  const auto truncated = fetch(e.request("/truncate"));
  CHECK(truncated.code == CURLE_PARTIAL_FILE);
  CHECK(truncated.body.size() == 1000);
}

TEST_CASE("a streamed body is sent with its length") {
  Echo e;
  e.respond = [](const WireRequest&) {
    WireResponse r;
    r.stream_length = 300000;
    r.stream = [](const std::function<bool(std::string_view)>& write) {
      const std::string piece(1000, 'z');
      for (int i = 0; i < 300 && write(piece); ++i) {
      }
    };
    return r;
  };
  auto r = fetch(e.request());
  CHECK(r.transfer_ok());
  CHECK(r.header("content-length") == "300000");
  CHECK(r.body.size() == 300000);
  auto limited = e.request();
  limited.max_body = 100000;
  r = fetch(limited);
  CHECK(r.code == CURLE_WRITE_ERROR);
}

TEST_CASE("a server that stops accepting refuses connections and comes back on the same port") {
  Echo e;
  const int port = e.server.port();
  Client kept;
  CHECK(kept.send(e.request()).status == 200);
  e.server.set_accepting(false);
  CHECK_FALSE(e.server.accepting());
  CHECK(fetch(e.request()).code == CURLE_COULDNT_CONNECT);
  // The kept-alive connection was closed too.
  CHECK(eventually([&] { return e.server.open_connections() == 0; }));
  e.server.set_accepting(true);
  CHECK(e.server.port() == port);
  CHECK(fetch(e.request()).status == 200);
}

TEST_CASE("stop closes open connections and returns promptly") {
  Echo e;
  Client c;
  CHECK(c.send(e.request()).status == 200);
  CHECK(e.server.open_connections() == 1);
  const auto start = std::chrono::steady_clock::now();
  e.server.stop();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK_FALSE(e.server.running());
  CHECK(fetch(e.request()).code == CURLE_COULDNT_CONNECT);
}

TEST_CASE("plain HTTP on the HTTPS port is redirected to https") {
  test::TempDir dir;
  test::TestPki pki(dir.path());
  const auto cert = pki.issue("pve1");
  Echo e({.cert_pem_path = cert.cert_pem_path, .key_pem_path = cert.key_pem_path});
  auto r = fetch(e.request("/api2/json/version?x=1"));
  CHECK(r.status == 301);
  CHECK(r.header("location") ==
        "https://127.0.0.1:" + std::to_string(e.server.port()) + "/api2/json/version?x=1");
  CHECK(e.requests == 0);
  Request tls;
  tls.url = "https://127.0.0.1:" + std::to_string(e.server.port()) + "/";
  tls.ca_file = pki.ca_pem_path();
  r = fetch(tls);
  CHECK(r.status == 200);
  CHECK(e.requests == 1);
}
