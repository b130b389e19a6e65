#pragma once
// What a reload puts in force (docs/settings.md "Reload"): the new
// configuration, except the settings that only a start applies. Each of
// those keeps the value the agent runs with, in the settings that every part
// reads and in what --print-config and GET /config show, so that no part of
// the agent can see a value that is not in force. Which ones changed is
// what the reload's verdict and its reload_partial warning name.

#include <string>
#include <vector>

#include "agent/config/loader.hpp"

namespace pha {

struct SettledReload {
  LoadedConfig config;  // what to put in force
  // The settings whose new value waits for the next start, in table order:
  // the start-only ones (SettingSpec::start_only) that changed, and
  // TLS_CERT_FILE and TLS_KEY_FILE when the reload would switch HTTPS on or off.
  std::vector<std::string> restart_needed;
};

// `running`: the configuration in force; `next`: the one just loaded and validated.
SettledReload keep_start_only(const LoadedConfig& running, LoadedConfig next);

}  // namespace pha
