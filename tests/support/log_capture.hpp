#pragma once
// Routes the agent's log lines into a vector for the lifetime of a test, as
// text lines ("level event: message key=value ...").

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "agent/platform/logging.hpp"

namespace pha::test {

struct LogCapture {
  std::vector<std::string> lines;
  explicit LogCapture(log::Level level = log::Level::debug) {
    log::init({level, log::Format::text, false, {}});
    log::capture_for_test(&lines);
  }
  ~LogCapture() {
    log::capture_for_test(nullptr);
    log::init({});
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  // How many lines hold `text`.
  std::size_t count(const std::string& text) const {
    return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
      return l.find(text) != std::string::npos;
    }));
  }
};

}  // namespace pha::test
