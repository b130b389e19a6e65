#include "agent/net/curl_handle.hpp"

#include <algorithm>
#include <cstring>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "agent/core/text.hpp"

namespace pha::curl_handle {

using namespace curl_detail;

// Replaces OpenSSL's chain verification for the connections of one handle:
// records the leaf's fingerprint (for the messages), and with pins accepts
// iff the leaf matches one; without pins, verifies the chain as usual. It runs
// inside the handshake, before any request byte is sent.
int verify_certificate(X509_STORE_CTX* ctx, void* arg) {
  auto* check = static_cast<TlsCheck*>(arg);
  if (X509* leaf = X509_STORE_CTX_get0_cert(ctx)) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (X509_digest(leaf, EVP_sha256(), md.data(), &len) == 1) {
      check->leaf_fingerprint = format_fingerprint(md.data(), len);
    }
  }
  if (check->pins != nullptr && !check->pins->empty()) {
    const auto fp = normalize_fingerprint(check->leaf_fingerprint);
    if (!fp.empty() &&
        std::find(check->pins->begin(), check->pins->end(), fp) != check->pins->end()) {
      X509_STORE_CTX_set_error(ctx, X509_V_OK);
      return 1;
    }
    check->pin_mismatch = true;
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REJECTED);
    return 0;
  }
  const int ok = X509_verify_cert(ctx);
  if (ok != 1) {
    check->verify_error = X509_STORE_CTX_get_error(ctx);
    return 0;
  }
  return 1;
}

CURLcode install_verify_callback(CURL* /*easy*/, void* ssl_ctx, void* arg) {
  SSL_CTX_set_cert_verify_callback(static_cast<SSL_CTX*>(ssl_ctx), verify_certificate, arg);
  return CURLE_OK;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * count;
  if (len > t->max_body - std::min(t->max_body, t->body.size())) {
    t->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t len = size * count;
  const std::string_view line(data, len);
  if (auto status = parse_status_line(line)) {
    // A new response (after a 1xx, or libcurl's own retry): start over.
    t->status = std::move(status);
    t->headers.clear();
    return len;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    return len;
  }
  auto name = to_lower(trim(line.substr(0, colon)));
  const auto value = std::string(trim(line.substr(colon + 1)));
  if (name.empty()) {
    return len;
  }
  auto [it, inserted] = t->headers.try_emplace(std::move(name), value);
  if (!inserted) {
    it->second += ", " + value;  // repeated fields combine (RFC 9110, 5.3)
  }
  return len;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = std::min(size * count, t->upload.size() - t->upload_pos);
  std::memcpy(buffer, t->upload.data() + t->upload_pos, n);
  t->upload_pos += n;
  return n;
}

int on_progress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                curl_off_t /*ulnow*/) {
  const auto* stops = static_cast<const Stops*>(user);
  const auto set = [](const std::atomic<bool>* f) {
    return f != nullptr && f->load(std::memory_order_acquire);
  };
  return set(stops->client) || set(stops->attempt) ? 1 : 0;
}

}  // namespace pha::curl_handle
