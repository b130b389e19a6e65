#pragma once
// systemd's service protocol (sd_notify(3)) for the Type=notify unit:
// READY=1 once the agent serves, STATUS= with a one-line summary after each
// cycle, WATCHDOG=1 while the sync loop moves, STOPPING=1 on shutdown.
// Outside systemd (no NOTIFY_SOCKET) every notify_* call does nothing.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/severity.hpp"

namespace pha::systemd {

// READY=1 with a first STATUS= (e.g. the address it listens on).
void notify_ready(std::string_view status);
void notify_status(std::string_view status);
void notify_watchdog();
void notify_stopping();

// How often to ping the watchdog, from what sd_watchdog_enabled() returned:
// half the period, so one late ping does not cost a restart; nullopt when
// the watchdog is off (or meant for another process, see WATCHDOG_PID).
std::optional<std::chrono::microseconds> watchdog_ping_interval(int enabled, std::uint64_t usec);
// The same, read from the environment (WATCHDOG_USEC, WATCHDOG_PID).
std::optional<std::chrono::microseconds> watchdog_ping_interval();

// What STATUS= says about a finished cycle.
struct CycleSummary {
  Severity status = Severity::ok;  // CycleReport::status
  std::string message;             // CycleReport::message
  bool dry_run = false;
  std::int64_t guests = 0;   // guests the Proxmox read found
  std::int64_t changes = 0;  // creates, updates and missing marks
  std::int64_t next_in_s = 0;
};

// Longest STATUS= text: `systemctl status` shows it on one line.
inline constexpr std::size_t kMaxStatusLength = 200;

// One line, no control characters, `secrets` (and api_key=, PVE cookies and
// tokens) masked, at most kMaxStatusLength bytes, e.g.
// "in sync: 24 guests, 0 changes, next in 300 s".
std::string status_line(const CycleSummary& cycle, const std::vector<std::string>& secrets);

}  // namespace pha::systemd
