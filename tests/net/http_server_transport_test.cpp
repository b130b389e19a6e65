// The HTTP server's sockets and lifecycle: HTTPS with a test certificate
// (cpp-httplib as the client), bad TLS files and a port in use at start, IPv6,
// the counters, stop with clients connected, many clients at once and random
// bytes.

#include <random>

#include <httplib.h>

#include "agent/platform/logging.hpp"
#include "tests/net/http_server_support.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace pha::test::http_server;

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
  const auto a = ask(server.port(), get("/ok"));
  REQUIRE(a);
  CHECK(a->status == 200);
}
