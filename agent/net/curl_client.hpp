#pragma once
// The HttpClient of the agent, on libcurl. One client per upstream (the
// Proxmox API, AccountDB): a small pool of easy handles, each keeping its own
// kept-alive connection, sharing DNS and TLS sessions through a CURLSH with
// its locks implemented, so several requests may be in flight from different
// threads. (libcurl 7.88 documents a shared connection cache as not safe
// across threads, known bug 11.11, so connections stay with their handle; a
// thread that sends one request after another gets the same handle back.)
//
// What it promises, per docs/failover.md "Failure kinds" and docs/proxmox.md
// "Response facts", "TLS":
// - keep-alive, with connections reused for at most `max_connection_age`
//   (below the servers' 5 s idle timeout), and one quiet retry of an
//   idempotent request whose reused connection turns out to have been closed
//   by the server (reset, empty reply, send error) before a failure counts;
//   a non-idempotent request is never sent twice by this layer (nor by
//   libcurl: its body goes through a read callback that cannot rewind);
// - gzip (and whatever else libcurl decodes) accepted, connect and total
//   timeouts (a request may override the total), a response size limit
//   enforced while receiving, IPv4 and IPv6, TLS 1.2 at least, no signals;
// - TLS verified by default (system store, or `ca_file`), or pinned: the
//   SHA-256 of the leaf certificate's DER checked inside the handshake, so a
//   host with the wrong certificate never receives a request byte;
// - every outcome classified once (see classify_curl_error and
//   classify_status); error messages name the method, the URL without its
//   query, and what went wrong, never a header value or a query parameter.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/net/http.hpp"

namespace pha {

struct TlsOptions {
  bool verify = true;   // false: no verification at all (the caller logs the warning)
  std::string ca_file;  // PEM bundle used instead of the system store
  // SHA-256 fingerprints of accepted leaf certificates, "AB:CD:..." (case and
  // colons do not matter). When set they decide alone: a match is accepted
  // even self-signed and whatever its names, anything else is rejected even
  // with a valid chain; `verify` and `ca_file` are then ignored.
  std::vector<std::string> fingerprints;

  // For the operator, in the message of an untrusted certificate: the
  // settings that fix it. Empty: the upstream has no such setting (then the
  // message suggests the system trust store).
  std::string ca_file_setting;      // e.g. "PROXMOX_CA_FILE"
  std::string ca_file_hint;         // e.g. "the cluster CA (/etc/pve/pve-root-ca.pem)"
  std::string fingerprint_setting;  // e.g. "PROXMOX_FINGERPRINT"
};

struct HttpClientOptions {
  std::string upstream = "upstream";  // "Proxmox", "AccountDB": used in messages and logs
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds total_timeout{5000};       // a request's own timeout overrides it
  std::size_t max_body_bytes = std::size_t{16} << 20;  // Proxmox 16 MiB, AccountDB 32 MiB
  // How long an idle kept-alive connection may be reused: below the servers'
  // 5 s idle timeout, so that it is not one the server is closing.
  std::chrono::seconds max_connection_age{4};
  TlsOptions tls;
  std::string user_agent = "proxmox-host-agent";
};

// Thread-safe; destroy it only when no request is in flight.
std::unique_ptr<HttpClient> make_curl_client(HttpClientOptions options);

// Pieces of the implementation, exposed for the unit tests.
namespace curl_detail {

struct TransportFailure {
  FailureKind kind = FailureKind::network;
  bool maybe_sent = true;
};

// The kind of a transfer that libcurl ended with `curl_code` (a CURLcode,
// not CURLE_OK):
//   DNS failure, connection refused, no route, reset, empty reply, send or
//   receive error, a closed connection after sending           -> network
//   connect or total timeout                                   -> timeout
//   handshake failed, certificate rejected, pin mismatch       -> tls
//   (a handshake cut by a reset or EOF is the peer going away: network)
//   truncated body, body over the size limit, bad encoding,
//   garbage instead of HTTP                                    -> server
//   a malformed or unsupported URL (a bug, not the host's)     -> client
// maybe_sent is false when the request surely did not leave: DNS, connect
// and TLS failures, and a timeout before the request could be sent
// (`reached_send` false).
TransportFailure classify_curl_error(int curl_code, bool reached_send,
                                     std::string_view curl_message);

// Seconds of a Retry-After value; an HTTP-date (or anything else) is unknown.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value);

struct StatusLine {
  int status = 0;
  std::string reason;
};
// "HTTP/1.1 595 Connection refused" -> {595, "Connection refused"}.
std::optional<StatusLine> parse_status_line(std::string_view line);

// scheme://host[:port]/path of a URL: no user info, no query, no fragment.
std::string url_for_messages(std::string_view url);

// "AB:CD:..." (upper case, colons) of a SHA-256 digest.
std::string format_fingerprint(const unsigned char* digest, std::size_t size);
// Upper-case hex digits only: "ab:cd" and "ABCD" compare equal.
std::string normalize_fingerprint(std::string_view fingerprint);

// "16 MiB", "512 KiB", "1000 bytes".
std::string format_size(std::size_t bytes);

}  // namespace curl_detail

}  // namespace pha
