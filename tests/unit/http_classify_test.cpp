// docs/failover.md "Failure kinds": every row of the table, from an HTTP status
// or from the libcurl error a transfer ended with.

#include <curl/curl.h>
#include <doctest/doctest.h>

#include "agent/net/curl_client.hpp"
#include "agent/net/http.hpp"

using namespace pha;
using curl_detail::classify_curl_error;

namespace {

struct KindRow {
  FailureKind kind;
  const char* name;
  bool host_failure;
  bool retryable;
};

struct StatusRow {
  int status;
  FailureKind kind;
};

struct CurlRow {
  CURLcode code;
  bool reached_send;
  const char* message;
  FailureKind kind;
  bool maybe_sent;
};

}  // namespace

TEST_CASE("each failure kind: its name - whether it counts against the host - whether to retry") {
  const KindRow rows[] = {
      {FailureKind::ok, "ok", false, false},
      {FailureKind::network, "network", true, true},
      {FailureKind::timeout, "timeout", true, true},
      {FailureKind::tls, "tls", true, false},
      {FailureKind::server, "server", true, true},
      {FailureKind::rate_limited, "rate_limited", false, true},
      {FailureKind::auth, "auth", false, false},
      {FailureKind::client, "client", false, false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.name);
    CHECK(to_string(r.kind) == r.name);
    CHECK(is_host_failure(r.kind) == r.host_failure);
    CHECK(is_retryable(r.kind) == r.retryable);
  }
}

TEST_CASE(
    "classify_status: 2xx ok - 401 and 403 auth - 429 rate limited - 5xx server - 4xx client") {
  const StatusRow rows[] = {
      {200, FailureKind::ok},
      {201, FailureKind::ok},
      {204, FailureKind::ok},
      {299, FailureKind::ok},
      {401, FailureKind::auth},
      {403, FailureKind::auth},
      {429, FailureKind::rate_limited},
      {500, FailureKind::server},
      {502, FailureKind::server},
      {503, FailureKind::server},
      {504, FailureKind::server},
      {595, FailureKind::server},  // Proxmox: node unreachable
      {596, FailureKind::server},  // Proxmox: no answer in 30 s
      {501, FailureKind::client},  // Proxmox: no such method - an API error
      {400, FailureKind::client},
      {404, FailureKind::client},
      {405, FailureKind::client},
      {409, FailureKind::client},
      {422, FailureKind::client},
      {499, FailureKind::client},
      // Redirects are not followed (Proxmox redirects plain HTTP): a config error.
      {301, FailureKind::client},
      {302, FailureKind::client},
      // No usable final answer.
      {0, FailureKind::server},
      {100, FailureKind::server},
      {600, FailureKind::server},
  };
  for (const auto& r : rows) {
    CAPTURE(r.status);
    CHECK(classify_status(r.status) == r.kind);
  }
}

TEST_CASE(
    "classify_curl_error: network - timeout - tls - server - and whether it may have been sent") {
  const CurlRow rows[] = {
      // network: connection refused, no route, DNS failure - surely not sent
      {CURLE_COULDNT_CONNECT, false, "Failed to connect: Connection refused", FailureKind::network,
       false},
      {CURLE_COULDNT_CONNECT, false, "Failed to connect: No route to host", FailureKind::network,
       false},
      {CURLE_COULDNT_RESOLVE_HOST, false, "Could not resolve host: x", FailureKind::network, false},
      // network: reset, empty reply, send and receive errors - may have been sent
      {CURLE_RECV_ERROR, true, "Recv failure: Connection reset by peer", FailureKind::network,
       true},
      {CURLE_SEND_ERROR, true, "Send failure: Broken pipe", FailureKind::network, true},
      {CURLE_GOT_NOTHING, true, "Empty reply from server", FailureKind::network, true},
      {CURLE_SEND_FAIL_REWIND, true, "necessary data rewind wasn't possible", FailureKind::network,
       true},
      // timeout: connect or total; sent only if the request could leave
      {CURLE_OPERATION_TIMEDOUT, false, "Connection timed out after 2000 milliseconds",
       FailureKind::timeout, false},
      {CURLE_OPERATION_TIMEDOUT, true, "Operation timed out after 5000 milliseconds",
       FailureKind::timeout, true},
      // tls: handshake failed, certificate rejected, pin mismatch - never sent
      {CURLE_SSL_CONNECT_ERROR, false, "error:0A000410:SSL routines::sslv3 alert handshake failure",
       FailureKind::tls, false},
      {CURLE_PEER_FAILED_VERIFICATION, false, "SSL certificate problem: self-signed certificate",
       FailureKind::tls, false},
      {CURLE_PEER_FAILED_VERIFICATION, false, "SSL certificate problem: certificate rejected",
       FailureKind::tls, false},
      {CURLE_SSL_CACERT_BADFILE, false, "error setting certificate file", FailureKind::tls, false},
      // ...but a handshake cut off by the peer is the host going away
      {CURLE_SSL_CONNECT_ERROR, false,
       "OpenSSL SSL_connect: Connection reset by peer in connection to h:8006",
       FailureKind::network, false},
      {CURLE_SSL_CONNECT_ERROR, false, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection",
       FailureKind::network, false},
      // server: truncated body, body over the size limit, undecodable or not HTTP
      {CURLE_PARTIAL_FILE, true, "transfer closed with 50 bytes remaining to read",
       FailureKind::server, true},
      {CURLE_FILESIZE_EXCEEDED, true, "Maximum file size exceeded", FailureKind::server, true},
      {CURLE_WRITE_ERROR, true, "Failure writing output to destination", FailureKind::server, true},
      {CURLE_BAD_CONTENT_ENCODING, true, "Error while processing content unencoding",
       FailureKind::server, true},
      {CURLE_WEIRD_SERVER_REPLY, true, "Unsupported HTTP version in response", FailureKind::server,
       true},
      // client: a URL the agent should never have built
      {CURLE_URL_MALFORMAT, false, "URL rejected: Malformed input", FailureKind::client, false},
      {CURLE_UNSUPPORTED_PROTOCOL, false, "Protocol \"ftp\" not supported", FailureKind::client,
       false},
  };
  for (const auto& r : rows) {
    CAPTURE(r.message);
    const auto f = classify_curl_error(r.code, r.reached_send, r.message);
    CHECK(f.kind == r.kind);
    CHECK(f.maybe_sent == r.maybe_sent);
  }
}

TEST_CASE("HttpOutcome header lookup is by lower-case name") {
  HttpOutcome o;
  o.headers["retry-after"] = "7";
  o.headers["x-request-id"] = "abc";
  CHECK(o.header("retry-after") == "7");
  CHECK(o.header("X-Request-ID") == "abc");
  CHECK(o.header("content-type").empty());
  o.kind = FailureKind::ok;
  CHECK(o.ok());
}

TEST_CASE("parse_retry_after: seconds - an HTTP-date is unknown") {
  using curl_detail::parse_retry_after;
  CHECK(parse_retry_after("7") == std::chrono::seconds(7));
  CHECK(parse_retry_after(" 0 ") == std::chrono::seconds(0));
  CHECK(parse_retry_after("120") == std::chrono::seconds(120));
  CHECK_FALSE(parse_retry_after(""));
  CHECK_FALSE(parse_retry_after("-1"));
  CHECK_FALSE(parse_retry_after("1.5"));
  CHECK_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
  CHECK_FALSE(parse_retry_after("99999999999999999999"));
}

TEST_CASE("parse_status_line keeps the reason phrase - where Proxmox puts its message") {
  using curl_detail::parse_status_line;
  auto s = parse_status_line("HTTP/1.1 595 Connection refused\r\n");
  REQUIRE(s);
  CHECK(s->status == 595);
  CHECK(s->reason == "Connection refused");
  s = parse_status_line(
      "HTTP/1.1 500 hostname lookup 'pve9' failed - failed to get address info\r\n");
  REQUIRE(s);
  CHECK(s->status == 500);
  CHECK(s->reason == "hostname lookup 'pve9' failed - failed to get address info");
  s = parse_status_line("HTTP/2 200\r\n");
  REQUIRE(s);
  CHECK(s->status == 200);
  CHECK(s->reason.empty());
  CHECK_FALSE(parse_status_line("Content-Type: text/plain\r\n"));
  CHECK_FALSE(parse_status_line("HTTP/1.1 2x0 OK\r\n"));
  CHECK_FALSE(parse_status_line("HTTP/1.1 2000 OK\r\n"));
}

TEST_CASE("url_for_messages drops the query - fragments and user info") {
  using curl_detail::url_for_messages;
  CHECK(url_for_messages("https://adb:8080/api/vms?node_id=3&api_key=s3cret") ==
        "https://adb:8080/api/vms");
  CHECK(url_for_messages("https://user:pw@h:8006/api2/json/version#x") ==
        "https://h:8006/api2/json/version");
  CHECK(url_for_messages("http://[::1]:8006") == "http://[::1]:8006");
  CHECK(url_for_messages("http://h/p?a=b@c") == "http://h/p");
}

TEST_CASE("fingerprints: formatted upper case with colons - compared without them") {
  using curl_detail::format_fingerprint;
  using curl_detail::normalize_fingerprint;
  const unsigned char digest[] = {0xab, 0x01, 0xff};
  CHECK(format_fingerprint(digest, sizeof digest) == "AB:01:FF");
  CHECK(normalize_fingerprint("ab:01:Ff") == "AB01FF");
  CHECK(normalize_fingerprint("AB01FF") == "AB01FF");
}

TEST_CASE("format_size names the limit as an operator would") {
  using curl_detail::format_size;
  CHECK(format_size(std::size_t{16} << 20) == "16 MiB");
  CHECK(format_size(std::size_t{32} << 20) == "32 MiB");
  CHECK(format_size(512 * 1024) == "512 KiB");
  CHECK(format_size(1000) == "1000 bytes");
}
