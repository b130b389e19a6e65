#include "agent/http/wire.hpp"

#include <algorithm>
#include <boost/beast/http/write.hpp>
#include <limits>
#include <sstream>

#include "agent/core/text.hpp"

namespace pha::http {

namespace {

namespace bhttp = boost::beast::http;

std::string str(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

boost::beast::string_view bsv(std::string_view s) {
  return {s.data(), s.size()};
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// RFC 9110 5.6.2.
bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool sane_request_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == ':' ||
           c == '-';
  });
}

// Malformed escapes and %00 give nullopt.
std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const auto hex = i + 2 < s.size() ? s.substr(i + 1, 2) : std::string_view{};
    if (hex.size() != 2 || !std::all_of(hex.begin(), hex.end(), is_hex) || hex == "00") {
      return std::nullopt;
    }
    out += static_cast<char>(std::stoi(std::string(hex), nullptr, 16));
    i += 2;
  }
  return out;
}

// Beast takes a Content-Length beyond 64 bits for malformed; it is a body too large.
bool huge_length(std::string_view head) {
  const auto lower = to_lower(head);
  for (auto at = lower.find("\r\ncontent-length:"); at != std::string::npos;
       at = lower.find("\r\ncontent-length:", at + 1)) {
    const auto value =
        trim(std::string_view(lower).substr(at + 17, lower.find('\r', at + 2) - at - 17));
    if (value.size() > 19 && std::all_of(value.begin(), value.end(), is_digit)) {
      return true;
    }
  }
  return false;
}

// "HTTP/" digit "." digit at the end of the request line: a version, only not ours.
bool other_version(std::string_view head) {
  const auto line = head.substr(0, head.find('\r'));
  const auto v = line.substr(line.size() >= 8 ? line.size() - 8 : 0);
  return line.size() > 9 && line[line.size() - 9] == ' ' && v.starts_with("HTTP/") &&
         is_digit(v[5]) && v[6] == '.' && is_digit(v[7]);
}

Refusal refuse(int status, std::string_view code, std::string message) {
  return Refusal{status, code, std::move(message), {}, false};
}

std::string request_id_of(const bhttp::request<bhttp::string_body>& m) {
  const auto [first, last] = m.equal_range("X-Request-ID");
  for (auto it = first; it != last; ++it) {
    if (sane_request_id(str(it->value()))) {
      return str(it->value());
    }
  }
  return {};
}

}  // namespace

void RequestReader::feed(std::string_view bytes) {
  input_.commit(boost::asio::buffer_copy(input_.prepare(bytes.size()),
                                         boost::asio::buffer(bytes.data(), bytes.size())));
}

// The end of the head once its empty line is in, or a refusal as soon as the
// bytes break a limit or cannot be a request. Each line is judged when its
// line end arrives, so the split of the bytes does not matter.
std::variant<std::monostate, std::size_t, Refusal> RequestReader::scan_head() {
  if (!request_line_done_) {
    // Empty lines before a request line are ignored (RFC 9112 2.2).
    std::string_view in(static_cast<const char*>(input_.data().data()), input_.size());
    input_.consume(std::min(in.find_first_not_of("\r\n"), in.size()));
  }
  const std::string_view in(static_cast<const char*>(input_.data().data()), input_.size());
  const auto max = limits_.max_header_bytes;
  auto too_large = [this] {
    return request_line_done_
               ? refuse(431, "headers_too_large", "the request headers are too large")
               : refuse(414, "uri_too_long", "the request line is too long");
  };
  if (!request_line_done_) {
    // Bytes that cannot start a request (TLS to a plain port) are refused at once.
    const auto method_end = std::min({in.find_first_of(" \r\n"), in.size(), max});
    for (; method_checked_ < method_end; ++method_checked_) {
      if (!is_tchar(in[method_checked_])) {
        return refuse(400, "bad_request", "malformed request line");
      }
    }
  }
  for (auto nl = in.find('\n', scan_pos_); nl != std::string_view::npos;
       nl = in.find('\n', scan_pos_)) {
    if (nl >= max) {
      return too_large();
    }
    if (nl == 0 || in[nl - 1] != '\r') {
      return refuse(400, "bad_request", "a line ends without CR");
    }
    const auto line = in.substr(scan_pos_, nl - 1 - scan_pos_);
    scan_pos_ = nl + 1;
    if (!request_line_done_) {
      request_line_done_ = true;
    } else if (line.empty()) {
      return scan_pos_;
    } else if (line.front() == ' ' || line.front() == '\t') {
      return refuse(400, "bad_request", "obsolete line folding in a header");
    } else if (++header_lines_ > limits_.max_headers) {
      return refuse(431, "headers_too_large", "too many header fields");
    }
  }
  if (in.size() > max) {
    return too_large();
  }
  return std::monostate{};
}

// Beast parses the whole head; its errors and our rules become refusals.
std::optional<Refusal> RequestReader::parse_head(std::size_t end) {
  parser_.emplace();
  parser_->eager(false);
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(end + 1, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(limits_.max_body_bytes);
  const std::string_view head(static_cast<const char*>(input_.data().data()), end);
  boost::beast::error_code ec;
  parser_->put(boost::asio::buffer(head.data(), head.size()), ec);
  if (!ec) {
    input_.consume(end);
    return admit();
  }
  Refusal r = refuse(400, "bad_request", "malformed request: " + ec.message());
  if (ec == bhttp::error::body_limit ||
      (ec == bhttp::error::bad_content_length && huge_length(head))) {
    r = refuse(413, "payload_too_large",
               "the request body is over " + std::to_string(limits_.max_body_bytes) + " bytes");
  } else if (ec == bhttp::error::bad_transfer_encoding) {
    r = refuse(411, "length_required", "send the body with one Content-Length");
  } else if (ec == bhttp::error::bad_version && other_version(head)) {
    r = refuse(505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
  }
  r.request_id = request_id_of(parser_->get());
  r.head_method = parser_->get().method() == bhttp::verb::head;
  return r;
}

// What Beast accepts and the agent does not, and what the handler sees.
std::optional<Refusal> RequestReader::admit() {
  const auto& m = parser_->get();
  request_ = Request{};
  request_.request_id = request_id_of(m);
  auto refusal = [&](int status, std::string_view code, std::string message) {
    Refusal r = refuse(status, code, std::move(message));
    r.request_id = request_.request_id;
    r.head_method = m.method() == bhttp::verb::head;
    return r;
  };
  if (m.count(bhttp::field::transfer_encoding) > 0) {
    // Every request body this API takes is small and sent with a Content-Length.
    return refusal(411, "length_required",
                   "Transfer-Encoding is not supported; send the body with Content-Length");
  }
  const auto target = str(m.target());
  if (target == "*" && m.method() == bhttp::verb::options) {
    request_.path = "*";
  } else if (!target.starts_with('/')) {
    return refusal(400, "bad_request", "the request target must start with '/'");
  } else {
    const auto q = target.find('?');
    auto path = percent_decode(std::string_view(target).substr(0, q));
    if (!path) {
      return refusal(400, "bad_request", "malformed percent-encoding in the path");
    }
    request_.path = std::move(*path);
    request_.query = q == std::string::npos ? "" : target.substr(q + 1);
  }
  const auto length = parser_->content_length();
  expect_continue_ = m.version() == 11 && length && *length > 0 &&
                     iequals(trim(str(m[bhttp::field::expect])), "100-continue");
  return std::nullopt;
}

RequestReader::Step RequestReader::next() {
  if (!parser_) {
    auto scanned = scan_head();
    if (std::holds_alternative<std::monostate>(scanned)) {
      return NeedMore{};
    }
    auto refusal = std::holds_alternative<Refusal>(scanned)
                       ? std::optional(std::get<Refusal>(std::move(scanned)))
                       : parse_head(std::get<std::size_t>(scanned));
    if (refusal) {
      reset();
      return std::move(*refusal);
    }
  }
  if (!parser_->is_done() && input_.size() > 0) {
    boost::beast::error_code ec;
    input_.consume(parser_->put(input_.data(), ec));
  }
  if (!parser_->is_done()) {
    const bool send_continue = expect_continue_ && !continue_sent_;
    continue_sent_ = continue_sent_ || send_continue;
    return NeedMore{send_continue};
  }
  const bool keep_alive = parser_->keep_alive();
  auto m = parser_->release();
  Ready ready{std::move(request_), keep_alive};
  ready.request.method = str(m.method_string());
  ready.request.target = str(m.target());
  for (const auto& f : m) {
    ready.request.headers.emplace_back(to_lower(str(f.name_string())), str(f.value()));
  }
  ready.request.body = std::move(m.body());
  reset();
  return ready;
}

void RequestReader::reset() {
  scan_pos_ = 0;
  method_checked_ = 0;
  request_line_done_ = false;
  header_lines_ = 0;
  parser_.reset();
  expect_continue_ = false;
  continue_sent_ = false;
}

Answer make_answer(Response r, bool head_method, bool keep_alive, std::string_view request_id) {
  Answer a;
  a.version(11);
  a.result(static_cast<unsigned>(r.status));
  const bool bodiless = r.status < 200 || r.status == 204 || r.status == 304;
  auto has = [&r](std::string_view name) {
    return std::any_of(r.headers.begin(), r.headers.end(),
                       [name](const auto& h) { return iequals(h.first, name); });
  };
  if (!bodiless) {
    if (!r.content_type.empty()) {
      a.set(bhttp::field::content_type, bsv(r.content_type));
    }
    a.content_length(r.body.size());
  }
  a.set("X-Request-ID", bsv(request_id));
  a.set(bhttp::field::connection, keep_alive ? "keep-alive" : "close");
  if (!has("cache-control")) {
    a.set(bhttp::field::cache_control, "no-store");
  }
  if (!has("x-content-type-options")) {
    a.set("X-Content-Type-Options", "nosniff");
  }
  for (const auto& [name, value] : r.headers) {
    // The framing is the server's; a header that could split the answer is dropped.
    const auto lower = to_lower(name);
    if (name.empty() || !std::all_of(name.begin(), name.end(), is_tchar) ||
        lower == "content-length" || lower == "transfer-encoding" || lower == "connection" ||
        lower == "x-request-id" || lower == "content-type" ||
        value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      continue;
    }
    a.insert(bsv(name), bsv(value));
  }
  if (!head_method && !bodiless) {
    a.body() = std::move(r.body);
  }
  return a;
}

std::string serialize_response(const Response& r, bool head_method, bool keep_alive,
                               std::string_view request_id) {
  std::ostringstream out;
  out << make_answer(r, head_method, keep_alive, request_id);
  return out.str();
}

}  // namespace pha::http
