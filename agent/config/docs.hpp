#pragma once
// Renderings of the settings table: the .env example that ships as the
// package's agent.env, the README's settings table, and --print-config.

#include <string>

#include <nlohmann/json.hpp>

#include "agent/config/loader.hpp"

namespace pha {

// Every setting commented out with its default and a one-line meaning.
std::string render_env_example();
// A Markdown table of every setting: env, flag, default, allowed, help.
std::string render_settings_markdown();
// {"settings": {"ENV": {"value": V, "source": S}, ...}}, secrets as "***".
nlohmann::json print_config_json(const LoadedConfig& config);

}  // namespace pha
