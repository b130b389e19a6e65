#pragma once
// Base URLs of the upstreams (Proxmox hosts, AccountDB endpoints).

#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.hpp"

namespace pha {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // a name, an IPv4 literal, or an IPv6 literal without brackets
  int port = 0;
  std::string path;  // "" or "/prefix", never a trailing slash

  // scheme://host:port[/path], IPv6 hosts in brackets.
  std::string str() const;
  bool operator==(const Url&) const = default;
};

struct UrlDefaults {
  std::string_view scheme;  // used when the text has no "scheme://"; empty = scheme required
  int port = 0;             // used when the text has no port; 0 = the scheme's (80/443)
};

// Parses "scheme://host[:port][/path]" (or "host[:port]" when a default scheme
// is given). Rejects user info, queries, fragments and schemes other than
// http/https.
Result<Url> parse_url(std::string_view text, UrlDefaults defaults);

bool is_ip_literal(std::string_view host);

// scheme://host:port of a full URL (what a target is keyed by); the text
// itself when it has no scheme.
std::string url_origin(std::string_view url);

// The base URL in `bases` that `url` begins with (the longest), or, when none
// does, the origin of `url`.
std::string matching_base(const std::string& url, const std::vector<std::string>& bases);

// How a URL whose path may hold a secret (a webhook receiver's) is shown in
// logs and answers: its origin (never user info), and "/..." when it has more.
std::string url_display(std::string_view url);

// Whether a webhook sent to `url` would reach the agent's own HTTP API, which
// listens on `bind`:`port`: the same port, and the bind address itself or,
// when the agent listens on a wildcard or loopback address, a loopback name
// or address. Always false for port 0 (a port picked at start).
bool webhook_loops_back(std::string_view url, std::string_view bind, int port);

}  // namespace pha
