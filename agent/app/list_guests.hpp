#pragma once
// --list-guests: read this node's guests from Proxmox once and print them, an
// operator's diagnostic of the Proxmox half of the agent.

#include <nlohmann/json.hpp>

#include "agent/config/settings.hpp"
#include "agent/proxmox/client.hpp"

namespace pha {

// The report of one read: {"node", "source", "complete" (the read shows every
// guest: each entry understood, and the token may see them all), "count",
// "requests", "elapsed_ms", "guests": [AccountDB fields + "type"], "rejected",
// "hint", "incomplete_reason" (when not complete)}, or
// {"status": "error", "kind", "message", "requests"} when the read failed
// (`requests`: what the client sent for it).
nlohmann::json guest_read_report(const Result<GuestRead>& read, std::uint64_t requests);

// Runs the mode; returns the exit code (0, or 1 when the read failed).
int run_list_guests(const Settings& settings);

}  // namespace pha
