#pragma once
// Layers the settings: built-in default < env file < process environment <
// command-line flag, and validates the result. Pure functions of their inputs;
// the filesystem is reached only through SystemAccess, so tests can fake it.
// Only main touches the real process environment.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "agent/config/env_file.hpp"
#include "agent/config/settings.hpp"
#include "agent/config/settings_table.hpp"
#include "agent/core/result.hpp"

namespace pha {

enum class Source { default_value, env_file, env, cli };
// "default", "env-file", "env", "cli": the names --print-config uses.
std::string_view to_string(Source s);

struct Origin {
  Source source = Source::default_value;
  std::string where;  // "./.env:12", "environment", "--port", "built-in default"
};

struct RawSetting {
  std::string text;
  Origin origin;
};

using StringMap = std::map<std::string, std::string>;

struct LayeredSettings {
  std::map<std::string, RawSetting> values;  // keys that some layer set to a non-empty value
  std::vector<std::string> warnings;         // unknown keys, ignored legacy keys, env file notes
};

// Empty values do not override a lower layer (KEY= means "not set here").
LayeredSettings layer_settings(const EnvFile* env_file, const StringMap& environment,
                               const StringMap& cli);

// The filesystem checks that validation needs.
class SystemAccess {
 public:
  virtual ~SystemAccess() = default;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  virtual bool is_writable_dir(const std::string& path) = 0;
  // Number of certificates in a PEM file, or why it cannot be read.
  virtual Result<int> count_pem_certificates(const std::string& path) = 0;
  // Whether the file holds a PEM private key, or why it cannot be read.
  virtual Result<bool> has_pem_private_key(const std::string& path) = 0;
};

struct EffectiveValue {
  std::string text;                   // normalised
  const SettingSpec* spec = nullptr;  // null for *_FILE entries
  bool secret = false;
  Origin origin;
};

struct LoadedConfig {
  Settings settings;
  std::map<std::string, EffectiveValue> effective;  // every setting and every secret's *_FILE
  std::vector<std::string> warnings;
};

struct ConfigErrors {
  std::vector<std::string>
      errors;  // one line each: the setting, where it came from, the value, what is allowed
};

using LoadOutcome = std::variant<LoadedConfig, ConfigErrors>;

// Which settings are required: all of them for the agent, only the Proxmox
// ones for --list-guests (an operator's diagnostic that never talks to AccountDB).
enum class Scope { agent, proxmox_only };

LoadOutcome validate_settings(const LayeredSettings& layered, SystemAccess& access,
                              Scope scope = Scope::agent);

// Everything main needs in one call: parse the env file text (if any), layer, validate.
struct LoadInput {
  std::optional<std::string> env_file_path;  // null when there is no env file
  std::string env_file_text;
  StringMap environment;
  StringMap cli;
  Scope scope = Scope::agent;
};
LoadOutcome load_settings(const LoadInput& input, SystemAccess& access);

}  // namespace pha
