#include "agent/core/url.hpp"

#include <algorithm>
#include <arpa/inet.h>

#include "agent/core/text.hpp"

namespace pha {

namespace {

bool is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool is_ipv6(std::string_view host) {
  in6_addr addr{};
  return inet_pton(AF_INET6, std::string(host).c_str(), &addr) == 1;
}

}  // namespace

bool is_ip_literal(std::string_view host) {
  in_addr v4{};
  return inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1 || is_ipv6(host);
}

std::string Url::str() const {
  std::string out = scheme + "://";
  if (host.find(':') != std::string::npos) {
    out += "[" + host + "]";
  } else {
    out += host;
  }
  out += ":" + std::to_string(port) + path;
  return out;
}

namespace {

// The host of an authority ("host", "host:port", "[v6]", "[v6]:port") into
// url.host; returns the port's text ("" when there is none).
Result<std::string_view> parse_host(std::string_view authority, Url& url) {
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return Error{ErrorKind::invalid, "has an unterminated IPv6 literal"};
    }
    url.host = std::string(authority.substr(1, close - 1));
    if (!is_ipv6(url.host)) {
      return Error{ErrorKind::invalid, "has an invalid IPv6 literal '" + url.host + "'"};
    }
    const auto rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return Error{ErrorKind::invalid, "has junk after the IPv6 literal"};
      }
      port_text = rest.substr(1);
      if (port_text.empty()) {
        return Error{ErrorKind::invalid, "has an empty port"};
      }
    }
  } else {
    const auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':') != colon) {
        return Error{ErrorKind::invalid,
                     "has an IPv6 address without brackets (write [addr]:port)"};
      }
      port_text = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port_text.empty()) {
        return Error{ErrorKind::invalid, "has an empty port"};
      }
    }
    url.host = std::string(authority);
    if (url.host.empty()) {
      return Error{ErrorKind::invalid, "has no host"};
    }
    if (!std::all_of(url.host.begin(), url.host.end(), is_host_char)) {
      return Error{ErrorKind::invalid, "has an invalid host name '" + url.host + "'"};
    }
  }
  return port_text;
}

}  // namespace

Result<Url> parse_url(std::string_view text, UrlDefaults defaults) {
  text = trim(text);
  if (text.empty()) {
    return Error{ErrorKind::invalid, "is empty"};
  }
  Url url;
  const auto scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    url.scheme = to_lower(text.substr(0, scheme_end));
    text.remove_prefix(scheme_end + 3);
  } else if (!defaults.scheme.empty()) {
    url.scheme = std::string(defaults.scheme);
  } else {
    return Error{ErrorKind::invalid, "needs a scheme (http:// or https://)"};
  }
  if (url.scheme != "http" && url.scheme != "https") {
    return Error{ErrorKind::invalid,
                 "has scheme '" + url.scheme + "'; only http and https are allowed"};
  }
  if (text.find_first_of("?#") != std::string_view::npos) {
    return Error{ErrorKind::invalid, "must not have a query or fragment"};
  }
  const auto path_start = text.find('/');
  std::string_view authority = text.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : text.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    return Error{ErrorKind::invalid, "must not contain user info (user@host)"};
  }
  auto host = parse_host(authority, url);
  if (!host) {
    return host.error();
  }
  const std::string_view port_text = *host;
  if (!port_text.empty()) {
    const auto port = parse_int(port_text);
    if (!port || *port < 1 || *port > 65535) {
      return Error{ErrorKind::invalid,
                   "has an invalid port '" + std::string(port_text) + "' (1-65535)"};
    }
    url.port = static_cast<int>(*port);
  } else if (defaults.port != 0) {
    url.port = defaults.port;
  } else {
    url.port = url.scheme == "https" ? 443 : 80;
  }
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  url.path = std::string(path);
  return url;
}

std::string url_origin(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return std::string(url);
  }
  return std::string(url.substr(0, url.find_first_of("/?", scheme_end + 3)));
}

std::string matching_base(const std::string& url, const std::vector<std::string>& bases) {
  std::string best;
  for (const auto& b : bases) {
    if (url.starts_with(b) && b.size() > best.size()) {
      best = b;
    }
  }
  return best.empty() ? url_origin(url) : best;
}

std::string url_display(std::string_view url) {
  const auto scheme_end = url.find("://");
  const auto host_from = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  auto cut = url.find_first_of("/?#", host_from);
  if (cut == std::string_view::npos) {
    cut = url.size();
  }
  auto authority = url.substr(host_from, cut - host_from);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);  // user info is never shown
  }
  const bool more = cut < url.size() && !(cut + 1 == url.size() && url[cut] == '/');
  return std::string(url.substr(0, host_from)) + std::string(authority) + (more ? "/..." : "");
}

bool webhook_loops_back(std::string_view url, std::string_view bind, int port) {
  const auto u = parse_url(url.substr(0, url.find('?')), {});
  if (port == 0 || !u || u->port != port) {
    return false;
  }
  std::string host = u->host;
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (host == bind) {
    return true;
  }
  const auto loopback = [](std::string_view h) {
    return h == "localhost" || h.ends_with(".localhost") || h.starts_with("127.") || h == "::1";
  };
  const bool wildcard = bind == "0.0.0.0" || bind == "::";
  return (wildcard || loopback(bind)) && (loopback(host) || host == "0.0.0.0" || host == "::");
}

}  // namespace pha
