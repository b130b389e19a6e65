#include "agent/platform/thread_guard.hpp"

#include <exception>

#include "agent/platform/logging.hpp"

namespace pha {

void ThreadFailures::record(ThreadFailure failure) {
  std::lock_guard lock(mutex_);
  if (!first_) {
    first_ = std::move(failure);
  }
}

std::optional<ThreadFailure> ThreadFailures::first() const {
  std::lock_guard lock(mutex_);
  return first_;
}

void ThreadFailures::clear() {
  std::lock_guard lock(mutex_);
  first_.reset();
}

ThreadFailures& thread_failures() {
  static ThreadFailures failures;
  return failures;
}

void run_guarded(std::string_view thread, const std::function<void()>& body,
                 ThreadFailures& failures) noexcept {
  std::string error;
  try {
    body();
    return;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "an exception that is not a std::exception";
  }
  try {
    failures.record({std::string(thread), error});
    log::error("thread_failed",
               "the " + std::string(thread) +
                   " thread stopped on an unexpected error; /health answers 503 until a restart",
               {{"thread", std::string(thread)}, {"error", error}});
  } catch (...) {
    // Out of memory while reporting: nothing more can be done here.
  }
}

}  // namespace pha
