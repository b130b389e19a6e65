// TLS of the libcurl HttpClient over loopback (docs/proxmox.md "TLS"): verified by
// default, a CA file, a pinned leaf fingerprint checked inside the handshake
// (a host with the wrong certificate never sees a request), verify=false, and
// messages that tell the operator which setting to use.

#include <atomic>
#include <memory>

#include <doctest/doctest.h>

#include "agent/net/curl_client.hpp"
#include "tests/net/loopback.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"

using namespace pha;
using namespace std::chrono_literals;
using pha::test::HttplibRunner;

namespace {

constexpr const char* kWrongPin =
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:"
    "FF";

// An HTTPS server with one route that counts every request it receives
// (before routing, so nothing slips past the count).
struct TlsServer {
  httplib::SSLServer server;
  std::atomic<int> requests{0};
  std::unique_ptr<HttplibRunner> run;

  explicit TlsServer(const test::CertFiles& cert)
      : server(cert.cert_pem_path.c_str(), cert.key_pem_path.c_str()) {
    server.set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
      ++requests;
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Get("/api2/json/version", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"data":{"version":"8.2.4"}})", "application/json");
    });
    run = std::make_unique<HttplibRunner>(server);
  }
  bool ok() const { return server.is_valid() && run->ok(); }
  std::string url() const { return run->url("/api2/json/version", "https"); }
};

HttpClientOptions proxmox_options() {
  HttpClientOptions o;
  o.upstream = "Proxmox";
  o.connect_timeout = 5s;
  o.total_timeout = 10s;
  o.tls.ca_file_setting = "PROXMOX_CA_FILE";
  o.tls.ca_file_hint = "the cluster CA (/etc/pve/pve-root-ca.pem)";
  o.tls.fingerprint_setting = "PROXMOX_FINGERPRINT";
  return o;
}

HttpRequest get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  r.headers = {{"Authorization", "PVEAPIToken=root@pam!agent=0b6f2c1e-secret-token"}};
  return r;
}

std::string lower_without_colons(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != ':') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a self-signed certificate is refused by default - and the message says what to set") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.self_signed("node");
  TlsServer s(cert);
  REQUIRE(s.ok());
  auto client = make_curl_client(proxmox_options());
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::tls);
  CHECK_FALSE(o.maybe_sent);
  CHECK(o.status == 0);
  const auto& e = o.error;
  INFO(e);
  CHECK(e.find("TLS certificate of https://127.0.0.1:" + std::to_string(s.run->port()) +
               " not trusted (self") == 0);
  CHECK(e.find("set PROXMOX_CA_FILE to the cluster CA (/etc/pve/pve-root-ca.pem)") !=
        std::string::npos);
  CHECK(e.find("or PROXMOX_FINGERPRINT to its SHA-256 fingerprint " + cert.sha256_fingerprint) !=
        std::string::npos);
  CHECK(e.find("secret-token") == std::string::npos);
  CHECK(s.requests == 0);
}

TEST_CASE("an upstream without TLS settings suggests the system trust store") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("adb");
  TlsServer s(cert);
  REQUIRE(s.ok());
  HttpClientOptions o;
  o.upstream = "AccountDB";
  auto client = make_curl_client(o);
  const auto out = client->send(get(s.url()));
  CHECK(out.kind == FailureKind::tls);
  INFO(out.error);
  CHECK(out.error.find("not trusted") != std::string::npos);
  CHECK(out.error.find("system trust store") != std::string::npos);
  CHECK(out.error.find(cert.sha256_fingerprint) != std::string::npos);
  CHECK(out.error.find("PROXMOX") == std::string::npos);
  CHECK(s.requests == 0);
}

TEST_CASE("a CA file makes the node certificate trusted") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  TlsServer s(pki.issue("node"));
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.ca_file = pki.ca_pem_path();
  auto client = make_curl_client(opts);
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::ok);
  CHECK(o.body == R"({"data":{"version":"8.2.4"}})");
  // Kept alive over TLS as well.
  CHECK(client->send(get(s.url())).ok());
  CHECK(s.requests == 2);
}

TEST_CASE("a CA-signed certificate for other names is not trusted") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("other", {"other.example"}, {});
  TlsServer s(cert);
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.ca_file = pki.ca_pem_path();
  auto client = make_curl_client(opts);
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::tls);
  CHECK_FALSE(o.maybe_sent);
  INFO(o.error);
  CHECK(o.error.find("not trusted (no alternative certificate subject name") != std::string::npos);
  CHECK(o.error.find("use a host name or address that the certificate names") != std::string::npos);
  CHECK(o.error.find("or set PROXMOX_FINGERPRINT to its SHA-256 fingerprint " +
                     cert.sha256_fingerprint) != std::string::npos);
  CHECK(s.requests == 0);
}

TEST_CASE("the right fingerprint is accepted for a self-signed certificate") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.self_signed("node");
  TlsServer s(cert);
  REQUIRE(s.ok());
  SUBCASE("as configured") {
    auto opts = proxmox_options();
    opts.tls.fingerprints = {kWrongPin, cert.sha256_fingerprint};
    auto client = make_curl_client(opts);
    const auto o = client->send(get(s.url()));
    CHECK(o.kind == FailureKind::ok);
    CHECK(s.requests == 1);
  }
  SUBCASE("in lower case without colons") {
    auto opts = proxmox_options();
    opts.tls.fingerprints = {lower_without_colons(cert.sha256_fingerprint)};
    auto client = make_curl_client(opts);
    CHECK(client->send(get(s.url())).ok());
  }
  SUBCASE("the pin wins over verify=false") {
    auto opts = proxmox_options();
    opts.tls.verify = false;
    opts.tls.fingerprints = {cert.sha256_fingerprint};
    auto client = make_curl_client(opts);
    CHECK(client->send(get(s.url())).ok());
  }
}

TEST_CASE("the right fingerprint is accepted whatever names the certificate carries") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("other", {"other.example"}, {});
  TlsServer s(cert);
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.fingerprints = {cert.sha256_fingerprint};
  auto client = make_curl_client(opts);
  CHECK(client->send(get(s.url())).ok());
}

TEST_CASE("a wrong fingerprint is refused before a single request byte is sent") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.self_signed("node");
  TlsServer s(cert);
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.fingerprints = {kWrongPin};
  auto client = make_curl_client(opts);
  for (int i = 0; i < 2; ++i) {
    HttpRequest r = get(s.url() + "?api_key=s3cr3tkey");
    r.method = "POST";
    r.body = "username=root@pam&password=hunter2hunter2";
    const auto o = client->send(r);
    CHECK(o.kind == FailureKind::tls);
    CHECK_FALSE(o.maybe_sent);
    INFO(o.error);
    CHECK(o.error.find("rejected: its SHA-256 fingerprint " + cert.sha256_fingerprint +
                       " did not match PROXMOX_FINGERPRINT") != std::string::npos);
    CHECK(o.error.find("s3cr3tkey") == std::string::npos);
    CHECK(o.error.find("hunter2") == std::string::npos);
  }
  CHECK(s.requests == 0);
}

TEST_CASE("a CA-signed certificate with a wrong pin is refused even though its chain is valid") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("node");
  TlsServer s(cert);
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.ca_file = pki.ca_pem_path();
  opts.tls.fingerprints = {kWrongPin};
  auto client = make_curl_client(opts);
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::tls);
  CHECK_FALSE(o.maybe_sent);
  INFO(o.error);
  CHECK(o.error.find("did not match PROXMOX_FINGERPRINT") != std::string::npos);
  CHECK(o.error.find(cert.sha256_fingerprint) != std::string::npos);
  CHECK(s.requests == 0);
}

TEST_CASE("verify=false accepts any certificate") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  TlsServer s(pki.self_signed("node"));
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.verify = false;
  auto client = make_curl_client(opts);
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::ok);
  CHECK(s.requests == 1);
}

TEST_CASE("a missing CA file is a tls failure that names the setting") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  TlsServer s(pki.issue("node"));
  REQUIRE(s.ok());
  auto opts = proxmox_options();
  opts.tls.ca_file = dir.path() + "/missing.pem";
  auto client = make_curl_client(opts);
  const auto o = client->send(get(s.url()));
  CHECK(o.kind == FailureKind::tls);
  INFO(o.error);
  CHECK(o.error.find("PROXMOX_CA_FILE=" + dir.path() + "/missing.pem") != std::string::npos);
  CHECK(s.requests == 0);
}

TEST_CASE("a TLS handshake cut off by the peer is a network failure") {
  test::RawServer server([](test::RawConnection& c) { c.reset(); });
  REQUIRE(server.ok());
  auto client = make_curl_client(proxmox_options());
  const auto o = client->send(get(server.url("/api2/json/version", "https")));
  INFO(o.error);
  CHECK(o.kind == FailureKind::network);
  CHECK_FALSE(o.maybe_sent);
}

TEST_CASE("plain HTTP on a TLS port is a tls failure") {
  test::RawServer server([](test::RawConnection& c) {
    c.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c.wait_closed(5s);
  });
  REQUIRE(server.ok());
  auto client = make_curl_client(proxmox_options());
  const auto o = client->send(get(server.url("/api2/json/version", "https")));
  INFO(o.error);
  CHECK(o.kind == FailureKind::tls);
  CHECK_FALSE(o.maybe_sent);
  CHECK(o.error.find("TLS handshake with https://127.0.0.1:") == 0);
}
