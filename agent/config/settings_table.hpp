#pragma once
// One table describes every setting: its environment variable, its flag,
// default, allowed values, whether it is secret, and its help text. The CLI
// flags, validation, --print-config, masking, .env.example, the table of docs/settings.md
// and the man page are all derived from it.

#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "agent/config/settings.hpp"
#include "agent/core/result.hpp"

namespace pha {

// How a value appears in --print-config JSON and in the docs.
enum class ValueKind { text, boolean, integer, decimal };

struct SettingSpec;

// The Settings member(s) of one setting, for a reload that keeps the value in
// force (start_only.hpp): whether two sets of settings agree on it, and
// copying it from one to the other.
struct SettingField {
  bool (*same)(const Settings&, const Settings&) = nullptr;
  void (*copy)(const Settings& from, Settings& to) = nullptr;
};

template <auto Member>
inline constexpr SettingField field_of{
    [](const Settings& a, const Settings& b) { return a.*Member == b.*Member; },
    [](const Settings& from, Settings& to) { to.*Member = from.*Member; }};

// Parses `raw` into `out`; returns the normalised text of the value, or what is
// allowed when `raw` is not.
using ApplyFn = Result<std::string> (*)(const SettingSpec&, std::string_view raw, Settings& out);

struct SettingSpec {
  std::string_view env;
  std::string_view flag;  // "" when the setting has no flag (secrets)
  std::string_view section;
  std::string_view default_value;  // as it would be written in the env file
  std::string_view allowed;        // human text of what is allowed
  std::string_view help;           // one line
  ValueKind kind = ValueKind::text;
  bool secret = false;    // no flag, masked everywhere, has a *_FILE variant
  bool required = false;  // refused when empty after loading
  // Read once at start: a reload keeps the value in force and names the
  // setting (reload_partial, and --reload's exit code); it applies at the
  // next start. Such a setting has a `field`.
  bool start_only = false;
  double min = 0;  // integer and decimal kinds
  double max = 0;
  bool zero_allowed = false;  // 0 is valid outside [min, max] (e.g. 0 = never)
  std::string_view choices;   // comma-separated, for enumerations
  ApplyFn apply = nullptr;
  // The default shown in docs when it is computed ("min(60, UPDATE_INTERVAL)").
  std::string_view default_doc;
  // How a value as given is shown in an error; null: as it is. (Secrets are
  // never shown; webhook URLs only by origin.)
  std::string (*show)(std::string_view raw) = nullptr;
  // Its member of Settings: every start-only setting has one, and so do the
  // listener's certificate and key (HTTPS goes on or off only at a start).
  SettingField field;
};

std::span<const SettingSpec> settings_table();
const SettingSpec* find_setting(std::string_view env);

// What the setting accepts, in words ("an integer from 10 to 86400").
std::string describe_allowed(const SettingSpec& spec);
// " Start-only: ..." for a start-only setting, else "": its mark in the docs.
std::string start_only_note(const SettingSpec& spec);

// "<ENV>_FILE" for a secret.
std::string file_variant(const SettingSpec& spec);

// Keys of the old agent that are accepted and ignored with one warning.
bool is_ignored_legacy_key(std::string_view key);

}  // namespace pha
