#pragma once
// A request from the command line to the agent running on this node: its
// HTTP API on 127.0.0.1 at the configured port, https pinned to the agent's
// own certificate (TLS_CERT_FILE) when it serves HTTPS, with a bearer token
// from the settings. Used by --explain and --confirm.

#include <string>

#include <nlohmann/json.hpp>

#include "agent/config/settings.hpp"
#include "agent/net/http.hpp"

namespace pha {

struct LocalAnswer {
  int status = 0;       // 0: no answer
  nlohmann::json body;  // discarded when the body is no JSON
  std::string url;
  std::string error;  // why there is no answer
  // One line for stderr when the status is not `expected`.
  std::string why_not() const;
};

// `method` `path` on the local agent with `token` (none when empty).
LocalAnswer ask_local_agent(const Settings& settings, const std::string& method,
                            const std::string& path, const std::string& token,
                            const std::string& body = "");

}  // namespace pha
