#include "agent/config/loader.hpp"

#include <algorithm>
#include <set>

#include "agent/core/text.hpp"

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

// Puts the layers on top of each other, lowest first; each call is one place
// of its own rank.
class Layering {
 public:
  void env_file(const EnvFile& file) {
    ++rank_;
    out_.warnings.insert(out_.warnings.end(), file.warnings.begin(), file.warnings.end());
    for (const auto& [key, entry] : file.entries) {
      const auto where = file.path + ":" + std::to_string(entry.line);
      if (keys_.contains(key)) {
        set(key, entry.value, Source::env_file, where);
      } else if (is_ignored_legacy_key(key)) {
        note_legacy(key, where);
      } else {
        auto& w = out_.warnings.emplace_back(where);
        w.append(": unknown setting ").append(key).append(" is ignored (a typo?)");
      }
    }
  }
  // The process environment holds many unrelated variables: only known and
  // legacy keys are looked at.
  void environment(const StringMap& environment) {
    ++rank_;
    for (const auto& [key, value] : environment) {
      if (keys_.contains(key)) {
        set(key, value, Source::env, "environment");
      } else if (is_ignored_legacy_key(key)) {
        note_legacy(key, "environment");
      }
    }
  }
  void flags(const StringMap& cli) {
    ++rank_;
    for (const auto& [key, value] : cli) {
      const auto* spec = find_setting(key);
      set(key, value, Source::cli, spec != nullptr ? std::string(spec->flag) : key);
    }
  }
  LayeredSettings take() { return std::move(out_); }

 private:
  void set(const std::string& key, const std::string& value, Source source, std::string where) {
    if (!value.empty()) {
      out_.values[key] = RawSetting{value, Origin{source, std::move(where), rank_}};
    }
  }
  void note_legacy(const std::string& key, const std::string& where) {
    if (legacy_seen_.insert(key).second) {
      out_.warnings.push_back(key + " (" + where +
                              ") is a setting of the old agent's log forwarding; it is ignored, "
                              "logs go to the journal");
    }
  }

  const std::map<std::string, const SettingSpec*> keys_ = known_keys();
  std::set<std::string> legacy_seen_;
  LayeredSettings out_;
  int rank_ = 0;  // the built-in defaults are rank 0
};

// The drop-ins of `env_file` in the order they are read, as paths.
Result<std::vector<std::string>> list_drop_ins(std::string_view env_file, SystemAccess& access) {
  const auto dir = drop_in_dir(env_file);
  auto listing = access.list_dir(dir);
  if (!listing) {
    return Error{ErrorKind::invalid,
                 dir + ": cannot read the drop-in directory: " + listing.error().message};
  }
  std::vector<std::string> names;
  for (const auto& entry : listing->entries) {
    if (entry.is_file && is_drop_in_name(entry.name)) {
      names.push_back(entry.name);
    }
  }
  // Byte-wise, whatever the locale: std::string compares chars as unsigned char.
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    name.insert(0, dir + "/");
  }
  return names;
}

}  // namespace

LayeredSettings layer_settings(std::span<const EnvFile> env_files, const StringMap& environment,
                               const StringMap& cli) {
  Layering layering;
  for (const auto& file : env_files) {
    layering.env_file(file);
  }
  layering.environment(environment);
  layering.flags(cli);
  return layering.take();
}

std::string drop_in_dir(std::string_view env_file) {
  return std::string(env_file) + ".d";
}

bool is_drop_in_name(std::string_view name) {
  return name.ends_with(".env") && !name.starts_with('.');
}

std::variant<std::vector<EnvFile>, ConfigErrors> read_env_files(const std::string& path, bool named,
                                                                SystemAccess& access) {
  std::vector<EnvFile> files;
  ConfigErrors errors;
  auto read = [&](const std::string& file, const std::string& label) {
    auto text = access.read_file(file);
    if (!text) {
      errors.errors.push_back(label + ": cannot read it: " + text.error().message);
      return;
    }
    auto parsed = parse_env_file(*text, file);
    if (!parsed) {
      errors.errors.push_back(parsed.error().message);
      return;
    }
    files.push_back(std::move(parsed.value()));
  };
  read(path, named ? "--env-file " + path : path);
  // Read even when the env file failed: every broken file is reported at once.
  auto drop_ins = list_drop_ins(path, access);
  if (!drop_ins) {
    errors.errors.push_back(drop_ins.error().message);
  } else {
    for (const auto& file : *drop_ins) {
      read(file, file);
    }
  }
  if (!errors.errors.empty()) {
    return errors;
  }
  return files;
}

LoadOutcome load_settings(const LoadInput& input, SystemAccess& access) {
  std::vector<EnvFile> files;
  if (input.env_file) {
    auto read = read_env_files(*input.env_file, input.env_file_named, access);
    if (auto* errors = std::get_if<ConfigErrors>(&read)) {
      return std::move(*errors);
    }
    files = std::move(std::get<std::vector<EnvFile>>(read));
  }
  auto outcome =
      validate_settings(layer_settings(files, input.environment, input.cli), access, input.scope);
  if (auto* config = std::get_if<LoadedConfig>(&outcome)) {
    for (const auto& file : files) {
      config->env_files.push_back(file.path);
    }
  }
  return outcome;
}

std::optional<std::string> missing_required_message(const LoadOutcome& outcome,
                                                    const std::optional<std::string>& env_file) {
  const auto* errors = std::get_if<ConfigErrors>(&outcome);
  if (errors == nullptr || errors->missing_required.empty()) {
    return std::nullopt;
  }
  const std::string where = env_file
                                ? *env_file + " or a file in " + drop_in_dir(*env_file) + "/"
                                : "the environment or an env file (--env-file PATH, or ./.env)";
  return "not configured yet: set " + join_list(errors->missing_required) + " in " + where;
}

}  // namespace pha
