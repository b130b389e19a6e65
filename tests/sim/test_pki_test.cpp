// TestPki: a CA whose leaves verify, self-signed leaves, fingerprints in the
// form PROXMOX_FINGERPRINT takes, and unique serial numbers.

#include "tests/support/test_pki.hpp"

#include <cstdio>
#include <regex>
#include <set>

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/sim/sim_client.hpp"
#include "tests/sim/wire_server.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace pha::test;

namespace {

std::string serial_of(const std::string& pem_path) {
  FILE* f = std::fopen(pem_path.c_str(), "r");
  REQUIRE(f != nullptr);
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(cert != nullptr);
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out = hex;
  OPENSSL_free(hex);
  BN_free(bn);
  X509_free(cert);
  return out;
}

simtest::Reply get_over_tls(const CertFiles& served, const std::string& ca_file,
                            const std::string& host = "127.0.0.1") {
  sim::WireServer server(
      {.cert_pem_path = served.cert_pem_path, .key_pem_path = served.key_pem_path},
      [](const sim::WireRequest&) {
        sim::WireResponse r;
        r.body = "hello";
        return r;
      });
  server.start();
  simtest::Request req;
  req.url = "https://" + host + ":" + std::to_string(server.port()) + "/";
  req.ca_file = ca_file;
  return simtest::fetch(req);
}

}  // namespace

TEST_CASE("a leaf issued by the test CA verifies against the CA file by IP and by name") {
  TempDir dir;
  TestPki pki(dir.path() + "/pki");
  const auto leaf = pki.issue("pve1");
  CHECK(leaf.ca_pem_path == pki.ca_pem_path());
  auto r = get_over_tls(leaf, pki.ca_pem_path());
  CHECK(r.transfer_ok());
  CHECK(r.body == "hello");
  r = get_over_tls(leaf, pki.ca_pem_path(), "localhost");
  CHECK(r.transfer_ok());
}

TEST_CASE("a leaf is rejected against another CA") {
  TempDir dir;
  TestPki pki(dir.path() + "/a");
  TestPki other(dir.path() + "/b");
  const auto r = get_over_tls(pki.issue("pve1"), other.ca_pem_path());
  CHECK(r.code == CURLE_PEER_FAILED_VERIFICATION);
}

TEST_CASE("a self-signed leaf is its own CA file") {
  TempDir dir;
  TestPki pki(dir.path());
  const auto self = pki.self_signed("self");
  CHECK(self.ca_pem_path == self.cert_pem_path);
  CHECK(get_over_tls(self, self.ca_pem_path).transfer_ok());
  CHECK(get_over_tls(self, pki.ca_pem_path()).code == CURLE_PEER_FAILED_VERIFICATION);
}

TEST_CASE("fingerprints are upper-case colon hex of SHA-256 and serials are unique") {
  TempDir dir;
  TestPki pki(dir.path());
  const std::regex fp("([0-9A-F]{2}:){31}[0-9A-F]{2}");
  std::set<std::string> fingerprints;
  std::set<std::string> serials = {serial_of(pki.ca_pem_path())};
  for (int i = 0; i < 5; ++i) {
    const auto c = pki.issue("leaf" + std::to_string(i));
    CHECK(c.sha256_fingerprint.size() == 95);
    CHECK(std::regex_match(c.sha256_fingerprint, fp));
    fingerprints.insert(c.sha256_fingerprint);
    serials.insert(serial_of(c.cert_pem_path));
  }
  serials.insert(serial_of(pki.self_signed("self").cert_pem_path));
  CHECK(fingerprints.size() == 5);
  CHECK(serials.size() == 7);
}
