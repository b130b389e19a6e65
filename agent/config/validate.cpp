// Validation: every bad setting is reported at once, each with its name, where
// it came from, the value (masked when secret) and what is allowed.

#include <algorithm>

#include "agent/config/loader.hpp"
#include "agent/core/text.hpp"

namespace pha {

namespace {

constexpr std::string_view kMask = "***";

class Validator {
 public:
  Validator(const LayeredSettings& layered, SystemAccess& access, Scope scope)
      : layered_(layered), access_(access), scope_(scope) {}

  LoadOutcome run() {
    apply_defaults();
    for (const auto& spec : settings_table()) {
      if (spec.secret) {
        resolve_secret(spec);
      } else if (const auto* raw = find(spec.env)) {
        apply(spec, raw->text, raw->origin);
      }
    }
    check_required();
    derive();
    check_combinations();
    check_files();
    if (!errors_.empty()) {
      return ConfigErrors{std::move(errors_), std::move(missing_required_)};
    }
    out_.warnings.insert(out_.warnings.begin(), layered_.warnings.begin(), layered_.warnings.end());
    return std::move(out_);
  }

 private:
  const RawSetting* find(std::string_view key) const {
    const auto it = layered_.values.find(std::string(key));
    return it == layered_.values.end() ? nullptr : &it->second;
  }

  static std::string shown(const SettingSpec& spec, std::string_view value) {
    if (spec.secret) {
      return std::string(kMask);
    }
    return spec.show != nullptr ? spec.show(value) : std::string(value);
  }

  void error(std::string_view name, std::string_view value, const Origin& origin,
             const std::string& what) {
    errors_.push_back(std::string(name) + "=" + std::string(value) + " (from " + origin.where +
                      "): " + what);
  }

  void apply_defaults() {
    const Origin origin{Source::default_value, "built-in default"};
    for (const auto& spec : settings_table()) {
      auto normal = spec.apply(spec, spec.default_value, out_.settings);
      out_.effective[std::string(spec.env)] = EffectiveValue{
          normal ? *normal : std::string(spec.default_value), &spec, spec.secret, origin};
      if (spec.secret) {
        out_.effective[file_variant(spec)] = EffectiveValue{"", nullptr, false, origin};
      }
    }
  }

  void apply(const SettingSpec& spec, const std::string& raw, const Origin& origin) {
    auto normal = spec.apply(spec, raw, out_.settings);
    if (!normal) {
      error(spec.env, shown(spec, raw), origin, normal.error().message);
      return;
    }
    out_.effective[std::string(spec.env)] = EffectiveValue{*normal, &spec, spec.secret, origin};
  }

  void resolve_secret(const SettingSpec& spec) {
    const auto file_key = file_variant(spec);
    const auto* direct = find(spec.env);
    const auto* file = find(file_key);
    if (direct != nullptr && file != nullptr) {
      // In one place (one file, or the environment) which one is meant would
      // be a guess; from two places the higher one wins, as any setting does
      // (e.g. a systemd credential's *_FILE in the environment over the key
      // in agent.env).
      if (direct->origin.rank == file->origin.rank) {
        error(spec.env, kMask, direct->origin,
              "set either " + std::string(spec.env) + " or " + file_key + " (from " +
                  file->origin.where + "), not both");
        return;
      }
      (direct->origin.rank > file->origin.rank ? file : direct) = nullptr;
    }
    if (direct != nullptr) {
      apply(spec, direct->text, direct->origin);
      return;
    }
    if (file == nullptr) {
      return;
    }
    out_.effective[file_key] = EffectiveValue{file->text, nullptr, false, file->origin};
    auto content = access_.read_file(file->text);
    if (!content) {
      error(file_key, file->text, file->origin,
            "cannot read the secret: " + content.error().message);
      return;
    }
    // A trailing newline is how editors and `echo` write files, not part of the secret.
    std::string secret = *content;
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
      secret.pop_back();
    }
    if (secret.empty()) {
      error(file_key, file->text, file->origin, "the file is empty");
      return;
    }
    auto normal = spec.apply(spec, secret, out_.settings);
    if (!normal) {
      error(file_key, file->text, file->origin, "the secret in it " + normal.error().message);
      return;
    }
    out_.effective[std::string(spec.env)] = EffectiveValue{*normal, &spec, true, file->origin};
  }

  void missing(std::string_view name, const std::string& what) {
    errors_.push_back(std::string(name) + " is not set: " + what);
  }
  // A setting the node cannot run without: --check-required names `listed`.
  void missing_required(std::string_view name, const std::string& what, std::string listed) {
    missing(name, what);
    missing_required_.push_back(std::move(listed));
  }

  void check_required() {
    for (const auto& spec : settings_table()) {
      if (!spec.required || !out_.effective[std::string(spec.env)].text.empty() ||
          failed(spec.env) || (scope_ == Scope::proxmox_only && spec.section == "AccountDB")) {
        continue;
      }
      std::string how = "it is required; set it in the env file or the environment";
      if (!spec.flag.empty()) {
        how += ", or with " + std::string(spec.flag);
      }
      if (spec.secret) {
        how += " (or name a file holding it with " + file_variant(spec) + ")";
      }
      missing_required(spec.env, how, std::string(spec.env));
    }
  }

  // Whether an error was already reported for this setting (no second one).
  bool failed(std::string_view name) const {
    return std::any_of(errors_.begin(), errors_.end(), [&](const std::string& e) {
      return e.starts_with(std::string(name) + "=") || e.starts_with(std::string(name) + "_FILE=");
    });
  }

  void derive() {
    auto& s = out_.settings;
    auto& level = out_.effective["LOG_LEVEL"];
    if (s.debug && level.origin.source == Source::default_value) {
      s.log_level = "debug";
      level.text = "debug";
      level.origin = out_.effective["DEBUG"].origin;
    }
    auto& heartbeat = out_.effective["HEARTBEAT_INTERVAL"];
    if (heartbeat.origin.source == Source::default_value) {
      s.heartbeat_interval = std::clamp(s.update_interval, 5, 60);
      heartbeat.text = std::to_string(s.heartbeat_interval);
    }
  }

  const Origin& origin_of(std::string_view name) {
    return out_.effective[std::string(name)].origin;
  }

  void check_combinations() {
    check_credentials();
    check_pairs();
    warn_unverified();
  }

  // Proxmox: a token with its secret, or a user with a password.
  void check_credentials() {
    const auto& s = out_.settings;
    if (!s.proxmox_token_id.empty()) {
      if (s.proxmox_token_secret.empty() && !failed("PROXMOX_TOKEN_SECRET")) {
        missing_required("PROXMOX_TOKEN_SECRET",
                         "PROXMOX_TOKEN_ID is set (from " + origin_of("PROXMOX_TOKEN_ID").where +
                             "), so its secret is required (or PROXMOX_TOKEN_SECRET_FILE)",
                         "PROXMOX_TOKEN_SECRET");
      }
    } else if (!s.proxmox_token_secret.empty()) {
      missing("PROXMOX_TOKEN_ID",
              "PROXMOX_TOKEN_SECRET is set (from " + origin_of("PROXMOX_TOKEN_SECRET").where +
                  ") but the token id it belongs to (user@realm!tokenname) is not");
    } else if (s.proxmox_password.empty() && !failed("PROXMOX_PASSWORD") &&
               !failed("PROXMOX_TOKEN_ID")) {
      missing_required("PROXMOX_TOKEN_ID",
                       "Proxmox credentials are required: PROXMOX_TOKEN_ID and "
                       "PROXMOX_TOKEN_SECRET (preferred), or PROXMOX_USER and PROXMOX_PASSWORD",
                       "PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET (or PROXMOX_PASSWORD)");
    }
  }

  // Settings that are only right together.
  void check_pairs() {
    const auto& s = out_.settings;
    if (s.tls_cert_file.empty() != s.tls_key_file.empty()) {
      const bool cert = !s.tls_cert_file.empty();
      missing(
          cert ? "TLS_KEY_FILE" : "TLS_CERT_FILE",
          std::string(cert ? "TLS_CERT_FILE" : "TLS_KEY_FILE") + " is set, and HTTPS needs both");
    }
    check_tokens();
    for (const auto& url : s.webhook_urls) {
      if (webhook_loops_back(url, s.bind_address, s.port)) {
        error("WEBHOOK_URLS", url_display(url), origin_of("WEBHOOK_URLS"),
              "is the agent's own HTTP API (BIND_ADDRESS " + s.bind_address + ", PORT " +
                  std::to_string(s.port) + "): its events would loop back to it");
      }
    }
    if (s.retry_base_delay > s.retry_max_delay) {
      error("RETRY_BASE_DELAY", format_decimal(s.retry_base_delay), origin_of("RETRY_BASE_DELAY"),
            "must not exceed RETRY_MAX_DELAY (" + std::to_string(s.retry_max_delay) + ")");
    }
    if (s.hedge_delay_min > s.hedge_delay_max) {
      error("HEDGE_DELAY_MIN", std::to_string(s.hedge_delay_min), origin_of("HEDGE_DELAY_MIN"),
            "must not exceed HEDGE_DELAY_MAX (" + std::to_string(s.hedge_delay_max) + ")");
    }
    if (s.proxmox_connect_timeout > s.proxmox_timeout) {
      error("PROXMOX_CONNECT_TIMEOUT", std::to_string(s.proxmox_connect_timeout),
            origin_of("PROXMOX_CONNECT_TIMEOUT"),
            "must not exceed PROXMOX_TIMEOUT (" + std::to_string(s.proxmox_timeout) +
                "), the whole request's limit");
    }
  }

  // The read and control tokens (docs/http-api.md "Authorisation").
  void check_tokens() {
    const auto& s = out_.settings;
    if (s.agent_read_auth && s.agent_read_token.empty() && s.agent_api_token.empty() &&
        !failed("AGENT_READ_TOKEN") && !failed("AGENT_API_TOKEN")) {
      missing("AGENT_READ_TOKEN", "AGENT_READ_AUTH=true (from " +
                                      origin_of("AGENT_READ_AUTH").where +
                                      ") needs a token to check (or AGENT_READ_TOKEN_FILE)");
    }
    if (!s.agent_read_token.empty() && s.agent_read_token == s.agent_api_token) {
      error("AGENT_READ_TOKEN", "***", origin_of("AGENT_READ_TOKEN"),
            "is the same as AGENT_API_TOKEN: whoever reads could control; use two tokens");
    }
    if (s.agent_open_customer_data && (s.agent_read_auth || !s.agent_read_token.empty())) {
      const char* other = s.agent_read_auth ? "AGENT_READ_AUTH=true" : "AGENT_READ_TOKEN";
      error("AGENT_OPEN_CUSTOMER_DATA", "true", origin_of("AGENT_OPEN_CUSTOMER_DATA"),
            std::string("opens what ") + other + " guards: set one or the other");
    }
    if (s.agent_open_customer_data) {
      out_.warnings.emplace_back(
          "AGENT_OPEN_CUSTOMER_DATA=true: /vms, /vms/{vmid} and /config answer every client "
          "without a token, guest names and notes included, as 0.2.0 did; set AGENT_READ_TOKEN "
          "instead");
    } else if (s.agent_read_auth && s.agent_read_token.empty()) {
      out_.warnings.emplace_back(
          "AGENT_READ_AUTH=true without AGENT_READ_TOKEN: readers (Prometheus, the page) need "
          "AGENT_API_TOKEN, which also controls the agent; give them AGENT_READ_TOKEN instead");
    }
  }

  void warn_unverified() {
    const auto& s = out_.settings;
    if (!s.proxmox_verify_ssl) {
      if (!s.proxmox_fingerprints.empty()) {
        out_.warnings.emplace_back(
            "PROXMOX_FINGERPRINT is set, so the Proxmox certificate is pinned and "
            "PROXMOX_VERIFY_SSL=false is "
            "ignored");
      } else {
        out_.warnings.emplace_back(
            "PROXMOX_VERIFY_SSL=false: the Proxmox certificate is not verified, and anyone on the "
            "path can read the "
            "credentials; set PROXMOX_CA_FILE (e.g. a copy of /etc/pve/pve-root-ca.pem) or "
            "PROXMOX_FINGERPRINT "
            "instead");
      }
    }
  }

  void check_pem(std::string_view name, const std::string& path, bool key) {
    if (path.empty() || failed(name)) {
      return;
    }
    const auto& origin = origin_of(name);
    if (key) {
      auto ok = access_.has_pem_private_key(path);
      if (!ok) {
        error(name, path, origin, "cannot read it: " + ok.error().message);
      } else if (!*ok) {
        error(name, path, origin, "holds no PEM private key");
      }
      return;
    }
    auto count = access_.count_pem_certificates(path);
    if (!count) {
      error(name, path, origin, "cannot read it: " + count.error().message);
    } else if (*count == 0) {
      error(name, path, origin, "holds no PEM certificate");
    }
  }

  void check_files() {
    auto& s = out_.settings;
    check_pem("PROXMOX_CA_FILE", s.proxmox_ca_file, false);
    check_pem("TLS_CERT_FILE", s.tls_cert_file, false);
    check_pem("TLS_KEY_FILE", s.tls_key_file, true);
    auto& state = out_.effective["STATE_DIR"];
    // The state files are a cache (docs/sync.md "State files"): without them the agent
    // still syncs correctly, so a state directory that is missing or read-only
    // is a warning, configured or not, never a reason to stop syncing.
    if (!s.state_dir.empty() && !access_.is_writable_dir(s.state_dir)) {
      const bool configured = state.origin.source != Source::default_value;
      out_.warnings.push_back(
          "STATE_DIR: " + s.state_dir + (configured ? " (from " + state.origin.where + ")" : "") +
          " is not a writable directory, so nothing is persisted (whitelist cache, sync state, "
          "failover events); " +
          (configured ? "create it or make it writable for this user"
                      : "set STATE_DIR to a writable directory") +
          " to keep them across restarts");
      s.state_dir.clear();
      state.text.clear();
    }
  }

  const LayeredSettings& layered_;
  SystemAccess& access_;
  Scope scope_;
  LoadedConfig out_;
  std::vector<std::string> errors_;
  std::vector<std::string> missing_required_;
};

}  // namespace

LoadOutcome validate_settings(const LayeredSettings& layered, SystemAccess& access, Scope scope) {
  return Validator(layered, access, scope).run();
}

}  // namespace pha
