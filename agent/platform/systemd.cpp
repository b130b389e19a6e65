#include "agent/platform/systemd.hpp"

#include <atomic>
#include <cstring>

#include <systemd/sd-daemon.h>

#include "agent/platform/logging.hpp"

namespace pha::systemd {

namespace {

// A newline would end the STATUS= assignment and start another one (a
// message could otherwise smuggle in "STOPPING=1"): every control character
// becomes a space.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      c = ' ';
    }
  }
  return out;
}

// Cuts at a UTF-8 character boundary so the journal never shows half a character.
std::string truncated(std::string text, std::size_t max) {
  if (text.size() <= max) {
    return text;
  }
  constexpr std::string_view kEllipsis = "...";
  std::size_t cut = max - kEllipsis.size();
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  text.resize(cut);
  return text + std::string(kEllipsis);
}

void notify(const std::string& message) {
  const int r = sd_notify(0, message.c_str());
  if (r >= 0) {
    return;
  }
  // Once is enough: a broken socket fails every ping the same way.
  static std::atomic<bool> reported{false};
  if (!reported.exchange(true)) {
    log::warn("sd_notify_failed", "cannot notify systemd; later failures are not logged",
              {{"error", std::strerror(-r)}});
  }
}

std::string plural(std::int64_t n, std::string_view word) {
  return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
}

std::string summary_text(const CycleSummary& c) {
  const auto next = "next in " + std::to_string(c.next_in_s < 0 ? 0 : c.next_in_s) + " s";
  if (c.status == Severity::ok) {
    const auto counts = plural(c.guests, "guest") + ", " + plural(c.changes, "change");
    return c.dry_run ? "dry run: " + counts + " not sent, " + next
                     : "in sync: " + counts + ", " + next;
  }
  return std::string(to_string(c.status)) + ": " + c.message + "; " + next;
}

}  // namespace

void notify_ready(std::string_view status) {
  notify("READY=1\nSTATUS=" + one_line(status));
}

void notify_status(std::string_view status) {
  notify("STATUS=" + one_line(status));
}

void notify_watchdog() {
  notify("WATCHDOG=1");
}

void notify_stopping() {
  notify("STOPPING=1\nSTATUS=stopping");
}

std::optional<std::chrono::microseconds> watchdog_ping_interval(int enabled, std::uint64_t usec) {
  if (enabled <= 0 || usec == 0) {
    return std::nullopt;
  }
  return std::chrono::microseconds(usec / 2);
}

std::optional<std::chrono::microseconds> watchdog_ping_interval() {
  std::uint64_t usec = 0;
  // 0: WATCHDOG_* stay set; the agent starts no child that could take them
  // for its own (and WATCHDOG_PID would tell such a child they are not).
  const int enabled = sd_watchdog_enabled(0, &usec);
  return watchdog_ping_interval(enabled, usec);
}

std::string status_line(const CycleSummary& cycle, const std::vector<std::string>& secrets) {
  // Masked before the cut, so no cut can leave half a secret unmasked.
  return truncated(log::mask_secrets(one_line(summary_text(cycle)), secrets), kMaxStatusLength);
}

}  // namespace pha::systemd
