#pragma once
// Layers the settings: built-in default < env file < its drop-ins (PATH.d/*.env,
// in byte-wise order) < process environment < command-line flag, and
// validates the result. Pure functions of their inputs; the filesystem is
// reached only through SystemAccess, so tests can fake it. Only main touches
// the real process environment.

#include <map>
#include <memory>
#include <optional>
#include <span>
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
  // The precedence of the place the value came from: the default, each env
  // file in the order they are read, the environment and the flags each have
  // their own, and a higher one wins. Equal ranks mean the same place (one
  // file, or the environment), where a secret and its *_FILE conflict.
  int rank = 0;
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
// `env_files` in the order they are layered, each over the ones before it.
LayeredSettings layer_settings(std::span<const EnvFile> env_files, const StringMap& environment,
                               const StringMap& cli);

struct DirEntry {
  std::string name;
  // A regular file or a symlink to one; also an entry whose type cannot be
  // told (a dangling symlink), so that reading it says why it fails. False
  // for directories, FIFOs, sockets and devices.
  bool is_file = false;
};
struct DirListing {
  bool exists = false;  // a missing directory is not an error
  std::vector<DirEntry> entries;
};

// The filesystem checks that loading and validation need.
class SystemAccess {
 public:
  virtual ~SystemAccess() = default;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  // The entries of a directory (no "." and ".."), in no particular order, or
  // why it cannot be read ("Permission denied", "Not a directory").
  virtual Result<DirListing> list_dir(const std::string& path) = 0;
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
  std::vector<std::string> env_files;  // the env files read, in the order they were layered
};

struct ConfigErrors {
  std::vector<std::string>
      errors;  // one line each: the setting, where it came from, the value, what is allowed
  // The required settings among them that are not set at all, as
  // --check-required names them ("ACCOUNTDB_URL", "PROXMOX_TOKEN_SECRET").
  std::vector<std::string> missing_required;
};

using LoadOutcome = std::variant<LoadedConfig, ConfigErrors>;

// Which settings are required: all of them for the agent, only the Proxmox
// ones for --list-guests (an operator's diagnostic that never talks to AccountDB).
enum class Scope { agent, proxmox_only };

LoadOutcome validate_settings(const LayeredSettings& layered, SystemAccess& access,
                              Scope scope = Scope::agent);

// The drop-in directory of an env file: "PATH.d".
std::string drop_in_dir(std::string_view env_file);
// Whether a name in the drop-in directory is read: it ends in ".env" and does
// not start with "." (so "README", "x.env~", "x.env.dpkg-old" are not).
bool is_drop_in_name(std::string_view name);

// Reads and parses the env file and then its drop-ins, in the order they are
// layered. Every file or directory that cannot be read or parsed is an error
// that names it (and the line); all of them are reported. `named`: the file
// came from --env-file, and its error says so.
std::variant<std::vector<EnvFile>, ConfigErrors> read_env_files(const std::string& path, bool named,
                                                                SystemAccess& access);

// Everything main needs in one call: read the env files (if any), layer, validate.
struct LoadInput {
  std::optional<std::string> env_file;  // null when there is no env file
  bool env_file_named = false;          // it came from --env-file
  StringMap environment;
  StringMap cli;
  Scope scope = Scope::agent;
};
LoadOutcome load_settings(const LoadInput& input, SystemAccess& access);

// --check-required (the unit's ExecCondition=): null when every required
// setting is set, whatever else is wrong (the start reports that, with exit
// 78, as it does a file that cannot be read or parsed); else one line that
// names the missing settings and where to put them.
std::optional<std::string> missing_required_message(const LoadOutcome& outcome,
                                                    const std::optional<std::string>& env_file);

}  // namespace pha
