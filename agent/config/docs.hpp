#pragma once
// Renderings of the settings table: the .env example that ships as the
// package's agent.env, the settings table of docs/settings.md, the man page
// proxmox-host-agent(8), and --print-config.

#include <string>

#include <nlohmann/json.hpp>

#include "agent/config/loader.hpp"

namespace pha {

// Every setting commented out with its default and a one-line meaning.
std::string render_env_example();
// A Markdown table of every setting: env, flag, default, allowed, help.
std::string render_settings_markdown();
// proxmox-host-agent(8) in roff (man(7) macros): every setting with its flag,
// default, allowed values and meaning, the other flags, the HTTP endpoints,
// exit codes, signals and files. Generated at build time (pha-gen-docs --man).
std::string render_man_page();
// {"settings": {"ENV": {"value": V, "source": S, "from": W}, ...}}, secrets as "***";
// W is where the value came from: "FILE:LINE", "environment", the flag.
nlohmann::json print_config_json(const LoadedConfig& config);

}  // namespace pha
