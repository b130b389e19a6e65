#pragma once
// The AccountDB client: the calls of docs/accountdb.md exactly as the production
// server speaks them. The API key travels only as the api_key query parameter
// and never appears in a log line or an error message. Every request carries
// an X-Request-ID, logged with its outcome.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/accountdb/types.hpp"
#include "agent/core/live.hpp"
#include "agent/core/url.hpp"
#include "agent/net/http.hpp"

namespace pha {

struct AccountDbClientOptions {
  Url endpoint;  // the base URL in use (the first endpoint until failover arrives)
  std::string api_key;
  std::int64_t node_id = 0;
  std::chrono::milliseconds timeout{30'000};  // ACCOUNTDB_TIMEOUT
};

struct WhitelistAnswer {
  std::set<std::int64_t> vmids;
  std::string source;  // "accountdb" (whitelist) or "accountdb-legacy" (whitelist_legacy)
};

class AccountDbClient {
 public:
  // The options are read at each call: a fixed key or another endpoint
  // from a reload applies from the next request on.
  AccountDbClient(Live<AccountDbClientOptions> options, Transport transport,
                  std::function<std::string()> request_id = {});

  // Each call's error says what failed for an operator (never the key); its
  // url is the endpoint and path, without the query that holds the key.
  Result<AccountDbNode> node_info();
  // The recovery check of docs/failover.md "AccountDB endpoints": node_info on one endpoint only,
  // one attempt, outside the retry budget.
  Status check_endpoint(const Url& endpoint);
  Status heartbeat();
  Result<WhitelistAnswer> whitelist();  // or whitelist_legacy on an older server
  Result<std::vector<AccountDbRow>> list_vms();
  // PUT /vms/agent/{id}; a create (negative id) is not idempotent. The id of
  // the stored row the server answers with (nullopt when the answer has none).
  Result<std::optional<std::int64_t>> put_vm(std::int64_t id, const nlohmann::json& body);

  AccountDbClientOptions options() const;
  std::uint64_t requests() const { return requests_.load(); }

 private:
  // The body of a 2xx answer, or the error.
  Result<std::string> call(const std::string& call_id, const std::string& method,
                           const std::string& path, const std::string& query,
                           const std::string& body, bool idempotent, const Url* only = nullptr);
  std::string describe_failure(const AccountDbClientOptions& opts, const std::string& call_id,
                               const std::string& method, const std::string& path,
                               const HttpOutcome& o) const;

  Live<AccountDbClientOptions> options_;
  Transport transport_;
  std::function<std::string()> request_id_;
  std::atomic<std::uint64_t> requests_{0};
};

// A 16-hex-digit request id from a thread-safe random source.
std::string random_request_id();

}  // namespace pha
