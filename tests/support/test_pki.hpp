#pragma once
// Certificates for tests, made at run time with OpenSSL: a test CA and leaf
// certificates it signs (for 127.0.0.1, ::1 and localhost, like a Proxmox
// node certificate), and self-signed leaves. Written as PEM files into a
// directory the caller owns.

#include <string>
#include <vector>

#include <openssl/types.h>

namespace pha::test {

struct CertFiles {
  std::string cert_pem_path;       // the leaf certificate (PEM)
  std::string key_pem_path;        // its private key (PEM, unencrypted)
  std::string ca_pem_path;         // the CA that signed it; the leaf itself when self-signed
  std::string sha256_fingerprint;  // of the leaf certificate's DER, "AB:CD:..." upper case
};

// "AB:CD:...": SHA-256 of the certificate's DER, upper case, as CertFiles has it.
std::string sha256_fingerprint(X509* cert);

class TestPki {
 public:
  // Creates a CA ("Proxmox Virtual Environment test CA") in `dir`.
  explicit TestPki(std::string dir);
  // A leaf signed by the CA, valid now for a year, with subjectAltNames
  // (defaults: DNS:localhost, IP:127.0.0.1, IP:::1). `name` picks the file names.
  CertFiles issue(const std::string& name, std::vector<std::string> dns = {"localhost"},
                  std::vector<std::string> ips = {"127.0.0.1", "::1"}) const;
  // A self-signed leaf (no CA), like a node certificate seen without pve-root-ca.pem.
  CertFiles self_signed(const std::string& name) const;
  const std::string& ca_pem_path() const { return ca_pem_path_; }

 private:
  std::string dir_;
  std::string ca_pem_path_;
  std::string ca_key_pem_;
  std::string ca_cert_pem_;
};

}  // namespace pha::test
