// The libcurl HttpClient over real loopback HTTP: classification, reason
// phrases, refused / silent / truncating servers, the size limit, gzip,
// keep-alive and the quiet retry on a stale connection, concurrency, IPv6.

#include "agent/net/curl_client.hpp"

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>
#include <zlib.h>

#include <doctest/doctest.h>

#include "tests/net/loopback.hpp"

using namespace pha;
using namespace std::chrono_literals;
using pha::test::HttplibRunner;
using pha::test::RawConnection;
using pha::test::RawServer;

namespace {

HttpClientOptions options(std::chrono::milliseconds total = 10s) {
  HttpClientOptions o;
  o.upstream = "Proxmox";
  o.connect_timeout = 5s;
  o.total_timeout = total;
  o.max_body_bytes = std::size_t{1} << 20;
  return o;
}

HttpRequest get(std::string url) {
  HttpRequest r;
  r.url = std::move(url);
  return r;
}

std::string gzip(const std::string& data) {
  z_stream z{};
  // 15 + 16: a gzip wrapper rather than zlib's.
  REQUIRE(deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string response(const std::string& status_line, const std::string& body,
                     const std::string& extra_headers = "") {
  return "HTTP/1.1 " + status_line + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         extra_headers + "\r\n" + body;
}

}  // namespace

TEST_CASE("statuses are classified over real HTTP with headers in lower case") {
  httplib::Server server;
  server.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Request-ID", "req-1");
    res.set_content(R"({"data":1})", "application/json");
  });
  server.Get("/missing", [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
  server.Get("/login", [](const httplib::Request&, httplib::Response& res) { res.status = 401; });
  server.Get("/denied", [](const httplib::Request&, httplib::Response& res) { res.status = 403; });
  server.Get("/boom", [](const httplib::Request&, httplib::Response& res) { res.status = 500; });
  server.Get("/head", [](const httplib::Request&, httplib::Response& res) { res.status = 501; });
  server.Get("/busy", [](const httplib::Request&, httplib::Response& res) { res.status = 503; });
  server.Get("/limited", [](const httplib::Request&, httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "7");
  });
  server.Get("/limited-date", [](const httplib::Request&, httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
  });
  HttplibRunner run(server);
  REQUIRE(run.ok());
  auto client = make_curl_client(options());

  auto o = client->send(get(run.url("/ok")));
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.status == 200);
  CHECK(o.reason == "OK");
  CHECK(o.body == R"({"data":1})");
  CHECK(o.header("x-request-id") == "req-1");
  CHECK(o.headers.count("x-request-id") == 1);
  CHECK(o.headers.count("X-Request-ID") == 0);
  CHECK(o.header("content-type") == "application/json");
  CHECK(o.maybe_sent);
  CHECK(o.error.empty());

  struct Row {
    const char* path;
    int status;
    FailureKind kind;
  };
  const Row rows[] = {
      {"/missing", 404, FailureKind::client},       {"/login", 401, FailureKind::auth},
      {"/denied", 403, FailureKind::auth},          {"/boom", 500, FailureKind::server},
      {"/head", 501, FailureKind::client},          {"/busy", 503, FailureKind::server},
      {"/limited", 429, FailureKind::rate_limited},
  };
  for (const auto& r : rows) {
    CAPTURE(r.path);
    o = client->send(get(run.url(r.path) + "?api_key=s3cr3tkey"));
    CHECK(o.status == r.status);
    CHECK(o.kind == r.kind);
    CHECK(o.maybe_sent);
    CHECK(o.error.find("HTTP " + std::to_string(r.status)) != std::string::npos);
    CHECK(o.error.find("GET " + run.url(r.path)) == 0);
    CHECK(o.error.find("s3cr3tkey") == std::string::npos);
  }
  o = client->send(get(run.url("/limited")));
  REQUIRE(o.retry_after);
  CHECK(*o.retry_after == 7s);
  o = client->send(get(run.url("/limited-date")));
  CHECK(o.kind == FailureKind::rate_limited);
  CHECK_FALSE(o.retry_after);
}

TEST_CASE("methods - bodies and headers arrive as sent") {
  httplib::Server server;
  const auto echo = [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.method + " " + req.body + " " + req.get_header_value("Content-Type") + " " +
                        req.get_header_value("X-Empty") + "|" + req.get_header_value("User-Agent"),
                    "text/plain");
  };
  server.Post("/echo", echo);
  server.Put("/echo", echo);
  server.Delete("/echo", echo);
  server.Get("/echo", echo);
  HttplibRunner run(server);
  REQUIRE(run.ok());
  auto opts = options();
  opts.user_agent = "pha-test/1";
  auto client = make_curl_client(opts);

  for (const char* method : {"POST", "PUT", "DELETE"}) {
    for (bool idempotent : {true, false}) {
      CAPTURE(method);
      CAPTURE(idempotent);
      HttpRequest r = get(run.url("/echo"));
      r.method = method;
      r.body = R"({"vmid":100})";
      r.idempotent = idempotent;
      r.headers = {{"Content-Type", "application/json"}, {"X-Empty", ""}};
      const auto o = client->send(r);
      CHECK(o.kind == FailureKind::ok);
      CHECK(o.body == std::string(method) + R"( {"vmid":100} application/json |pha-test/1)");
    }
  }
  HttpRequest r = get(run.url("/echo"));
  r.method = "put";  // any case
  r.idempotent = false;
  auto o = client->send(r);
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body.find("PUT  ") == 0);
  CHECK(o.body.find("|pha-test/1") != std::string::npos);
  r.method = "HEAD";
  o = client->send(r);
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body.empty());
}

TEST_CASE("the reason phrase of the status line is captured - Proxmox puts its message there") {
  RawServer server([](RawConnection& c) {
    while (auto req = c.read_request()) {
      if (req->find("GET /unreachable ") == 0) {
        c.write(response("595 Connection refused", "", "Connection: close\r\n"));
        return;
      }
      c.write(response("500 hostname lookup 'pve9' failed - failed to get address info", "",
                       "Connection: close\r\n"));
      return;
    }
  });
  REQUIRE(server.ok());
  auto client = make_curl_client(options());
  auto o = client->send(get(server.url("/unreachable")));
  CHECK(o.kind == FailureKind::server);
  CHECK(o.status == 595);
  CHECK(o.reason == "Connection refused");
  CHECK(o.error.find("HTTP 595 Connection refused") != std::string::npos);
  o = client->send(get(server.url("/nodes/pve9/qemu")));
  CHECK(o.kind == FailureKind::server);
  CHECK(o.status == 500);
  CHECK(o.reason == "hostname lookup 'pve9' failed - failed to get address info");
}

TEST_CASE("connection refused is a network failure that surely was not sent") {
  auto client = make_curl_client(options());
  HttpRequest r = get("http://127.0.0.1:" + std::to_string(test::closed_port()) +
                      "/api2/json/version?api_key=s3cr3tkey");
  r.headers = {{"Authorization", "PVEAPIToken=root@pam!t=0000-1111-secret"}};
  const auto o = client->send(r);
  CHECK(o.kind == FailureKind::network);
  CHECK_FALSE(o.maybe_sent);
  CHECK(o.status == 0);
  CHECK(o.error.find("cannot connect") != std::string::npos);
  CHECK(o.error.find("s3cr3tkey") == std::string::npos);
  CHECK(o.error.find("api_key") == std::string::npos);
  CHECK(o.error.find("0000-1111-secret") == std::string::npos);
  CHECK(o.error.find("/api2/json/version") != std::string::npos);
}

TEST_CASE("a server that never answers times out within the total timeout") {
  RawServer server([](RawConnection& c) {
    if (c.read_request()) {
      c.wait_closed();
    }
  });
  REQUIRE(server.ok());
  SUBCASE("the client's total timeout") {
    auto client = make_curl_client(options(300ms));
    const auto o = client->send(get(server.url("/slow")));
    CHECK(o.kind == FailureKind::timeout);
    CHECK(o.maybe_sent);
    CHECK(o.elapsed >= 250ms);
    CHECK(o.elapsed < 5s);
    CHECK(o.error.find("timed out") != std::string::npos);
  }
  SUBCASE("a request's own timeout overrides it") {
    auto client = make_curl_client(options(60s));
    HttpRequest r = get(server.url("/slow"));
    r.timeout = 300ms;
    const auto o = client->send(r);
    CHECK(o.kind == FailureKind::timeout);
    CHECK(o.elapsed < 5s);
  }
}

TEST_CASE("a body cut off mid-way: a close is a server failure - a reset a network failure") {
  RawServer server([](RawConnection& c) {
    if (auto req = c.read_request()) {
      c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(50, 'x'));
      if (req->find("/reset") != std::string::npos) {
        c.reset();
      } else {
        c.close();
      }
    }
  });
  REQUIRE(server.ok());
  auto client = make_curl_client(options());
  auto o = client->send(get(server.url("/close")));
  CHECK(o.kind == FailureKind::server);  // a truncated body (docs/failover.md "Failure kinds")
  CHECK(o.maybe_sent);
  CHECK(o.status == 200);
  CHECK(o.body.empty());
  CHECK(o.error.find("truncated") != std::string::npos);
  o = client->send(get(server.url("/reset")));
  CHECK((o.kind == FailureKind::network || o.kind == FailureKind::server));
  CHECK(o.maybe_sent);
  CHECK_FALSE(o.ok());
}

TEST_CASE("a body over the size limit is a server failure - with or without Content-Length") {
  httplib::Server server;
  const std::string big((std::size_t{1} << 20) + 1, 'x');
  server.Get("/sized", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(big, "text/plain");
  });
  server.Get("/chunked", [&](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider(
        "application/octet-stream", [&](std::size_t offset, httplib::DataSink& sink) {
          if (offset < big.size()) {
            sink.write(big.data() + offset, std::min<std::size_t>(65536, big.size() - offset));
          } else {
            sink.done();
          }
          return true;
        });
  });
  server.Get("/fits", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(big.substr(1), "application/octet-stream");
  });
  HttplibRunner run(server);
  REQUIRE(run.ok());
  auto client = make_curl_client(options());
  for (const char* path : {"/sized", "/chunked"}) {
    CAPTURE(path);
    const auto o = client->send(get(run.url(path)));
    CHECK(o.kind == FailureKind::server);
    CHECK(o.maybe_sent);
    CHECK(o.body.empty());
    CHECK(o.error.find("over the 1 MiB limit") != std::string::npos);
  }
  const auto o = client->send(get(run.url("/fits")));
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body.size() == std::size_t{1} << 20);
}

TEST_CASE("a gzip-compressed body is decoded - and the limit applies to the decoded size") {
  const std::string json = R"({"data":[)" + std::string(50'000, ' ') + "]}";
  const std::string bomb(std::size_t{4} << 20, '0');
  std::atomic<bool> asked_for_gzip{false};
  RawServer server([&](RawConnection& c) {
    while (auto req = c.read_request()) {
      if (req->find("gzip") != std::string::npos) {
        asked_for_gzip = true;
      }
      const auto& body = req->find("/bomb") != std::string::npos ? bomb : json;
      c.write(response("200 OK", gzip(body), "Content-Encoding: gzip\r\n"));
    }
  });
  REQUIRE(server.ok());
  auto client = make_curl_client(options());
  auto o = client->send(get(server.url("/json")));
  CHECK(asked_for_gzip);
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body == json);
  o = client->send(get(server.url("/bomb")));
  CHECK(o.kind == FailureKind::server);
  CHECK(o.error.find("1 MiB") != std::string::npos);
}

TEST_CASE("keep-alive: sequential requests reuse one connection") {
  httplib::Server server;
  std::mutex mutex;
  std::set<int> client_ports;
  server.Get("/version", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex);
    client_ports.insert(req.remote_port);
    res.set_content(R"({"data":{"version":"8.2"}})", "application/json");
  });
  HttplibRunner run(server);
  REQUIRE(run.ok());
  auto client = make_curl_client(options());
  for (int i = 0; i < 5; ++i) {
    CHECK(client->send(get(run.url("/version"))).ok());
  }
  std::lock_guard lock(mutex);
  CHECK(client_ports.size() == 1);
}

TEST_CASE("a kept-alive connection the server closed is retried quietly once for a GET") {
  // Connection 0 answers one request with keep-alive, then reads the next
  // request and drops the connection without an answer (the server's idle
  // timer fired just as the request arrived). Later connections answer.
  for (bool reset : {false, true}) {
    CAPTURE(reset);
    RawServer server([reset](RawConnection& c) {
      int n = 0;
      while (auto req = c.read_request()) {
        if (c.index() == 0 && n++ == 1) {
          if (reset) {
            c.reset();
          } else {
            c.close();
          }
          return;
        }
        c.write(response("200 OK", "answer " + std::to_string(c.index())));
      }
    });
    REQUIRE(server.ok());
    auto client = make_curl_client(options());
    auto o = client->send(get(server.url("/first")));
    CHECK(o.body == "answer 0");
    o = client->send(get(server.url("/second")));
    CHECK(o.kind == FailureKind::ok);
    CHECK(o.body == "answer 1");
    CHECK(server.connections() == 2);
    CHECK(server.requests() == 3);
  }
}

TEST_CASE("a non-idempotent request on a stale connection is not sent twice") {
  RawServer server([](RawConnection& c) {
    int n = 0;
    while (auto req = c.read_request()) {
      if (c.index() == 0 && n++ == 1) {
        c.close();  // the create may have been applied before this
        return;
      }
      c.write(response("200 OK", "answer"));
    }
  });
  REQUIRE(server.ok());
  auto client = make_curl_client(options());
  CHECK(client->send(get(server.url("/first"))).ok());
  HttpRequest create = get(server.url("/api/vms"));
  create.method = "PUT";
  create.body = R"({"vmid":100})";
  create.idempotent = false;
  const auto o = client->send(create);
  CHECK(o.kind == FailureKind::network);
  CHECK(o.maybe_sent);
  CHECK(o.error.find("not idempotent") != std::string::npos);
  // libcurl may open a new connection before it finds that it cannot
  // rewind the body; what matters is that the request was not sent again.
  CHECK(server.requests() == 2);
}

TEST_CASE("several threads send at once through one client") {
  httplib::Server server;
  std::mutex mutex;
  std::condition_variable cv;
  int in_flight = 0;
  int max_in_flight = 0;
  server.Get("/together", [&](const httplib::Request& req, httplib::Response& res) {
    std::unique_lock lock(mutex);
    ++in_flight;
    max_in_flight = std::max(max_in_flight, in_flight);
    cv.notify_all();
    cv.wait_for(lock, 10s, [&] { return max_in_flight >= 4; });
    --in_flight;
    res.set_content(req.get_param_value("id"), "text/plain");
  });
  server.Get("/echo", [&](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.get_param_value("id"), "text/plain");
  });
  HttplibRunner run(server);
  REQUIRE(run.ok());
  auto client = make_curl_client(options());
  std::vector<std::future<int>> workers;
  for (int t = 0; t < 4; ++t) {
    workers.push_back(std::async(std::launch::async, [&, t] {
      int good = 0;
      auto o = client->send(get(run.url("/together?id=t" + std::to_string(t))));
      good += o.ok() && o.body == "t" + std::to_string(t) ? 1 : 0;
      for (int i = 0; i < 25; ++i) {
        const auto id = std::to_string(t) + "-" + std::to_string(i);
        o = client->send(get(run.url("/echo?id=" + id)));
        good += o.ok() && o.body == id ? 1 : 0;
      }
      return good;
    }));
  }
  for (auto& w : workers) {
    REQUIRE(w.wait_for(60s) == std::future_status::ready);
    CHECK(w.get() == 26);
  }
  std::lock_guard lock(mutex);
  CHECK(max_in_flight == 4);
}

TEST_CASE("IPv6 loopback works") {
  httplib::Server server;
  server.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("v6", "text/plain");
  });
  HttplibRunner run(server, "::1");
  if (!run.ok()) {
    MESSAGE("skipped: cannot listen on ::1 here");
    return;
  }
  auto client = make_curl_client(options());
  const auto o = client->send(get(run.url("/version")));
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body == "v6");
}

TEST_CASE("an unusable URL is a client error that was not sent") {
  auto client = make_curl_client(options());
  auto o = client->send(get("ftp://127.0.0.1/x"));
  CHECK(o.kind == FailureKind::client);
  CHECK_FALSE(o.maybe_sent);
  o = client->send(get("http://[::1/x"));
  CHECK(o.kind == FailureKind::client);
}
