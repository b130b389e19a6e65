// The pure parts of the systemd integration: the STATUS= line of a cycle and
// the watchdog's ping interval (docs/packaging.md "Under systemd").

#include "agent/platform/systemd.hpp"

#include <cstdlib>
#include <optional>
#include <string>
#include <unistd.h>

#include <doctest/doctest.h>

#include "agent/platform/logging.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

systemd::CycleSummary cycle(Severity status, std::string message = "") {
  return {.status = status,
          .message = std::move(message),
          .dry_run = false,
          .guests = 24,
          .changes = 0,
          .next_in_s = 300};
}

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
    }
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
    if (i + n > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += n;
  }
  return true;
}

}  // namespace

TEST_CASE("systemd: a cycle in sync says how many guests and changes and when the next one runs") {
  CHECK(systemd::status_line(cycle(Severity::ok), {}) ==
        "in sync: 24 guests, 0 changes, next in 300 s");
  auto one = cycle(Severity::ok);
  one.guests = 1;
  one.changes = 1;
  CHECK(systemd::status_line(one, {}) == "in sync: 1 guest, 1 change, next in 300 s");
  auto dry = cycle(Severity::ok);
  dry.dry_run = true;
  dry.changes = 3;
  CHECK(systemd::status_line(dry, {}) == "dry run: 24 guests, 3 changes not sent, next in 300 s");
  // A schedule already due never shows a negative wait.
  auto late = cycle(Severity::ok);
  late.next_in_s = -2;
  CHECK(systemd::status_line(late, {}) == "in sync: 24 guests, 0 changes, next in 0 s");
}

TEST_CASE("systemd: a failed or partial cycle shows its message") {
  CHECK(systemd::status_line(cycle(Severity::error, "AccountDB is unreachable: connection refused"),
                             {}) ==
        "error: AccountDB is unreachable: connection refused; next in 300 s");
  CHECK(systemd::status_line(cycle(Severity::warning, "synced: 1 request(s) failed"), {}) ==
        "warning: synced: 1 request(s) failed; next in 300 s");
}

TEST_CASE("systemd: the status line is one line and never carries a secret") {
  const std::string key = "Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";
  const auto line =
      systemd::status_line(cycle(Severity::error, "GET http://adb/x?api_key=" + key +
                                                      " failed\nSTOPPING=1\r\tkey " + key),
                           {key});
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line.find('\t') == std::string::npos);
  CHECK(line.find(key) == std::string::npos);
  CHECK(line.find("api_key=***") != std::string::npos);
}

TEST_CASE("systemd: a long status line is cut at a character boundary after masking") {
  const std::string secret = "s3cr3t-value-0123456789";
  std::string message;
  while (message.size() < systemd::kMaxStatusLength - 20) {
    message += "é";  // two bytes: a cut at an odd offset would split it
  }
  // The secret straddles the cut: masking first means no prefix of it survives.
  message += secret + std::string(300, 'x');
  const auto line = systemd::status_line(cycle(Severity::error, message), {secret});
  CHECK(line.size() <= systemd::kMaxStatusLength);
  CHECK(line.ends_with("..."));
  CHECK(valid_utf8(line));
  CHECK(line.find(secret.substr(0, 6)) == std::string::npos);
}

TEST_CASE("systemd: the watchdog is pinged at half its period and not at all when it is off") {
  CHECK(systemd::watchdog_ping_interval(1, 2'000'000) == std::chrono::microseconds(1'000'000));
  CHECK(systemd::watchdog_ping_interval(1, 30'000'000) == std::chrono::microseconds(15'000'000));
  CHECK_FALSE(systemd::watchdog_ping_interval(0, 2'000'000));  // off, or another process's
  CHECK_FALSE(systemd::watchdog_ping_interval(-22, 0));        // WATCHDOG_USEC unparsable
  CHECK_FALSE(systemd::watchdog_ping_interval(1, 0));
}

TEST_CASE("systemd: WATCHDOG_USEC turns the pings on unless WATCHDOG_PID names another process") {
  const ScopedEnv usec("WATCHDOG_USEC", "2000000");
  {
    const ScopedEnv pid("WATCHDOG_PID", std::nullopt);
    CHECK(systemd::watchdog_ping_interval() == std::chrono::microseconds(1'000'000));
  }
  {
    const ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    CHECK(systemd::watchdog_ping_interval() == std::chrono::microseconds(1'000'000));
  }
  {
    const ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    CHECK_FALSE(systemd::watchdog_ping_interval());
  }
  const ScopedEnv off("WATCHDOG_USEC", std::nullopt);
  CHECK_FALSE(systemd::watchdog_ping_interval());
}

TEST_CASE("systemd: outside systemd every notification is a silent no-op") {
  const ScopedEnv socket("NOTIFY_SOCKET", std::nullopt);
  std::vector<std::string> lines;
  log::capture_for_test(&lines);
  systemd::notify_ready("listening");
  systemd::notify_status("in sync");
  systemd::notify_watchdog();
  systemd::notify_stopping();
  log::capture_for_test(nullptr);
  CHECK(lines.empty());
}
