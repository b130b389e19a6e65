#include "tests/support/test_pki.hpp"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace pha::test {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

[[noreturn]] void fail(const std::string& what) {
  std::array<char, 256> buf{};
  ERR_error_string_n(ERR_get_error(), buf.data(), buf.size());
  throw std::runtime_error("test pki: " + what + ": " + buf.data());
}

void check(int rc, const char* what) {
  if (rc != 1) {
    fail(what);
  }
}

PkeyPtr new_key() {
  // EC P-256: fast to generate, accepted by every TLS 1.2+ stack.
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) {
    fail("key generation failed");
  }
  return key;
}

// A random positive 127-bit serial: unique across every certificate of a run.
void set_random_serial(X509* cert) {
  std::array<unsigned char, 16> bytes{};
  check(RAND_bytes(bytes.data(), static_cast<int>(bytes.size())), "RAND_bytes");
  bytes[0] &= 0x7F;
  bytes[0] |= 0x01;
  BnPtr bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    fail("serial number");
  }
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    fail("extension " + value);
  }
  const int rc = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(rc, "X509_add_ext");
}

X509Ptr new_cert(EVP_PKEY* key, const std::string& common_name, long valid_days) {
  X509Ptr cert(X509_new());
  if (!cert) {
    fail("X509_new");
  }
  check(X509_set_version(cert.get(), 2), "X509_set_version");
  set_random_serial(cert.get());
  // Valid from an hour ago, so small clock differences do not matter.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid_days * 24 * 3600) == nullptr) {
    fail("validity");
  }
  check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto add_entry = [name](const char* field, const std::string& value) {
    check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                     0),
          "X509_NAME_add_entry_by_txt");
  };
  add_entry("O", "PVE Cluster Node");
  add_entry("OU", "PVE test");
  add_entry("CN", common_name);
  return cert;
}

std::string cert_to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

X509Ptr cert_from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    fail("PEM_read_bio_X509");
  }
  return cert;
}

PkeyPtr key_from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    fail("PEM_read_bio_PrivateKey");
  }
  return key;
}

void write_file(const std::string& path, const std::string& content, unsigned mode) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << content;
    if (!f) {
      throw std::runtime_error("test pki: cannot write " + path);
    }
  }
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
}

std::string san_value(const std::vector<std::string>& dns, const std::vector<std::string>& ips) {
  std::string san;
  for (const auto& d : dns) {
    san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
  }
  for (const auto& ip : ips) {
    san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
  }
  return san;
}

CertFiles write_leaf(const std::string& dir, const std::string& name, X509* cert, EVP_PKEY* key,
                     const std::string& ca_path) {
  CertFiles files;
  files.cert_pem_path = dir + "/" + name + ".pem";
  files.key_pem_path = dir + "/" + name + ".key";
  files.ca_pem_path = ca_path.empty() ? files.cert_pem_path : ca_path;
  files.sha256_fingerprint = sha256_fingerprint(cert);
  write_file(files.cert_pem_path, cert_to_pem(cert), 0644);
  write_file(files.key_pem_path, key_to_pem(key), 0600);
  return files;
}

}  // namespace

std::string sha256_fingerprint(X509* cert) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  check(X509_digest(cert, EVP_sha256(), md.data(), &len), "X509_digest");
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i > 0) {
      out += ':';
    }
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0x0F];
  }
  return out;
}

TestPki::TestPki(std::string dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
  auto key = new_key();
  auto cert = new_cert(key.get(), "Proxmox Virtual Environment test CA", 3650);
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())),
        "X509_set_issuer_name");
  add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    fail("X509_sign (CA)");
  }
  ca_key_pem_ = key_to_pem(key.get());
  ca_cert_pem_ = cert_to_pem(cert.get());
  ca_pem_path_ = dir_ + "/ca.pem";
  write_file(ca_pem_path_, ca_cert_pem_, 0644);
}

CertFiles TestPki::issue(const std::string& name, std::vector<std::string> dns,
                         std::vector<std::string> ips) const {
  auto ca_key = key_from_pem(ca_key_pem_);
  auto ca_cert = cert_from_pem(ca_cert_pem_);
  auto key = new_key();
  auto cert = new_cert(key.get(), dns.empty() ? name : dns.front(), 365);
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())),
        "X509_set_issuer_name");
  add_ext(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth");
  add_ext(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  const auto san = san_value(dns, ips);
  if (!san.empty()) {
    add_ext(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  }
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) {
    fail("X509_sign (leaf)");
  }
  return write_leaf(dir_, name, cert.get(), key.get(), ca_pem_path_);
}

CertFiles TestPki::self_signed(const std::string& name) const {
  auto key = new_key();
  auto cert = new_cert(key.get(), "localhost", 365);
  check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())),
        "X509_set_issuer_name");
  add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), cert.get(), NID_ext_key_usage, "serverAuth");
  add_ext(cert.get(), cert.get(), NID_subject_alt_name,
          san_value({"localhost"}, {"127.0.0.1", "::1"}));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    fail("X509_sign (self-signed)");
  }
  return write_leaf(dir_, name, cert.get(), key.get(), "");
}

}  // namespace pha::test
