#pragma once
// The top-level catch of every thread the agent starts. An exception that
// escapes a thread's body would call std::terminate; caught here, it is
// logged (event thread_failed, with the thread's name) and recorded, and
// /health answers 503 from then on, so the watchdog and the operator see a
// process that lost a thread instead of one that only looks alive.

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace pha {

struct ThreadFailure {
  std::string thread;  // "sync", "heartbeat", "health-proxmox", "webhook", ...
  std::string error;   // what() of the exception, for the log only
};

// Thread-safe; keeps the first failure.
class ThreadFailures {
 public:
  void record(ThreadFailure failure);
  std::optional<ThreadFailure> first() const;
  void clear();

 private:
  mutable std::mutex mutex_;
  std::optional<ThreadFailure> first_;
};

// The process's record, which /health reads.
ThreadFailures& thread_failures();

// Runs `body`; an exception that escapes it is logged and recorded in
// `failures`, and the thread then ends normally.
void run_guarded(std::string_view thread, const std::function<void()>& body,
                 ThreadFailures& failures = thread_failures()) noexcept;

}  // namespace pha
