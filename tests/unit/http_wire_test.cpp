// The server's HTTP/1.1 framing without sockets (agent/http/wire.*: Beast's
// parser with the agent's limits and rules): requests framed out of a
// connection's bytes however they arrive, the limits, and the answers as
// they go on the wire.

#include <doctest/doctest.h>

#include "agent/http/wire.hpp"

using namespace pha::http;

namespace {

ServerOptions small_limits() {
  ServerOptions o;
  o.max_header_bytes = 128;
  o.max_headers = 4;
  o.max_body_bytes = 16;
  return o;
}

// Feeds `bytes` in pieces of `chunk` and collects every step but NeedMore.
struct Framed {
  std::vector<RequestReader::Ready> requests;
  std::optional<Refusal> refusal;
  int continues = 0;
  std::string left;  // bytes not taken
};

Framed frame(std::string_view bytes, std::size_t chunk, const ServerOptions& o = ServerOptions{}) {
  Framed f;
  RequestReader reader(o);
  for (std::size_t pos = 0; pos < bytes.size() && !f.refusal; pos += chunk) {
    reader.feed(bytes.substr(pos, chunk));
    for (;;) {
      auto step = reader.next();
      if (auto* r = std::get_if<Refusal>(&step)) {
        f.refusal = *r;
        break;
      }
      if (auto* more = std::get_if<RequestReader::NeedMore>(&step)) {
        f.continues += more->send_continue ? 1 : 0;
        break;
      }
      f.requests.push_back(std::get<RequestReader::Ready>(std::move(step)));
    }
  }
  f.left.assign(static_cast<const char*>(reader.input().data().data()), reader.input().size());
  return f;
}

}  // namespace

TEST_CASE("http wire: pipelined requests are framed the same whatever the split") {
  const std::string bytes =
      "\r\nGET /status?x=1 HTTP/1.1\r\nHost: a\r\nX-Request-ID: abc-1\r\n\r\n"
      "POST /failover/proxmox HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "HEAD /vms/%31%30 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      "GET /he";
  for (const std::size_t chunk : {bytes.size(), std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
    CAPTURE(chunk);
    const auto f = frame(bytes, chunk);
    REQUIRE(!f.refusal);
    REQUIRE(f.requests.size() == 3);
    CHECK(f.requests[0].request.method == "GET");
    CHECK(f.requests[0].request.path == "/status");
    CHECK(f.requests[0].request.query == "x=1");
    CHECK(f.requests[0].request.request_id == "abc-1");
    CHECK(f.requests[0].keep_alive);
    CHECK(f.requests[1].request.body == "hello");
    CHECK(f.requests[2].request.method == "HEAD");
    CHECK(f.requests[2].request.path == "/vms/10");
    CHECK(f.requests[2].keep_alive);  // HTTP/1.0 that asked for it
    CHECK(f.left == "GET /he");       // the start of a fourth request stays
  }
}

TEST_CASE("http wire: the request is handed over as the handler sees it") {
  std::string in =
      "POST /sync/trigger?now HTTP/1.1\r\nAuthorization: Bearer t\r\n"
      "Content-Length: 2\r\nX-Request-ID: bad id\r\n\r\n{}";
  RequestReader reader{ServerOptions{}};
  reader.feed(in);
  auto step = reader.next();
  const auto& request = std::get<RequestReader::Ready>(step).request;
  CHECK(request.method == "POST");
  CHECK(request.target == "/sync/trigger?now");
  CHECK(request.path == "/sync/trigger");
  CHECK(request.query == "now");
  CHECK(request.header("authorization") == "Bearer t");
  CHECK(request.body == "{}");
  CHECK(request.request_id.empty());  // not a sane id: the server makes its own
  CHECK(reader.input().size() == 0);
}

TEST_CASE("http wire: 100 Continue is asked for once and only while the body is missing") {
  const std::string head =
      "POST /failover/reset HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  RequestReader reader{ServerOptions{}};
  reader.feed(head);
  auto first = reader.next();
  REQUIRE(std::holds_alternative<RequestReader::NeedMore>(first));
  CHECK(std::get<RequestReader::NeedMore>(first).send_continue);
  reader.feed("ab");
  auto second = reader.next();
  REQUIRE(std::holds_alternative<RequestReader::NeedMore>(second));
  CHECK_FALSE(std::get<RequestReader::NeedMore>(second).send_continue);
  reader.feed("cd");
  CHECK(std::get<RequestReader::Ready>(reader.next()).request.body == "abcd");
  // A whole request at once needs no 100 Continue.
  CHECK(frame(head + "abcd", head.size() + 4).continues == 0);
}

TEST_CASE("http wire: limits and malformed requests are refused with their status") {
  const auto o = small_limits();
  struct Case {
    std::string bytes;
    int status;
  };
  const Case cases[] = {
      {"GET /" + std::string(200, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"GET /" + std::string(200, 'a'), 414},
      {"GET / HTTP/1.1\r\nA: " + std::string(200, 'b') + "\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431},
      {"POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
      {"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET /%zz HTTP/1.1\r\n\r\n", 400},
      {"GET /%00 HTTP/1.1\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n folded\r\n\r\n", 400},
      {"\x16\x03\x01\x02\x00", 400},  // TLS to a plain port: refused before a line end
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
      {"GET / HTTP/1.1\nHost: a\n\n", 400},                    // bare LF line ends
      {"GET / HTTP/1.1\r\nA: " + std::string(200, 'b'), 431},  // no line end, over the limit
  };
  for (const auto& c : cases) {
    CAPTURE(c.bytes);
    for (const std::size_t chunk : {c.bytes.size(), std::size_t{1}}) {
      const auto f = frame(c.bytes, chunk, o);
      REQUIRE(f.refusal.has_value());
      CHECK(f.refusal->status == c.status);
      CHECK(f.requests.empty());
    }
  }
}

TEST_CASE("http wire: answers are framed by the server whatever the handler adds") {
  Response r;
  r.status = 200;
  r.body = "{}";
  r.headers = {{"X-Split", "a\r\nSet-Cookie: x=1"},
               {"Content-Length", "99"},
               {"Bad Name", "1"},
               {"Allow", "GET, HEAD"}};
  const auto wire = serialize_response(r, false, true, "id-1");
  CHECK(wire.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(wire.find("Content-Length: 2\r\n") != std::string::npos);
  CHECK(wire.find("99") == std::string::npos);
  CHECK(wire.find("Set-Cookie") == std::string::npos);
  CHECK(wire.find("Bad Name") == std::string::npos);
  CHECK(wire.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(wire.find("X-Request-ID: id-1\r\n") != std::string::npos);
  CHECK(wire.ends_with("\r\n\r\n{}"));
  // HEAD: the length of the body that a GET would get, and no body.
  const auto head = serialize_response(r, true, false, "id-2");
  CHECK(head.find("Content-Length: 2\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(head.ends_with("\r\n\r\n"));
  r.status = 204;
  CHECK(serialize_response(r, false, true, "id-3").find("Content-Length") == std::string::npos);
}

// Found by fuzz/http_request: with the request line's end in the same read,
// a method that could not be one was not refused until the whole head (or
// the timeout) came; a byte at a time, it was refused at once.
TEST_CASE("http wire: a bad method is refused at once whether or not its line end came with it") {
  for (const std::string bytes :
       {"\x16\x03\x01\x02\x00\r\n", "GE\x01T / HTTP/1.1\r\nHost: a\r\n"}) {
    CAPTURE(bytes);
    for (const std::size_t chunk : {bytes.size(), std::size_t{1}}) {
      const auto f = frame(bytes, chunk);
      REQUIRE(f.refusal.has_value());
      CHECK(f.refusal->status == 400);
    }
  }
  // A line end right after the method, then a folded line: refused the same way.
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{64}}) {
    const auto f = frame("GET\r\n\tX: 1\r\n", chunk);
    REQUIRE(f.refusal.has_value());
    CHECK(f.refusal->status == 400);
  }
}
