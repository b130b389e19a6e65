// Fuzz target: HTTP request handling of the agent's own server. The input is
// what a client sends on one connection: RequestReader (agent/http/wire.*:
// Beast's parser with the agent's limits and admission rules) frames it into
// requests exactly as the server does, each request goes
// through the real Api (agent/http/api.*) with a fake context, and the answer
// is written as the server writes it. Properties:
// - the framing does not depend on how the bytes arrive (all at once, or a
//   few at a time, give the same requests and the same refusal);
// - every answer is well framed: one status line, header lines without
//   CR/LF, the empty line, then exactly Content-Length bytes.

#include <memory>
#include <string>
#include <vector>

#include "agent/http/api.hpp"
#include "agent/http/wire.hpp"
#include "fuzz/target.hpp"
#include "tests/support/api_world.hpp"

namespace {

using pha::http::RequestReader;

// Small limits so that short inputs reach them.
pha::http::ServerOptions limits() {
  pha::http::ServerOptions o;
  o.max_header_bytes = 512;
  o.max_headers = 8;
  o.max_body_bytes = 256;
  return o;
}

// The fuzzer's scene: a failover host, two AccountDB endpoints, a control
// token and a whitelist, so that every route has something to answer.
pha::Settings fuzz_settings() {
  auto s = pha::test::ApiWorld::defaults();
  s.proxmox_hosts = {*pha::parse_url("https://10.0.0.12:8006", {"https", 8006})};
  s.accountdb_endpoints.push_back({*pha::parse_url("http://127.0.0.2:8080", {"http", 80}), 2, 1});
  s.agent_api_token = "fuzz-token";
  return s;
}

// What the reader made of the bytes, comparable across splits: each request
// (method, target, body) or the refusal's status.
std::vector<std::string> frame(std::string_view bytes, std::size_t chunk,
                               std::vector<RequestReader::Ready>* requests) {
  RequestReader reader(limits());
  std::vector<std::string> steps;
  for (std::size_t pos = 0; pos < bytes.size(); pos += chunk) {
    reader.feed(bytes.substr(pos, chunk));
    for (;;) {
      auto step = reader.next();
      if (auto* refusal = std::get_if<pha::http::Refusal>(&step)) {
        steps.push_back("refused " + std::to_string(refusal->status));
        return steps;  // the server answers and closes
      }
      auto* ready = std::get_if<RequestReader::Ready>(&step);
      if (ready == nullptr) {
        break;
      }
      const auto& r = ready->request;
      steps.push_back(r.method + " " + r.target + " " + r.body + " " + r.path + "?" + r.query +
                      " " + r.request_id + (ready->keep_alive ? " keep-alive" : " close"));
      if (requests != nullptr) {
        requests->push_back(std::move(*ready));
      }
    }
  }
  return steps;
}

void require_well_framed(const std::string& wire, bool head_method) {
  using pha::fuzz::require;
  const auto end = wire.find("\r\n\r\n");
  require(end != std::string::npos, "an answer has an end of head");
  const std::string_view head(wire.data(), end);
  require(head.starts_with("HTTP/1.1 "), "an answer starts with a status line");
  std::size_t pos = 0;
  std::optional<std::size_t> length;
  while (pos <= head.size()) {
    auto eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      eol = head.size();
    }
    const auto line = head.substr(pos, eol - pos);
    require(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos,
            "no bare CR or LF inside a header line");
    if (line.starts_with("Content-Length: ")) {
      require(!length.has_value(), "one Content-Length");
      length = std::stoul(std::string(line.substr(16)));
    }
    pos = eol + 2;
  }
  const auto body = wire.size() - end - 4;
  if (head_method || !length) {
    require(body == 0, "no body after a HEAD answer or a bodiless status");
  } else {
    require(body == *length, "the body is exactly Content-Length bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pha::test::ApiWorld world(fuzz_settings());
  world.whitelist = {101, 102};
  const auto bytes = pha::fuzz::as_text(data, size);
  std::vector<RequestReader::Ready> requests;
  const auto whole = frame(bytes, bytes.size() + 1, &requests);
  pha::fuzz::require(frame(bytes, 1, nullptr) == whole, "the framing depends on the split (1)");
  pha::fuzz::require(frame(bytes, 7, nullptr) == whole, "the framing depends on the split (7)");

  bool loopback = false;
  for (auto& ready : requests) {
    const bool keep_alive = ready.keep_alive;
    auto request = std::move(ready.request);
    request.peer_loopback = loopback = !loopback;
    request.peer = loopback ? "127.0.0.1" : "192.0.2.7";
    if (request.request_id.empty()) {
      request.request_id = "fuzz";
    }
    auto dispatch = world.api->dispatch(request);
    pha::fuzz::require(dispatch.now.has_value() != static_cast<bool>(dispatch.job),
                       "a handler answers now or hands over a job");
    const auto response = dispatch.now ? *dispatch.now : dispatch.job();
    const bool head_method = request.method == "HEAD";
    require_well_framed(
        pha::http::serialize_response(response, head_method, keep_alive, request.request_id),
        head_method);
  }
  return 0;
}
