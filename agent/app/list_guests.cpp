#include "agent/app/list_guests.hpp"

#include <cstdio>

#include "agent/platform/logging.hpp"
#include "agent/upstream/proxmox_upstream.hpp"

namespace pha {

nlohmann::json guest_read_report(const Result<GuestRead>& result, std::uint64_t requests) {
  if (!result) {
    return {{"status", "error"},
            {"kind", to_string(result.error().kind)},
            {"message", result.error().message},
            {"requests", requests}};
  }
  const auto& read = *result;
  auto guests = guests_json(read.guests);
  nlohmann::json report = {{"status", "ok"},
                           {"node", read.node},
                           {"source", to_string(read.source)},
                           {"complete", read.complete},
                           {"count", read.guests.size()},
                           {"requests", read.requests},
                           {"elapsed_ms", read.elapsed.count()},
                           {"guests", std::move(guests)},
                           {"rejected", read.rejected}};
  if (!read.hint.empty()) {
    report["hint"] = read.hint;
  }
  if (!read.complete) {
    report["incomplete_reason"] = read.incomplete_reason;
  }
  return report;
}

int run_list_guests(const Settings& settings) {
  SystemClock clock;
  Interrupt interrupt;
  const LiveSettings live(settings);
  ProxmoxUpstream upstream(live, clock, interrupt);
  // The read asks what the token may see once its lists came: that decides
  // whether it is complete (and the hint).
  const auto read = upstream.client().read_guests();
  if (read) {
    log::info("guests_read", "read the node's guests",
              {{"node", read->node}, {"count", read->guests.size()}, {"requests", read->requests}});
    if (!read->hint.empty()) {
      log::warn("guests_hint", read->hint);
    }
  } else {
    log::error("guests_read_failed", read.error().message,
               {{"kind", to_string(read.error().kind)}});
  }
  std::puts(guest_read_report(read, upstream.client().requests()).dump(2).c_str());
  return read ? 0 : 1;
}

}  // namespace pha
