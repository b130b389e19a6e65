#pragma once
// Load on the agent's HTTP API with wrk (Debian package `wrk`): requests per
// second and latency percentiles of one endpoint at a number of connections.

#include <optional>
#include <string>

namespace pha::bench {

struct HttpLoad {
  std::string path;
  int connections = 0;
  double requests_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  long long requests = 0;
  long long errors = 0;  // socket errors and non-2xx answers
};

// Runs `wrk --latency` against `base_url` + `path` for `seconds`; nullopt
// when wrk is missing or its output cannot be read (the reason in `error`).
std::optional<HttpLoad> run_wrk(const std::string& base_url, const std::string& path,
                                int connections, int seconds, std::string& error);

}  // namespace pha::bench
