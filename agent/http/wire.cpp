#include "agent/http/wire.hpp"

#include <algorithm>
#include <limits>

#include "agent/core/text.hpp"

namespace pha::http {

namespace {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      break;
  }
  if (status < 200) {
    return "Informational";
  }
  if (status < 300) {
    return "Success";
  }
  if (status < 400) {
    return "Redirection";
  }
  if (status < 500) {
    return "Client Error";
  }
  return "Server Error";
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 9110 5.6.2.
bool is_tchar(char c) {
  return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool sane_request_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
  });
}

int hex_value(char c) {
  if (is_digit(c)) {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Malformed escapes and %00 give nullopt.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) {
      return std::nullopt;
    }
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
      return std::nullopt;
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

Refusal refuse(int status, std::string_view code, std::string message) {
  return Refusal{status, code, std::move(message), {}, false};
}

Refusal bad_request(std::string message) {
  return refuse(400, "bad_request", std::move(message));
}

}  // namespace

std::variant<RequestHead, Refusal> parse_request_head(std::string_view text,
                                                      const ServerOptions& o) {
  RequestHead h;
  h.head_bytes = text.size();
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < text.size();) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    auto line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    lines.push_back(line);
    pos = nl + 1;
  }
  while (!lines.empty() && lines.back().empty()) {
    lines.pop_back();
  }
  if (lines.empty()) {
    return bad_request("empty request");
  }

  // Request line: method SP target SP version, single spaces.
  const auto line = lines.front();
  const auto sp1 = line.find(' ');
  const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad_request("malformed request line");
  }
  h.method = std::string(line.substr(0, sp1));
  h.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const auto version = line.substr(sp2 + 1);
  if (!is_token(h.method)) {
    return bad_request("malformed request method");
  }
  if (h.target.empty() ||
      !std::all_of(h.target.begin(), h.target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    return bad_request("malformed request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !is_digit(version[5]) ||
      version[6] != '.' || !is_digit(version[7])) {
    return bad_request("malformed HTTP version");
  }
  if (version == "HTTP/1.0") {
    h.http10 = true;
  } else if (version != "HTTP/1.1") {
    return refuse(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
  }

  // Header fields.
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto field = lines[i];
    if (field.empty() || field.front() == ' ' || field.front() == '\t') {
      return bad_request("obsolete line folding in a header");
    }
    const auto colon = field.find(':');
    if (colon == std::string_view::npos || !is_token(field.substr(0, colon))) {
      return bad_request("malformed header line");
    }
    auto value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < 0x20 && c != '\t') || u == 0x7f;
        })) {
      return bad_request("control character in a header value");
    }
    h.headers.emplace_back(to_lower(field.substr(0, colon)), std::string(value));
  }
  if (h.headers.size() > o.max_headers) {
    return refuse(431, "headers_too_large", "too many header fields");
  }

  // From here on the refusals can carry the client's request id.
  bool have_length = false;
  bool chunked = false;
  std::string connection;
  for (const auto& [name, value] : h.headers) {
    if (name == "x-request-id" && h.request_id.empty() && sane_request_id(value)) {
      h.request_id = value;
    } else if (name == "transfer-encoding") {
      chunked = true;
    } else if (name == "connection") {
      connection += value + ",";
    } else if (name == "expect") {
      h.expect_continue = iequals(trim(value), "100-continue");
    }
  }
  auto refusal = [&](int status, std::string_view code, std::string message) {
    Refusal r = refuse(status, code, std::move(message));
    r.request_id = h.request_id;
    r.head_method = h.method == "HEAD";
    return r;
  };
  if (chunked) {
    // No chunked (or any other) transfer coding: every request body this API
    // takes is small and sent with a Content-Length.
    return refusal(411, "length_required",
                   "Transfer-Encoding is not supported; send the body with Content-Length");
  }
  for (const auto& [name, value] : h.headers) {
    if (name != "content-length") {
      continue;
    }
    // A list of equal values ("5, 5") is the same length sent twice.
    const auto items = split_list(value);
    if (items.empty()) {
      return refusal(400, "bad_request", "invalid Content-Length");
    }
    for (const auto& item : items) {
      if (!std::all_of(item.begin(), item.end(), is_digit)) {
        return refusal(400, "bad_request", "invalid Content-Length");
      }
      const auto digits =
          std::string_view(item).substr(std::min(item.find_first_not_of('0'), item.size() - 1));
      std::size_t n = std::numeric_limits<std::size_t>::max();
      if (digits.size() <= 18) {
        n = 0;
        for (char c : digits) {
          n = n * 10 + static_cast<std::size_t>(c - '0');
        }
      }
      if (have_length && n != h.content_length) {
        return refusal(400, "bad_request", "conflicting Content-Length values");
      }
      have_length = true;
      h.content_length = n;
    }
  }
  if (h.content_length > o.max_body_bytes) {
    return refusal(413, "payload_too_large",
                   "the request body is over " + std::to_string(o.max_body_bytes) + " bytes");
  }

  // Target: origin-form, or "*" for OPTIONS.
  if (h.target == "*") {
    if (h.method != "OPTIONS") {
      return refusal(400, "bad_request", "malformed request target");
    }
    h.path = "*";
  } else {
    if (h.target.front() != '/') {
      return refusal(400, "bad_request", "the request target must start with '/'");
    }
    const auto q = h.target.find('?');
    auto path = percent_decode(std::string_view(h.target).substr(0, q));
    if (!path) {
      return refusal(400, "bad_request", "malformed percent-encoding in the path");
    }
    h.path = std::move(*path);
    if (q != std::string::npos) {
      h.query = h.target.substr(q + 1);
    }
  }

  bool close = false;
  bool keep_alive = false;
  for (const auto& token : split_list(connection)) {
    close = close || iequals(token, "close");
    keep_alive = keep_alive || iequals(token, "keep-alive");
  }
  h.keep_alive = !close && (!h.http10 || keep_alive);
  h.expect_continue = h.expect_continue && !h.http10 && h.content_length > 0;
  return h;
}

std::variant<std::monostate, std::size_t, Refusal> RequestReader::scan_head(
    std::string& in, const ServerOptions& options) {
  // Empty lines before a request line are ignored (RFC 9112 2.2).
  if (!request_line_done_) {
    const auto skip = in.find_first_not_of("\r\n");
    in.erase(0, skip == std::string::npos ? in.size() : skip);
    // Bytes that cannot start a request (TLS sent to a plain port, binary
    // noise) are refused at once rather than at the timeout, whether or not
    // the line end has arrived with them: the method ends at the first space
    // or line end.
    const auto method_end = std::min(in.find_first_of(" \r\n"), in.size());
    for (; method_checked_ < method_end; ++method_checked_) {
      if (!is_tchar(in[method_checked_])) {
        return bad_request("malformed request line");
      }
    }
  }
  for (;;) {
    const auto nl = in.find('\n', scan_pos_);
    if (nl == std::string::npos) {
      break;
    }
    const bool empty = nl == scan_pos_ || (nl == scan_pos_ + 1 && in[scan_pos_] == '\r');
    if (!request_line_done_) {
      request_line_done_ = true;
      if (nl > options.max_header_bytes) {
        return refuse(414, "uri_too_long", "the request line is too long");
      }
    } else if (empty) {
      const auto end = nl + 1;
      if (end > options.max_header_bytes) {
        return refuse(431, "headers_too_large", "the request headers are too large");
      }
      return end;
    } else if (++header_lines_ > options.max_headers) {
      return refuse(431, "headers_too_large", "too many header fields");
    }
    scan_pos_ = nl + 1;
  }
  if (!request_line_done_) {
    if (in.size() > options.max_header_bytes) {
      return refuse(414, "uri_too_long", "the request line is too long");
    }
  } else if (in.size() > options.max_header_bytes) {
    return refuse(431, "headers_too_large", "the request headers are too large");
  }
  return std::monostate{};
}

RequestReader::Step RequestReader::next(std::string& in, const ServerOptions& limits) {
  if (!head_) {
    auto scanned = scan_head(in, limits);
    if (std::holds_alternative<std::monostate>(scanned)) {
      return NeedMore{};
    }
    if (auto* r = std::get_if<Refusal>(&scanned)) {
      reset();
      return std::move(*r);
    }
    const auto end = std::get<std::size_t>(scanned);
    auto parsed = parse_request_head(std::string_view(in).substr(0, end), limits);
    if (auto* r = std::get_if<Refusal>(&parsed)) {
      reset();
      return std::move(*r);
    }
    head_ = std::move(std::get<RequestHead>(parsed));
  }
  const auto total = head_->head_bytes + head_->content_length;
  if (in.size() < total) {
    const bool send_continue = head_->expect_continue && !continue_sent_;
    continue_sent_ = continue_sent_ || send_continue;
    return NeedMore{send_continue};
  }
  auto body = in.substr(head_->head_bytes, head_->content_length);
  in.erase(0, total);
  Ready ready{std::move(*head_), std::move(body)};
  reset();
  return ready;
}

void RequestReader::reset() {
  scan_pos_ = 0;
  method_checked_ = 0;
  request_line_done_ = false;
  header_lines_ = 0;
  head_.reset();
  continue_sent_ = false;
}

Request make_request(RequestHead head, std::string body) {
  Request req;
  req.method = std::move(head.method);
  req.target = std::move(head.target);
  req.path = std::move(head.path);
  req.query = std::move(head.query);
  req.headers = std::move(head.headers);
  req.body = std::move(body);
  req.request_id = std::move(head.request_id);
  return req;
}

std::string serialize_response(const Response& r, bool head_method, bool keep_alive,
                               std::string_view request_id) {
  const bool bodiless_status = r.status < 200 || r.status == 204 || r.status == 304;
  auto has_extra = [&r](std::string_view name) {
    return std::any_of(r.headers.begin(), r.headers.end(),
                       [name](const auto& h) { return iequals(h.first, name); });
  };
  std::string s;
  s.reserve(256 + r.body.size());
  s += "HTTP/1.1 ";
  s += std::to_string(r.status);
  s += ' ';
  s += reason_phrase(r.status);
  s += "\r\n";
  if (!r.content_type.empty() && !bodiless_status) {
    s += "Content-Type: " + r.content_type + "\r\n";
  }
  if (!bodiless_status) {
    s += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  }
  s += "X-Request-ID: ";
  s += request_id;
  s += "\r\n";
  s += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  if (!has_extra("cache-control")) {
    s += "Cache-Control: no-store\r\n";
  }
  if (!has_extra("x-content-type-options")) {
    s += "X-Content-Type-Options: nosniff\r\n";
  }
  for (const auto& [name, value] : r.headers) {
    // The framing is the server's; a header that could split the answer is dropped.
    const auto lower = to_lower(name);
    if (!is_token(name) || lower == "content-length" || lower == "transfer-encoding" ||
        lower == "connection" || lower == "x-request-id" || lower == "content-type" ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      continue;
    }
    s += name + ": " + value + "\r\n";
  }
  s += "\r\n";
  if (!head_method && !bodiless_status) {
    s += r.body;
  }
  return s;
}

}  // namespace pha::http
