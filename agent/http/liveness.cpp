// /health's verdict, which the systemd watchdog shares (docs/http-api.md "GET /health").

#include <algorithm>
#include <string>

#include "agent/http/api.hpp"

namespace pha {

Liveness evaluate_liveness(const LoopState& loop, const http::ServerStats& server,
                           const Settings& s, Clock::TimePoint now,
                           const ThreadFailures& failures) {
  // What the exception said stays in the log: it may quote upstream data.
  if (const auto failed = failures.first()) {
    return {false, "the " + failed->thread +
                       " thread stopped on an unexpected error (log event thread_failed); "
                       "restart the agent"};
  }
  if (loop.running) {
    // The longest a healthy loop waits between cycles is the larger of the
    // interval and the reconnect cap; two of those without a finished cycle
    // means it is stuck.
    const auto period = std::chrono::seconds(std::max(s.update_interval, s.retry_max_delay));
    if (now - loop.last_progress > 2 * period) {
      return {false, "the sync loop has not finished a cycle for " +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            now - loop.last_progress)
                                            .count()) +
                         " s"};
    }
  }
  // A worker job waits on AccountDB: all its attempts, with some room.
  const auto job_limit = std::chrono::seconds(
      std::max(60, 2 * s.accountdb_timeout * s.retry_max_attempts + s.retry_max_delay));
  if (server.oldest_job_age > job_limit) {
    return {false, "an HTTP worker has been busy for " +
                       std::to_string(server.oldest_job_age.count() / 1000) + " s"};
  }
  return {true, ""};
}

}  // namespace pha
