#pragma once
// The AccountDB server's rate limit: at most `limit` requests per window per
// client address and path. It runs before the routes, so it counts every
// request, unknown paths and rejected ones too. Thread-safe.

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "agent/core/clock.hpp"

namespace pha::sim {

class AdbRateLimit {
 public:
  struct Verdict {
    bool limited = false;
    // x-ratelimit-limit, -remaining, -reset (and retry-after when limited).
    std::vector<std::pair<std::string, std::string>> headers;
  };

  // Counts a request of `client` to `path` at `now`. A `limit` of 0 is no
  // limit (and no headers).
  Verdict count(const std::string& client, const std::string& path, Clock::TimePoint now,
                std::size_t limit, std::chrono::seconds window);
  void clear();

 private:
  struct Window {
    std::size_t count = 0;
    Clock::TimePoint reset_at;
  };

  std::mutex mutex_;
  std::map<std::string, Window> windows_;  // by "client:path"
  Clock::TimePoint last_cleanup_{};
};

// The headers of a 429 that says to come back in `retry_after` seconds.
std::vector<std::pair<std::string, std::string>> rate_limited_headers(std::size_t limit,
                                                                      long long retry_after);

}  // namespace pha::sim
