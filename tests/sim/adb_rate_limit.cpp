#include "tests/sim/adb_rate_limit.hpp"

namespace pha::sim {

AdbRateLimit::Verdict AdbRateLimit::count(const std::string& client, const std::string& path,
                                          Clock::TimePoint now, std::size_t limit,
                                          std::chrono::seconds window) {
  if (limit == 0) {
    return {};
  }
  std::lock_guard lock(mutex_);
  if (now - last_cleanup_ > window) {
    // Like the server's store: ended windows are dropped now and then.
    std::erase_if(windows_, [&](const auto& kv) { return now > kv.second.reset_at; });
    last_cleanup_ = now;
  }
  auto& w = windows_[client + ":" + path];
  if (w.count == 0 || now > w.reset_at) {
    w.count = 0;
    w.reset_at = now + window;
  }
  ++w.count;
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(w.reset_at - now).count();
  Verdict v;
  v.limited = w.count > limit;
  if (v.limited) {
    v.headers = rate_limited_headers(limit, left);
  } else {
    v.headers = {{"x-ratelimit-limit", std::to_string(limit)},
                 {"x-ratelimit-remaining", std::to_string(limit - w.count)},
                 {"x-ratelimit-reset", std::to_string(left)}};
  }
  return v;
}

void AdbRateLimit::clear() {
  std::lock_guard lock(mutex_);
  windows_.clear();
}

std::vector<std::pair<std::string, std::string>> rate_limited_headers(std::size_t limit,
                                                                      long long retry_after) {
  return {{"x-ratelimit-limit", std::to_string(limit)},
          {"x-ratelimit-remaining", "0"},
          {"x-ratelimit-reset", std::to_string(retry_after)},
          {"retry-after", std::to_string(retry_after)}};
}

}  // namespace pha::sim
