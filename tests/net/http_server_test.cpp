// The agent's own HTTP server over real loopback sockets (docs/http-api.md
// "Limits", "Errors"): the answer's standard headers and request ids,
// keep-alive and pipelining, HEAD, every limit and protocol error. Clients are
// raw sockets: the bytes are the test.

#include <httplib.h>

#include "agent/platform/logging.hpp"
#include "tests/net/http_server_support.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace pha::test::http_server;

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
