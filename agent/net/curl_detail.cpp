// The pure helpers of the libcurl client (curl_client.hpp, curl_detail).
#include <algorithm>
#include <string>

#include <curl/curl.h>

#include "agent/core/text.hpp"
#include "agent/net/curl_client.hpp"

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

}  // namespace pha
