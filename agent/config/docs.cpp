#include "agent/config/docs.hpp"

#include "agent/core/text.hpp"

namespace pha {

namespace {

std::string shown_default(const SettingSpec& spec) {
  if (!spec.default_doc.empty()) {
    return std::string(spec.default_doc);
  }
  if (spec.required) {
    return "(required)";
  }
  return spec.default_value.empty() ? "(empty)" : std::string(spec.default_value);
}

// The example value written after "KEY=": the default, or nothing.
std::string example_value(const SettingSpec& spec) {
  if (!spec.default_doc.empty()) {
    return "";
  }
  return std::string(spec.default_value);
}

}  // namespace

std::string render_env_example() {
  std::string out =
      "# proxmox-host-agent settings (/etc/proxmox-host-agent/agent.env, or ./.env).\n"
      "#\n"
      "# Syntax: KEY=value, # comments, optional \"export \", single or double quotes.\n"
      "# Precedence, lowest first: built-in default < this file < process environment\n"
      "# < command-line flag. Every setting below is commented out and shows its\n"
      "# default; uncomment a line to change it. Secrets have a *_FILE variant that\n"
      "# reads the value from a file instead.\n"
      "#\n"
      "# Required: ACCOUNTDB_URL, ACCOUNTDB_API_KEY, ACCOUNTDB_NODE_ID, and Proxmox\n"
      "# credentials (PROXMOX_TOKEN_ID + PROXMOX_TOKEN_SECRET, or PROXMOX_PASSWORD).\n"
      "# Generated from the settings table: edit agent/config/settings_table.cpp.\n";
  std::string_view section;
  for (const auto& spec : settings_table()) {
    if (spec.section != section) {
      section = spec.section;
      out += "\n## " + std::string(section) + "\n";
    }
    out += "\n# " + std::string(spec.help) + "\n";
    out += "# Allowed: " + describe_allowed(spec) + ". Default: " + shown_default(spec) + ".";
    if (!spec.flag.empty()) {
      out += " Flag: " + std::string(spec.flag) + ".";
    }
    if (spec.secret) {
      out += " Secret (no flag).";
    }
    out += "\n#" + std::string(spec.env) + "=" + example_value(spec) + "\n";
    if (spec.secret) {
      out += "#" + file_variant(spec) + "=\n";
    }
  }
  out +=
      "\n## Accepted from the old agent and ignored (logs go to the journal):\n"
      "## LOG_FORWARDING_*, LOG_BATCH_SIZE, LOG_FLUSH_INTERVAL\n";
  return out;
}

std::string render_settings_markdown() {
  std::string out = "| env | flag | default | allowed | meaning |\n|---|---|---|---|---|\n";
  auto cell = [](std::string_view s) {
    std::string c;
    for (char ch : s) {
      c += ch == '|' ? std::string("\\|") : std::string(1, ch);
    }
    return c;
  };
  for (const auto& spec : settings_table()) {
    std::string env = "`" + std::string(spec.env) + "`";
    if (spec.secret) {
      env += " (secret; also `" + file_variant(spec) + "`)";
    }
    const std::string flag = spec.flag.empty() ? "–" : "`" + std::string(spec.flag) + "`";
    out += "| " + env + " | " + flag + " | " + cell(shown_default(spec)) + " | " +
           cell(describe_allowed(spec)) + " | " + cell(spec.help) + " |\n";
  }
  return out;
}

nlohmann::json print_config_json(const LoadedConfig& config) {
  nlohmann::json settings = nlohmann::json::object();
  for (const auto& [name, value] : config.effective) {
    nlohmann::json v;
    if (value.secret) {
      v = value.text.empty() ? "" : "***";
    } else if (value.spec == nullptr || value.text.empty()) {
      v = value.text;
    } else if (value.spec->kind == ValueKind::boolean) {
      v = value.text == "true";
    } else if (value.spec->kind == ValueKind::integer) {
      v = parse_int(value.text).value_or(0);
    } else if (value.spec->kind == ValueKind::decimal) {
      v = parse_decimal(value.text).value_or(0.0);
    } else {
      v = value.text;
    }
    settings[name] = {{"value", v}, {"source", to_string(value.origin.source)}};
  }
  return {{"settings", settings}};
}

}  // namespace pha
