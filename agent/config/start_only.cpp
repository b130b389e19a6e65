#include "agent/config/start_only.hpp"

namespace pha {

namespace {

// The listener serves HTTPS or plain HTTP from its start to its stop: a
// reload may renew its certificate (new files, or new paths) but not turn
// HTTPS on or off.
bool switches_https(const Settings& running, const Settings& next) {
  return running.tls_cert_file.empty() != next.tls_cert_file.empty();
}

// Puts the running value of `spec` back into `next`: the field, and what
// --print-config shows of it (a secret's *_FILE too).
void keep(const SettingSpec& spec, const LoadedConfig& running, LoadedConfig& next) {
  spec.field.copy(running.settings, next.settings);
  const auto restore = [&](const std::string& key) {
    const auto it = running.effective.find(key);
    if (it != running.effective.end()) {
      next.effective[key] = it->second;
    } else {
      next.effective.erase(key);
    }
  };
  restore(std::string(spec.env));
  if (spec.secret) {
    restore(file_variant(spec));
  }
}

}  // namespace

SettledReload keep_start_only(const LoadedConfig& running, LoadedConfig next) {
  SettledReload out;
  const bool https_switch = switches_https(running.settings, next.settings);
  for (const auto& spec : settings_table()) {
    const bool start_only =
        spec.start_only ||
        (https_switch && (spec.env == "TLS_CERT_FILE" || spec.env == "TLS_KEY_FILE"));
    if (!start_only || spec.field.same == nullptr) {
      continue;  // (a start-only row without its field fails the settings table's unit test)
    }
    if (!spec.field.same(running.settings, next.settings)) {
      out.restart_needed.emplace_back(spec.env);
      keep(spec, running, next);
    }
  }
  out.config = std::move(next);
  return out;
}

}  // namespace pha
