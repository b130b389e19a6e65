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
#include "agent/platform/logging.hpp"

namespace pha {

namespace curl_detail {

TransportFailure classify_curl_error(int curl_code, bool reached_send,
                                     std::string_view curl_message) {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_INTERFACE_FAILED:
      return {FailureKind::network, false};
    case CURLE_OPERATION_TIMEDOUT:
      return {FailureKind::timeout, reached_send};
    case CURLE_SSL_CONNECT_ERROR: {
      // A handshake cut short by the peer (reset, EOF) says nothing about
      // certificates or configuration: the host went away.
      for (std::string_view loss :
           {"SSL_ERROR_SYSCALL", "Connection reset", "unexpected eof", "Broken pipe"}) {
        if (curl_message.find(loss) != std::string_view::npos) {
          return {FailureKind::network, false};
        }
      }
      return {FailureKind::tls, false};
    }
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return {FailureKind::tls, false};
    case CURLE_PARTIAL_FILE:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:  // our write callback stops a body over the limit
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_TOO_MANY_REDIRECTS:
      return {FailureKind::server, true};
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
      return {FailureKind::client, false};
    default:
      // Reset, empty reply, send/receive errors, a connection that died
      // after the request left (CURLE_SEND_FAIL_REWIND), and anything else.
      return {FailureKind::network, true};
  }
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value) {
  const auto v = trim(value);
  if (v.empty() || v.size() > 9 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const auto n = parse_int(v);
  if (!n) {
    return std::nullopt;
  }
  return std::chrono::seconds(*n);
}

std::optional<StatusLine> parse_status_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
    line.remove_suffix(1);
  }
  if (!line.starts_with("HTTP/")) {
    return std::nullopt;
  }
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos) {
    return std::nullopt;
  }
  auto rest = line.substr(sp + 1);
  if (rest.size() < 3 ||
      !std::all_of(rest.begin(), rest.begin() + 3, [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  StatusLine s;
  s.status = (rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0');
  if (rest.size() > 3 && rest[3] != ' ') {
    return std::nullopt;
  }
  s.reason = std::string(trim(rest.substr(3)));
  return s;
}

std::string url_for_messages(std::string_view url) {
  const auto cut = url.find_first_of("?#");
  if (cut != std::string_view::npos) {
    url = url.substr(0, cut);
  }
  std::string out(url);
  const auto scheme_end = out.find("://");
  const auto authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const auto path = out.find('/', authority);
  const auto at = out.rfind('@', path == std::string::npos ? out.size() : path);
  if (at != std::string::npos && at >= authority) {
    out.erase(authority, at + 1 - authority);
  }
  return out;
}

std::string format_fingerprint(const unsigned char* digest, std::size_t size) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    if (i > 0) {
      out += ':';
    }
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0x0f];
  }
  return out;
}

std::string normalize_fingerprint(std::string_view fingerprint) {
  std::string out;
  for (char c : fingerprint) {
    if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) {
      out += c;
    } else if (c >= 'a' && c <= 'f') {
      out += static_cast<char>(c - 'a' + 'A');
    }
  }
  return out;
}

std::string format_size(std::size_t bytes) {
  constexpr std::size_t kKiB = 1024;
  constexpr std::size_t kMiB = kKiB * 1024;
  if (bytes >= kMiB && bytes % kMiB == 0) {
    return std::to_string(bytes / kMiB) + " MiB";
  }
  if (bytes >= kKiB && bytes % kKiB == 0) {
    return std::to_string(bytes / kKiB) + " KiB";
  }
  return std::to_string(bytes) + " bytes";
}

}  // namespace curl_detail

namespace {

using namespace curl_detail;

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

// The response of one transfer, filled by libcurl's callbacks.
struct Transfer {
  std::string body;
  std::map<std::string, std::string> headers;
  std::optional<StatusLine> status;
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
  return static_cast<const std::atomic<bool>*>(user)->load(std::memory_order_acquire) ? 1 : 0;
}

// One easy handle of the pool; the callbacks point into it, so it never moves.
struct Handle {
  CURL* easy = nullptr;
  Transfer transfer;
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
                   {{"upstream", options_.upstream},
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

  Attempt perform(Handle& h, const HttpRequest& request) {
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
    // ends a transfer that way.
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, static_cast<void*>(&cancelled_));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h.transfer);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h.transfer);

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
      if (pinned && (rc1 != CURLE_OK || rc2 != CURLE_OK)) {
        // Never fall back to an unpinned connection.
        Attempt a;
        a.code = CURLE_NOT_BUILT_IN;
        a.outcome.kind = FailureKind::tls;
        a.outcome.error =
            describe(request, "certificate pinning needs libcurl with OpenSSL, which this is not");
        return a;
      }
    } else {
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }

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
