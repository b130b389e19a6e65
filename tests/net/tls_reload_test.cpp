// Certificate renewal of the agent's own HTTPS listener (Server::reload_tls,
// docs/settings.md "Reload"): a good pair serves every connection opened from
// then on while a keep-alive connection opened before keeps answering over
// its old context; a broken pair is refused and the old certificate stays.

#include <filesystem>
#include <string>

#include <doctest/doctest.h>

#include "agent/http/server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"

using namespace pha;
using namespace pha::http;
using pha::test::TlsConnection;

namespace {

Dispatch hello(const Request& r) {
  return {Response{200, "text/plain", {}, "hello " + r.path}, {}};
}

// The files the server reads: a copy of a pair, overwritten by a renewal the
// way certbot or an operator does it.
struct ServedFiles {
  std::string cert;
  std::string key;
  void take(const test::CertFiles& from) const {
    const auto overwrite = std::filesystem::copy_options::overwrite_existing;
    std::filesystem::copy_file(from.cert_pem_path, cert, overwrite);
    std::filesystem::copy_file(from.key_pem_path, key, overwrite);
  }
};

std::string get_body(TlsConnection& c, const std::string& path) {
  const auto a = c.get(path);
  REQUIRE_MESSAGE(a, "GET ", path, " over the kept connection failed");
  CHECK(a->status == 200);
  return a->body;
}

}  // namespace

TEST_CASE("tls reload: a renewed pair serves new connections - one opened before keeps working") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto first = pki.issue("first");
  const auto second = pki.issue("second");
  const ServedFiles files{dir.path() + "/server.pem", dir.path() + "/server.key"};
  files.take(first);
  ServerOptions opts;
  opts.tls_cert_file = files.cert;
  opts.tls_key_file = files.key;
  Server server(opts, hello);
  REQUIRE(server.start().ok());

  TlsConnection before(server.port(), pki.ca_pem_path());
  REQUIRE_MESSAGE(before.ok(), before.error());
  CHECK(before.peer_fingerprint() == first.sha256_fingerprint);
  CHECK(get_body(before, "/one") == "hello /one");

  files.take(second);
  const auto renewed = server.reload_tls(files.cert, files.key);
  REQUIRE_MESSAGE(renewed.ok(), renewed.error().message);

  TlsConnection after(server.port(), pki.ca_pem_path());
  REQUIRE_MESSAGE(after.ok(), after.error());
  CHECK(after.peer_fingerprint() == second.sha256_fingerprint);
  CHECK(get_body(after, "/new") == "hello /new");
  // The old connection: same socket, its old context, more requests.
  CHECK(get_body(before, "/two") == "hello /two");
  CHECK(get_body(before, "/three") == "hello /three");
  CHECK(server.stats().connections_accepted == 2);
  CHECK(server.stats().tls_reload_failures == 0);
  server.stop();
}

TEST_CASE("tls reload: a broken pair is refused by file name - the certificate in use stays") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto first = pki.issue("first");
  const auto other = pki.issue("other");
  const auto garbage_key = dir.write(
      "garbage.key", "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n");
  const auto garbage_cert = dir.write("garbage.pem", "not a certificate at all\n");
  ServerOptions opts;
  opts.tls_cert_file = first.cert_pem_path;
  opts.tls_key_file = first.key_pem_path;
  Server server(opts, hello);
  REQUIRE(server.start().ok());
  TlsConnection before(server.port(), pki.ca_pem_path());
  REQUIRE_MESSAGE(before.ok(), before.error());

  struct Row {
    std::string cert;
    std::string key;
    std::string expect;
  };
  const Row rows[] = {
      {dir.path() + "/missing.pem", first.key_pem_path,
       "cannot use TLS certificate file " + dir.path() + "/missing.pem: No such file"},
      {first.cert_pem_path, dir.path() + "/missing.key",
       "cannot use TLS key file " + dir.path() + "/missing.key: No such file"},
      {garbage_cert, first.key_pem_path, "cannot use TLS certificate file " + garbage_cert + ": "},
      {first.cert_pem_path, garbage_key, "cannot use TLS key file " + garbage_key + ": "},
      {first.cert_pem_path, other.key_pem_path,
       "TLS key file " + other.key_pem_path + " does not match the certificate in " +
           first.cert_pem_path},
  };
  std::uint64_t refused = 0;
  for (const auto& row : rows) {
    CAPTURE(row.expect);
    const auto r = server.reload_tls(row.cert, row.key);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find(row.expect) == 0);
    CHECK(r.error().message.find("not-a-key") == std::string::npos);
    CHECK(server.stats().tls_reload_failures == ++refused);
    TlsConnection next(server.port(), pki.ca_pem_path());
    REQUIRE_MESSAGE(next.ok(), next.error());
    CHECK(next.peer_fingerprint() == first.sha256_fingerprint);
    CHECK(get_body(next, "/still") == "hello /still");
  }
  CHECK(get_body(before, "/kept") == "hello /kept");
  server.stop();
}

TEST_CASE("tls reload: a server without TLS refuses it - HTTPS is not switched on while running") {
  test::TempDir dir;
  test::TestPki pki(dir.path() + "/pki");
  const auto cert = pki.issue("server");
  Server server(ServerOptions{}, hello);
  REQUIRE(server.start().ok());
  const auto r = server.reload_tls(cert.cert_pem_path, cert.key_pem_path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "the HTTP server was not started with TLS");
  server.stop();
}
