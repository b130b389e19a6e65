#include "agent/accountdb/client.hpp"

#include <mutex>

#include "agent/core/backoff.hpp"
#include "agent/core/text.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

constexpr std::size_t kMaxBodyShown = 300;

std::string body_excerpt(const std::string& body) {
  auto s = log::mask_secrets(body, {});
  if (s.size() > kMaxBodyShown) {
    s = s.substr(0, kMaxBodyShown) + "...";
  }
  return s;
}

template <class T, class Parse>
Result<T> parsed(const Result<std::string>& body, Parse parse, const std::string& what) {
  if (!body) {
    return body.error();
  }
  auto v = parse(*body);
  if (!v) {
    return Error{ErrorKind::bad_reply,
                 what + ": the answer is not understood: " + v.error().message};
  }
  return std::move(v.value());
}

Status status_of(const Result<std::string>& body) {
  if (!body) {
    return body.error();
  }
  return {};
}

}  // namespace

std::string random_request_id() {
  static RandomSource source;
  return source.hex_id();
}

AccountDbClient::AccountDbClient(Live<AccountDbClientOptions> options, Transport transport,
                                 std::function<std::string()> request_id)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      request_id_(request_id ? std::move(request_id) : random_request_id) {}

AccountDbClientOptions AccountDbClient::options() const {
  return options_();
}

std::string AccountDbClient::describe_failure(const AccountDbClientOptions& opts,
                                              const std::string& call_id, const std::string& method,
                                              const std::string& path, const HttpOutcome& o) const {
  const std::string what = method + " " + path + " (" + call_id + ")";
  const std::string node = std::to_string(opts.node_id);
  if (o.status == 401) {
    return "AccountDB refused the API key for node " + node + " (401 " + body_excerpt(o.body) +
           "): check ACCOUNTDB_API_KEY and ACCOUNTDB_NODE_ID";
  }
  if (o.status == 404 && call_id == "node_info") {
    return "AccountDB does not know node " + node + " (404 on " + what +
           "): check ACCOUNTDB_NODE_ID";
  }
  if (o.status == 429) {
    return what + ": rate limited by AccountDB (429" +
           (o.retry_after ? ", Retry-After " + std::to_string(o.retry_after->count()) + " s"
                          : std::string()) +
           ")";
  }
  if (o.status == 400 || o.status == 422) {
    return what + ": AccountDB refused the request as malformed (" + std::to_string(o.status) +
           " " + body_excerpt(o.body) + "); this is a bug or a server version mismatch";
  }
  // A 2xx head whose body then failed (cut, too large) says why below, never "200".
  if (o.status >= 300 || (o.status != 0 && o.error.empty())) {
    return what + ": " + std::to_string(o.status) + " " + body_excerpt(o.body);
  }
  return what + " on " + opts.endpoint.str() + ": " + log::mask_secrets(o.error, {opts.api_key});
}

Result<std::string> AccountDbClient::call(const std::string& call_id, const std::string& method,
                                          const std::string& path, const std::string& query,
                                          const std::string& body, bool idempotent,
                                          const Url* only) {
  const auto opts = options();
  HttpRequest req;
  req.method = method;
  // Any endpoint of the same AccountDB will do, unless the call is for one.
  req.any_target = only == nullptr;
  req.health_check = only != nullptr;
  req.url = (only != nullptr ? *only : opts.endpoint).str() + path + "?" +
            (query.empty() ? "" : query + "&") + "api_key=" + url_encode(opts.api_key);
  req.idempotent = idempotent;
  req.timeout = opts.timeout;
  const auto id = request_id_();
  req.headers.emplace_back("X-Request-ID", id);
  req.headers.emplace_back("Accept", "application/json");
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  ++requests_;
  auto o = transport_(req);
  auto kind = o.kind;
  // A 404 on node_info means the node id is unknown: as bad as a wrong key.
  if (o.status == 404 && call_id == "node_info") {
    kind = FailureKind::auth;
  }
  const log::Fields fields = {{"call", call_id},
                              {"method", method},
                              {"path", path},
                              {"status", o.status},
                              {"kind", to_string(kind)},
                              {"request_id", id},
                              {"elapsed_ms", o.elapsed.count()}};
  if (kind == FailureKind::ok) {
    log::debug("accountdb_request", "AccountDB answered", fields);
    return std::move(o.body);
  }
  Error e{error_kind(kind), describe_failure(opts, call_id, method, path, o), method,
          (only != nullptr ? *only : opts.endpoint).str() + path, o.status};
  if (kind == FailureKind::client) {
    log::error("accountdb_request", e.message, fields);
  } else {
    log::warn("accountdb_request", e.message, fields);
  }
  return e;
}

Result<AccountDbNode> AccountDbClient::node_info() {
  const auto path = "/proxmox-nodes/agent-node/" + std::to_string(options().node_id);
  return parsed<AccountDbNode>(call("node_info", "GET", path, "", "", true), parse_node,
                               "GET " + path);
}

Status AccountDbClient::check_endpoint(const Url& endpoint) {
  const auto path = "/proxmox-nodes/agent-node/" + std::to_string(options().node_id);
  return status_of(call("node_info", "GET", path, "", "", true, &endpoint));
}

Status AccountDbClient::heartbeat() {
  return status_of(call("heartbeat", "POST", "/proxmox-nodes/heartbeat",
                        "node_id=" + std::to_string(options().node_id), "", true));
}

Result<WhitelistAnswer> AccountDbClient::whitelist() {
  const auto node = std::to_string(options().node_id);
  const auto c_path = "/vm-access/node/" + node + "/whitelist/agent";
  auto c = call("whitelist", "GET", c_path, "", "", true);
  if (c.ok() || (c.error().status != 404 && c.error().status != 405)) {
    return parsed<WhitelistAnswer>(
        c,
        [](const std::string& body) -> Result<WhitelistAnswer> {
          auto v = parse_whitelist_c(body);
          if (!v) {
            return v.error();
          }
          return WhitelistAnswer{std::move(v.value()), "accountdb"};
        },
        "GET " + c_path);
  }
  // An older server without whitelist: whitelist_legacy.
  const auto d_path = "/proxmox-nodes/agent-whitelist/" + node;
  return parsed<WhitelistAnswer>(
      call("whitelist_legacy", "GET", d_path, "", "", true),
      [](const std::string& body) -> Result<WhitelistAnswer> {
        auto v = parse_whitelist_d(body);
        if (!v) {
          return v.error();
        }
        return WhitelistAnswer{std::move(v.value()), "accountdb-legacy"};
      },
      "GET " + d_path);
}

Result<std::vector<AccountDbRow>> AccountDbClient::list_vms() {
  const auto path = "/proxmox-nodes/agent-vms/" + std::to_string(options().node_id);
  return parsed<std::vector<AccountDbRow>>(call("list_vms", "GET", path, "", "", true), parse_rows,
                                           "GET " + path);
}

Result<std::optional<std::int64_t>> AccountDbClient::put_vm(std::int64_t id,
                                                            const nlohmann::json& body) {
  // A create (a PUT to -vmid) inserts a row each time it lands: not idempotent.
  auto answer = call("put_vm", "PUT", "/vms/agent/" + std::to_string(id),
                     "node_id=" + std::to_string(options().node_id),
                     body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), id > 0);
  if (!answer) {
    return answer.error();
  }
  // The stored row; its id is only informative, so an answer without one is no failure.
  const auto row = nlohmann::json::parse(*answer, nullptr, false);
  if (row.is_object() && row.contains("id") && row["id"].is_number_integer()) {
    return std::optional<std::int64_t>(row["id"].get<std::int64_t>());
  }
  return std::optional<std::int64_t>();
}

}  // namespace pha
