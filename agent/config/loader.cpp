#include "agent/config/loader.hpp"

#include <set>

namespace pha {

std::string_view to_string(Source s) {
  switch (s) {
    case Source::default_value:
      return "default";
    case Source::env_file:
      return "env-file";
    case Source::env:
      return "env";
    case Source::cli:
      return "cli";
  }
  return "default";
}

namespace {

// Every key a layer may set: the table's names and each secret's *_FILE.
std::map<std::string, const SettingSpec*> known_keys() {
  std::map<std::string, const SettingSpec*> keys;
  for (const auto& spec : settings_table()) {
    keys.emplace(std::string(spec.env), &spec);
    if (spec.secret) {
      keys.emplace(file_variant(spec), &spec);
    }
  }
  return keys;
}

}  // namespace

LayeredSettings layer_settings(const EnvFile* env_file, const StringMap& environment,
                               const StringMap& cli) {
  LayeredSettings out;
  const auto keys = known_keys();
  std::set<std::string> legacy_seen;

  auto note_legacy = [&](const std::string& key, const std::string& where) {
    if (legacy_seen.insert(key).second) {
      out.warnings.push_back(key + " (" + where +
                             ") is a setting of the old agent's log forwarding; it is ignored, "
                             "logs go to the journal");
    }
  };
  auto set = [&](const std::string& key, const std::string& value, Origin origin) {
    if (!value.empty()) {
      out.values[key] = RawSetting{value, std::move(origin)};
    }
  };

  if (env_file != nullptr) {
    out.warnings.insert(out.warnings.end(), env_file->warnings.begin(), env_file->warnings.end());
    for (const auto& [key, entry] : env_file->entries) {
      const auto where = env_file->path + ":" + std::to_string(entry.line);
      if (keys.contains(key)) {
        set(key, entry.value, Origin{Source::env_file, where});
      } else if (is_ignored_legacy_key(key)) {
        note_legacy(key, where);
      } else {
        out.warnings.push_back(where + ": unknown setting " + key + " is ignored (a typo?)");
      }
    }
  }
  // The process environment holds many unrelated variables: only known and
  // legacy keys are looked at.
  for (const auto& [key, value] : environment) {
    if (keys.contains(key)) {
      set(key, value, Origin{Source::env, "environment"});
    } else if (is_ignored_legacy_key(key)) {
      note_legacy(key, "environment");
    }
  }
  for (const auto& [key, value] : cli) {
    const auto* spec = find_setting(key);
    set(key, value, Origin{Source::cli, spec != nullptr ? std::string(spec->flag) : key});
  }
  return out;
}

LoadOutcome load_settings(const LoadInput& input, SystemAccess& access) {
  std::optional<EnvFile> file;
  if (input.env_file_path) {
    auto parsed = parse_env_file(input.env_file_text, *input.env_file_path);
    if (!parsed) {
      return ConfigErrors{{parsed.error()}};
    }
    file = std::move(parsed.value());
  }
  return validate_settings(layer_settings(file ? &*file : nullptr, input.environment, input.cli),
                           access, input.scope);
}

}  // namespace pha
