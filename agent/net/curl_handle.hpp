#pragma once
// One libcurl easy handle of the client's pool and the callbacks that fill
// it (curl_client.cpp): the response's status, headers and capped body, the
// request body, the cancel check, and OpenSSL's verify step with the pins.
// Nothing outside agent/net/ includes it.

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <curl/curl.h>
#include <openssl/x509.h>

#include "agent/net/curl_client.hpp"

namespace pha::curl_handle {

// What the TLS verify callback saw during the handshake of one transfer.
struct TlsCheck {
  const std::vector<std::string>* pins = nullptr;  // normalized; empty: verify the chain
  std::string leaf_fingerprint;                    // "AB:CD:..." of the presented leaf
  bool pin_mismatch = false;
  int verify_error = X509_V_OK;

  void reset() {
    leaf_fingerprint.clear();
    pin_mismatch = false;
    verify_error = X509_V_OK;
  }
};

// The response of one transfer, filled by libcurl's callbacks.
struct Transfer {
  std::string body;
  std::map<std::string, std::string> headers;
  std::optional<curl_detail::StatusLine> status;
  std::size_t max_body = 0;
  bool too_large = false;
  // The body of a non-idempotent request, handed out by the read callback.
  std::string_view upload;
  std::size_t upload_pos = 0;

  void reset(std::size_t limit) {
    body.clear();
    headers.clear();
    status.reset();
    max_body = limit;
    too_large = false;
    upload = {};
    upload_pos = 0;
  }
};

// One easy handle of the pool; the callbacks point into it, so it never moves.
// What ends a transfer early: the client's cancel() and the abandonment of
// the hedged attempt it belongs to (http.hpp AbandonScope), if any.
struct Stops {
  const std::atomic<bool>* client = nullptr;
  const std::atomic<bool>* attempt = nullptr;
};

struct Handle {
  CURL* easy = nullptr;
  Transfer transfer;
  Stops stops;
  TlsCheck tls;
  std::array<char, CURL_ERROR_SIZE> error{};

  Handle() : easy(curl_easy_init()) {}
  ~Handle() {
    if (easy != nullptr) {
      curl_easy_cleanup(easy);
    }
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// Replaces OpenSSL's chain verification for the connections of one handle:
// records the leaf's fingerprint (for the messages), and with pins accepts
// iff the leaf matches one; without pins, verifies the chain as usual. It runs
// inside the handshake, before any request byte is sent.
int verify_certificate(X509_STORE_CTX* ctx, void* arg);

// CURLOPT_SSL_CTX_FUNCTION: installs verify_certificate with the handle's TlsCheck.
CURLcode install_verify_callback(CURL* /*easy*/, void* ssl_ctx, void* arg);

// libcurl's write, header and read callbacks; `user` is the handle's Transfer.
std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user);
std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user);
std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user);
// Ends a transfer when the std::atomic<bool> `user` is set.
int on_progress(void* user, curl_off_t /*dltotal*/, curl_off_t /*dlnow*/, curl_off_t /*ultotal*/,
                curl_off_t /*ulnow*/);

}  // namespace pha::curl_handle
