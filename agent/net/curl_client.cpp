#include "agent/net/curl_client.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "agent/core/text.hpp"
#include "agent/net/curl_handle.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

using namespace curl_detail;
using namespace curl_handle;

// What one curl_easy_perform gave, beyond the outcome.
struct Attempt {
  HttpOutcome outcome;
  CURLcode code = CURLE_OK;
  long new_connections = 0;
};

std::string origin_of(std::string_view url) {
  auto u = url_for_messages(url);
  const auto scheme_end = u.find("://");
  const auto path = u.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  if (path != std::string::npos) {
    u.erase(path);
  }
  return u;
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  });
  return out;
}

long to_long(std::chrono::milliseconds d) {
  return static_cast<long>(std::max<std::chrono::milliseconds::rep>(1, d.count()));
}

std::once_flag g_curl_global;

class CurlClient final : public HttpClient {
 public:
  explicit CurlClient(HttpClientOptions options) : options_(std::move(options)) {
    for (const auto& fp : options_.tls.fingerprints) {
      auto n = normalize_fingerprint(fp);
      if (!n.empty()) {
        pins_.push_back(std::move(n));
      }
    }
    share_ = curl_share_init();
    if (share_ != nullptr) {
      curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, lock_share);
      curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, unlock_share);
      curl_share_setopt(share_, CURLSHOPT_USERDATA, &share_locks_);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
  }

  ~CurlClient() override {
    idle_.clear();  // the handles leave the share before it goes
    if (share_ != nullptr) {
      curl_share_cleanup(share_);
    }
  }

  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  void cancel() override { cancelled_.store(true, std::memory_order_release); }

  HttpOutcome send(const HttpRequest& request) override {
    const auto start = std::chrono::steady_clock::now();
    if (cancelled_.load(std::memory_order_acquire)) {
      HttpOutcome out;
      out.kind = FailureKind::network;
      out.error = describe(request, "not sent: the agent is stopping");
      return out;
    }
    auto handle = acquire();
    HttpOutcome out;
    if (handle->easy == nullptr) {
      out.kind = FailureKind::network;
      out.error = describe(request, "cannot create a libcurl handle");
    } else {
      auto attempt = perform(*handle, request);
      if (request.idempotent && closed_while_idle(attempt)) {
        // The server closed a kept-alive connection just as we reused it:
        // that is not the host failing. Once more, on a new connection.
        log::debug("http_stale_connection", "kept-alive connection was closed; sending again",
                   {{"upstream", to_lower(options_.upstream)},
                    {"method", upper(request.method)},
                    {"url", url_for_messages(request.url)},
                    {"curl_error", curl_easy_strerror(attempt.code)}});
        attempt = perform(*handle, request);
      }
      out = std::move(attempt.outcome);
    }
    release(std::move(handle));
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    return out;
  }

 private:
  static constexpr std::size_t kMaxIdleHandles = 8;

  static void lock_share(CURL* /*easy*/, curl_lock_data data, curl_lock_access /*access*/,
                         void* user) {
    (*static_cast<ShareLocks*>(user))[static_cast<std::size_t>(data)].lock();
  }
  static void unlock_share(CURL* /*easy*/, curl_lock_data data, void* user) {
    (*static_cast<ShareLocks*>(user))[static_cast<std::size_t>(data)].unlock();
  }

  // A reused connection that gave no response at all: reset, empty reply or
  // a failed send. (libcurl retries most of these itself on a new connection;
  // this is the backstop for the rest.)
  static bool closed_while_idle(const Attempt& a) {
    return a.new_connections == 0 && a.outcome.status == 0 &&
           (a.code == CURLE_GOT_NOTHING || a.code == CURLE_SEND_ERROR ||
            a.code == CURLE_RECV_ERROR);
  }

  std::unique_ptr<Handle> acquire() {
    {
      std::lock_guard lock(pool_mutex_);
      if (!idle_.empty()) {
        auto h = std::move(idle_.back());
        idle_.pop_back();
        return h;
      }
    }
    return std::make_unique<Handle>();
  }

  void release(std::unique_ptr<Handle> h) {
    std::lock_guard lock(pool_mutex_);
    if (idle_.size() < kMaxIdleHandles && h->easy != nullptr) {
      idle_.push_back(std::move(h));
    }
  }

  std::string describe(const HttpRequest& request, std::string_view what) const {
    return log::mask_secrets(
        upper(request.method) + " " + url_for_messages(request.url) + ": " + std::string(what), {});
  }

  // Timeouts, limits and callbacks, the same for every request.
  void set_transfer(Handle& h, const HttpRequest& request) {
    CURL* c = h.easy;
    curl_easy_reset(c);
    h.transfer.reset(options_.max_body_bytes);
    h.tls.reset();
    h.tls.pins = &pins_;
    h.error.fill('\0');

    const auto total = request.timeout.count() > 0 ? request.timeout : options_.total_timeout;
    curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(c, CURLOPT_SHARE, share_);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h.error.data());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(c, CURLOPT_IPRESOLVE, static_cast<long>(CURL_IPRESOLVE_WHATEVER));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     to_long(std::min(options_.connect_timeout, total)));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, to_long(total));
    curl_easy_setopt(
        c, CURLOPT_MAXAGE_CONN,
        static_cast<long>(std::max<long long>(1, options_.max_connection_age.count())));
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(options_.max_body_bytes));
    if (!options_.user_agent.empty()) {
      curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
    }
    // libcurl calls this about once a second even while it waits: cancel()
    // and an abandoned hedged attempt end a transfer that way.
    h.stops = {&cancelled_, abandon_flag()};
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, static_cast<void*>(&h.stops));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h.transfer);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h.transfer);
  }

  // Verification or pins; false when pins are set and cannot be enforced.
  bool set_tls(Handle& h) {
    CURL* c = h.easy;
    curl_easy_setopt(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    const bool pinned = !pins_.empty();
    if (pinned || options_.tls.verify) {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
      // A pinned certificate is trusted whatever names it carries.
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, pinned ? 0L : 2L);
      if (!pinned && !options_.tls.ca_file.empty()) {
        curl_easy_setopt(c, CURLOPT_CAINFO, options_.tls.ca_file.c_str());
      }
      const auto rc1 = curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, install_verify_callback);
      const auto rc2 = curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, static_cast<void*>(&h.tls));
      // Never fall back to an unpinned connection.
      return !pinned || (rc1 == CURLE_OK && rc2 == CURLE_OK);
    } else {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return true;
  }

  // The method and its body.
  static void set_method(Handle& h, const HttpRequest& request) {
    CURL* c = h.easy;
    const auto method = upper(request.method);
    const bool has_body =
        !request.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    if (method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (!has_body) {
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
      if (method != "GET") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
    } else {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      if (method != "POST") {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
      }
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      if (request.idempotent) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      } else {
        // libcurl resends a request whose reused connection died before any
        // response byte, rewinding the body. A read callback without a seek
        // callback cannot be rewound, so a request that may have been
        // applied is never sent twice: it fails with CURLE_SEND_FAIL_REWIND.
        h.transfer.upload = request.body;
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &h.transfer);
      }
    }
  }

  Attempt perform(Handle& h, const HttpRequest& request) {
    set_transfer(h, request);
    if (!set_tls(h)) {
      Attempt a;
      a.code = CURLE_NOT_BUILT_IN;
      a.outcome.kind = FailureKind::tls;
      a.outcome.error =
          describe(request, "certificate pinning needs libcurl with OpenSSL, which this is not");
      return a;
    }
    CURL* c = h.easy;
    curl_slist* raw_headers = nullptr;
    for (const auto& [name, value] : request.headers) {
      // "Name;" is libcurl's way to send a header with an empty value.
      auto line = name;
      line.append(value.empty() ? ";" : ": ").append(value);
      raw_headers = curl_slist_append(raw_headers, line.c_str());
    }
    // No "Expect: 100-continue" round trip before larger bodies.
    raw_headers = curl_slist_append(raw_headers, "Expect:");
    const Slist headers(raw_headers);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

    set_method(h, request);

    Attempt a;
    a.code = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);  // `headers` goes away now
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &a.new_connections);
    a.outcome = a.code == CURLE_OK ? response_outcome(h, request)
                                   : failure_outcome(h, request, a.code, a.new_connections);
    return a;
  }

  HttpOutcome response_outcome(Handle& h, const HttpRequest& request) const {
    HttpOutcome out;
    out.maybe_sent = true;
    if (h.transfer.status) {
      out.status = h.transfer.status->status;
      out.reason = h.transfer.status->reason;
    } else {
      long code = 0;
      curl_easy_getinfo(h.easy, CURLINFO_RESPONSE_CODE, &code);
      out.status = static_cast<int>(code);
    }
    out.kind = classify_status(out.status);
    out.headers = std::move(h.transfer.headers);
    out.body = std::move(h.transfer.body);
    out.retry_after = parse_retry_after(out.header("retry-after"));
    if (!out.ok()) {
      auto what = "HTTP " + std::to_string(out.status);
      if (!out.reason.empty()) {
        what += " " + out.reason;
      }
      out.error = describe(request, what);
    }
    return out;
  }

  HttpOutcome failure_outcome(Handle& h, const HttpRequest& request, CURLcode code,
                              long new_connections) const {
    curl_off_t pretransfer_us = 0;
    curl_easy_getinfo(h.easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
    long request_bytes = 0;
    curl_easy_getinfo(h.easy, CURLINFO_REQUEST_SIZE, &request_bytes);
    // The request could have left: on a reused connection, or once libcurl
    // was ready to send on a new one.
    const bool reached_send = new_connections == 0 || pretransfer_us > 0 || request_bytes > 0;
    std::string detail = h.error.data();
    if (detail.empty()) {
      detail = curl_easy_strerror(code);
    }
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) {
      detail.pop_back();
    }

    HttpOutcome out;
    const auto failure = classify_curl_error(code, reached_send, detail);
    out.kind = failure.kind;
    out.maybe_sent = failure.maybe_sent;
    if (h.transfer.status) {
      out.status = h.transfer.status->status;
      out.reason = h.transfer.status->reason;
      out.headers = std::move(h.transfer.headers);
      out.retry_after = parse_retry_after(out.header("retry-after"));
    }

    if (h.transfer.too_large || code == CURLE_FILESIZE_EXCEEDED) {
      out.kind = FailureKind::server;
      out.error =
          describe(request, "response body over the " + format_size(options_.max_body_bytes) +
                                " limit of " + options_.upstream + " responses");
    } else if (out.kind == FailureKind::tls) {
      out.error = log::mask_secrets(tls_message(request, code, detail, h.tls), {});
    } else {
      out.error = describe(request, summary(code) + " (" + detail + ")");
    }
    return out;
  }

  static std::string summary(CURLcode code) {
    switch (code) {
      case CURLE_COULDNT_RESOLVE_HOST:
        return "DNS lookup failed";
      case CURLE_COULDNT_CONNECT:
        return "cannot connect";
      case CURLE_OPERATION_TIMEDOUT:
        return "timed out";
      case CURLE_GOT_NOTHING:
        return "the server closed the connection without answering";
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
        return "connection lost";
      case CURLE_SEND_FAIL_REWIND:
        return "the connection closed after the request was sent; not sent again because it is "
               "not idempotent";
      case CURLE_PARTIAL_FILE:
        return "response body truncated";
      case CURLE_BAD_CONTENT_ENCODING:
        return "response body cannot be decoded";
      case CURLE_WEIRD_SERVER_REPLY:
        return "not an HTTP response";
      case CURLE_SSL_CONNECT_ERROR:
        return "TLS handshake cut off";
      default:
        return "request failed";
    }
  }

  std::string tls_message(const HttpRequest& request, CURLcode code, const std::string& detail,
                          const TlsCheck& tls) const {
    const auto origin = origin_of(request.url);
    const auto& t = options_.tls;
    const auto& fp = tls.leaf_fingerprint;
    if (tls.pin_mismatch) {
      return "TLS certificate of " + origin + " rejected: its SHA-256 fingerprint " +
             (fp.empty() ? std::string("(unknown)") : fp) + " did not match " +
             (t.fingerprint_setting.empty() ? std::string("the pinned fingerprint")
                                            : t.fingerprint_setting);
    }
    if (code == CURLE_SSL_CACERT_BADFILE) {
      return "TLS CA file " +
             (t.ca_file_setting.empty() ? std::string() : t.ca_file_setting + "=") + t.ca_file +
             " cannot be used for " + origin + " (" + detail + ")";
    }
    if (code == CURLE_PEER_FAILED_VERIFICATION || tls.verify_error != X509_V_OK) {
      std::string why = detail;
      if (tls.verify_error != X509_V_OK) {
        why = X509_verify_cert_error_string(tls.verify_error);
      } else if (const auto p = why.find("SSL: "); p == 0) {
        why.erase(0, 5);
      }
      std::string msg = "TLS certificate of " + origin + " not trusted (" + why + "); ";
      const std::string ca_hint = t.ca_file_hint.empty() ? "the CA that signed it" : t.ca_file_hint;
      // Our callback saw the chain verify; libcurl then found the name wrong.
      const bool name_mismatch = tls.verify_error == X509_V_OK && !fp.empty();
      if (name_mismatch) {
        msg += "use a host name or address that the certificate names";
        if (!t.fingerprint_setting.empty()) {
          msg += ", or set " + t.fingerprint_setting + " to its SHA-256 fingerprint " + fp;
        } else {
          msg += " (its SHA-256 fingerprint is " + fp + ")";
        }
      } else if (!t.ca_file_setting.empty() && !t.fingerprint_setting.empty()) {
        msg += "set " + t.ca_file_setting + " to " + ca_hint + ", or " + t.fingerprint_setting +
               " to its SHA-256 fingerprint " + (fp.empty() ? std::string("(unknown)") : fp);
      } else if (!t.ca_file_setting.empty()) {
        msg += "set " + t.ca_file_setting + " to " + ca_hint;
        if (!fp.empty()) {
          msg += " (its SHA-256 fingerprint is " + fp + ")";
        }
      } else if (!t.fingerprint_setting.empty()) {
        msg += "set " + t.fingerprint_setting + " to its SHA-256 fingerprint " +
               (fp.empty() ? std::string("(unknown)") : fp);
      } else {
        msg += "add the CA that signed it to the system trust store";
        if (!fp.empty()) {
          msg += " (its SHA-256 fingerprint is " + fp + ")";
        }
      }
      return msg;
    }
    return "TLS handshake with " + origin + " failed (" + detail + ")";
  }

  using ShareLocks = std::array<std::mutex, CURL_LOCK_DATA_LAST>;

  HttpClientOptions options_;
  std::vector<std::string> pins_;
  ShareLocks share_locks_;
  std::atomic<bool> cancelled_{false};
  CURLSH* share_ = nullptr;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Handle>> idle_;
};

}  // namespace

std::unique_ptr<HttpClient> make_curl_client(HttpClientOptions options) {
  std::call_once(g_curl_global, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  return std::make_unique<CurlClient>(std::move(options));
}

}  // namespace pha
