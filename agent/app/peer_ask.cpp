#include "agent/app/peer_ask.hpp"

#include <algorithm>
#include <chrono>

#include "agent/net/curl_client.hpp"

namespace pha {

PeerAsk make_peer_ask(const LiveSettings& settings) {
  return [&settings](const std::string& url, std::int64_t vmid) -> Result<nlohmann::json> {
    const auto s = settings.get();
    const std::chrono::milliseconds timeout = std::chrono::seconds(s->peer_timeout);
    HttpClientOptions o;
    o.upstream = "peer agent";
    o.total_timeout = timeout;
    o.connect_timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(2));
    o.max_body_bytes = std::size_t{1} << 20;
    const auto client = make_curl_client(o);
    HttpRequest req;
    req.url = url + "/vms/" + std::to_string(vmid);
    req.retry = false;
    if (!s->agent_read_token.empty()) {
      req.headers.emplace_back("Authorization", "Bearer " + s->agent_read_token);
    }
    const auto out = client->send(req);
    if (out.status == 404) {
      return Error{ErrorKind::not_found, url + " knows no guest " + std::to_string(vmid)};
    }
    if (!out.ok()) {
      return Error{
          ErrorKind::unavailable,
          url + ": " + (out.error.empty() ? "HTTP " + std::to_string(out.status) : out.error)};
    }
    auto body = nlohmann::json::parse(out.body, nullptr, false);
    if (body.is_discarded()) {
      return Error{ErrorKind::bad_reply, url + " answered something that is not JSON"};
    }
    return body;
  };
}

}  // namespace pha
