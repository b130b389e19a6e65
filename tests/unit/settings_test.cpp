#include <algorithm>

#include <doctest/doctest.h>

#include "agent/config/docs.hpp"
#include "agent/config/loader.hpp"
#include "agent/core/text.hpp"
#include "tests/support/fake_system.hpp"

using namespace pha;

namespace {

// The smallest valid configuration, from the environment.
StringMap minimal_env() {
  return {{"ACCOUNTDB_URL", "https://adb.example:8080"},
          {"ACCOUNTDB_API_KEY", "k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD"},
          {"ACCOUNTDB_NODE_ID", "34"},
          {"PROXMOX_TOKEN_ID", "agent@pve!sync"},
          {"PROXMOX_TOKEN_SECRET", "11111111-2222-3333-4444-555555555555"}};
}

struct Loaded {
  LoadOutcome outcome;
  bool ok() const { return std::holds_alternative<LoadedConfig>(outcome); }
  const LoadedConfig& config() const { return std::get<LoadedConfig>(outcome); }
  const Settings& settings() const { return config().settings; }
  std::vector<std::string> errors() const {
    return ok() ? std::vector<std::string>{} : std::get<ConfigErrors>(outcome).errors;
  }
  std::string all_errors() const {
    std::string s;
    for (const auto& e : errors()) {
      s += e + "\n";
    }
    return s;
  }
  bool has_error(std::string_view prefix) const {
    const auto e = errors();
    return std::any_of(e.begin(), e.end(),
                       [&](const std::string& x) { return x.starts_with(prefix); });
  }
  bool has_warning(std::string_view part) const {
    if (!ok()) {
      return false;
    }
    const auto& w = config().warnings;
    return std::any_of(w.begin(), w.end(),
                       [&](const std::string& x) { return x.find(part) != std::string::npos; });
  }
  const EffectiveValue& effective(const std::string& name) const {
    return config().effective.at(name);
  }
};

Loaded load(const StringMap& env, const StringMap& cli = {}, const std::string& env_file = "",
            test::FakeSystemAccess* access = nullptr) {
  test::FakeSystemAccess fallback;
  auto& fs = access != nullptr ? *access : fallback;
  LoadInput input;
  input.environment = env;
  input.cli = cli;
  if (!env_file.empty()) {
    input.env_file = "test.env";
    fs.files["test.env"] = env_file;
  }
  return Loaded{load_settings(input, fs)};
}

StringMap with(StringMap base, const StringMap& extra) {
  for (const auto& [k, v] : extra) {
    base[k] = v;
  }
  return base;
}

StringMap without(StringMap base, const std::string& key) {
  base.erase(key);
  return base;
}

}  // namespace

TEST_CASE("the minimal configuration loads - with every other setting at its default") {
  auto l = load(minimal_env());
  REQUIRE_MESSAGE(l.ok(), l.all_errors());
  const auto& s = l.settings();
  CHECK(s.proxmox_host.str() == "https://localhost:8006");
  CHECK(s.proxmox_user == "root@pam");
  CHECK(s.proxmox_verify_ssl);
  CHECK(s.node_name.empty());
  CHECK(s.proxmox_discover_hosts);
  CHECK(s.proxmox_timeout == 5);
  CHECK(s.proxmox_connect_timeout == 2);
  CHECK(s.sync_qemu);
  CHECK(s.sync_lxc);
  CHECK(s.vm_details);
  CHECK(s.vm_details_ttl == 3600);
  REQUIRE(s.accountdb_endpoints.size() == 1);
  CHECK(s.accountdb_endpoints[0].url.str() == "https://adb.example:8080");
  CHECK(s.accountdb_node_id == 34);
  CHECK(s.accountdb_timeout == 30);
  CHECK(s.accountdb_strategy == Strategy::priority);
  CHECK(s.update_interval == 300);
  CHECK(s.heartbeat_interval == 60);
  CHECK(s.whitelist_ttl == 300);
  CHECK(s.whitelist_max_stale == 86400);
  CHECK_FALSE(s.create_stopped_vms);
  CHECK(s.mark_missing_vms);
  CHECK(s.missing_after_cycles == 3);
  CHECK(s.full_resync_interval == 3600);
  CHECK(s.cpu_change_threshold == doctest::Approx(5));
  CHECK(s.health_check_interval == 30);
  CHECK(s.circuit_breaker_threshold == 3);
  CHECK(s.circuit_breaker_reset == 60);
  CHECK(s.healthy_threshold == 2);
  CHECK(s.host_cleanup_age == 300);
  CHECK(s.primary_bonus == 50);
  CHECK(s.retry_max_attempts == 3);
  CHECK(s.retry_base_delay == doctest::Approx(1));
  CHECK(s.retry_max_delay == 120);
  CHECK(s.bind_address == "0.0.0.0");
  CHECK(s.port == 8000);
  CHECK_FALSE(s.agent_read_auth);
  CHECK(s.status_history_size == 10);
  CHECK(s.log_level == "info");
  CHECK_FALSE(s.debug);
  CHECK(s.log_format == LogFormat::text);
  // The fake filesystem has no /var/lib/proxmox-host-agent: nothing is persisted, and it says so.
  CHECK(s.state_dir.empty());
  CHECK(l.has_warning("STATE_DIR: /var/lib/proxmox-host-agent is not a writable directory"));
}

TEST_CASE("precedence: default < env file < environment < flag - with the source of each") {
  struct Row {
    bool file, env, cli;
    std::string value, source;
  };
  // A value (UPDATE_INTERVAL) and a boolean (PROXMOX_VERIFY_SSL), every combination of layers.
  const std::vector<Row> rows = {
      {false, false, false, "", "default"}, {true, false, false, "file", "env-file"},
      {false, true, false, "env", "env"},   {true, true, false, "env", "env"},
      {false, false, true, "cli", "cli"},   {true, false, true, "cli", "cli"},
      {false, true, true, "cli", "cli"},    {true, true, true, "cli", "cli"},
  };
  const std::map<std::string, std::string> interval = {
      {"", "300"}, {"file", "20"}, {"env", "30"}, {"cli", "40"}};
  const std::map<std::string, std::string> verify = {
      {"", "true"}, {"file", "false"}, {"env", "true"}, {"cli", "false"}};
  for (const auto& r : rows) {
    CAPTURE(r.value);
    CAPTURE(r.source);
    std::string file;
    StringMap env = minimal_env();
    StringMap cli;
    if (r.file) {
      file = "UPDATE_INTERVAL=20\nPROXMOX_VERIFY_SSL=no\n";
    }
    if (r.env) {
      env["UPDATE_INTERVAL"] = "30";
      env["PROXMOX_VERIFY_SSL"] = "YES";
    }
    if (r.cli) {
      cli["UPDATE_INTERVAL"] = "40";
      cli["PROXMOX_VERIFY_SSL"] = "false";
    }
    auto l = load(env, cli, file);
    REQUIRE_MESSAGE(l.ok(), l.all_errors());
    CHECK(l.effective("UPDATE_INTERVAL").text == interval.at(r.value));
    CHECK(std::to_string(l.settings().update_interval) == interval.at(r.value));
    CHECK(to_string(l.effective("UPDATE_INTERVAL").origin.source) == r.source);
    CHECK(l.effective("PROXMOX_VERIFY_SSL").text == verify.at(r.value));
    CHECK(l.settings().proxmox_verify_ssl == (verify.at(r.value) == "true"));
    CHECK(to_string(l.effective("PROXMOX_VERIFY_SSL").origin.source) == r.source);
  }
}

TEST_CASE("precedence of a secret: default < env file < environment (secrets have no flag)") {
  const auto base = without(minimal_env(), "ACCOUNTDB_API_KEY");
  SUBCASE("nowhere: required") {
    auto l = load(base);
    CHECK(l.has_error("ACCOUNTDB_API_KEY is not set"));
  }
  SUBCASE("env file") {
    auto l = load(base, {}, "ACCOUNTDB_API_KEY=from-file-secret\n");
    REQUIRE(l.ok());
    CHECK(l.settings().accountdb_api_key == "from-file-secret");
    CHECK(l.effective("ACCOUNTDB_API_KEY").origin.source == Source::env_file);
    CHECK(l.effective("ACCOUNTDB_API_KEY").origin.where == "test.env:1");
  }
  SUBCASE("environment over env file") {
    auto l = load(with(base, {{"ACCOUNTDB_API_KEY", "from-env-secret"}}), {},
                  "ACCOUNTDB_API_KEY=from-file-secret\n");
    REQUIRE(l.ok());
    CHECK(l.settings().accountdb_api_key == "from-env-secret");
    CHECK(l.effective("ACCOUNTDB_API_KEY").origin.source == Source::env);
  }
}

TEST_CASE("an empty value does not override a lower layer") {
  auto l = load(with(minimal_env(), {{"UPDATE_INTERVAL", ""}}), {}, "UPDATE_INTERVAL=25\n");
  REQUIRE(l.ok());
  CHECK(l.settings().update_interval == 25);
  CHECK(l.effective("UPDATE_INTERVAL").origin.source == Source::env_file);
}

TEST_CASE("every numeric range boundary: just inside is accepted - just outside is refused") {
  for (const auto& spec : settings_table()) {
    if (spec.kind != ValueKind::integer && spec.kind != ValueKind::decimal) {
      continue;
    }
    const std::string name(spec.env);
    CAPTURE(name);
    const bool integer = spec.kind == ValueKind::integer;
    const double step = integer ? 1 : 0.01;
    auto text = [&](double v) {
      return integer ? std::to_string(static_cast<long long>(v)) : format_decimal(v);
    };
    for (double inside : {spec.min, spec.max}) {
      auto l = load(
          with(minimal_env(),
               {{name, text(inside)},
                {"RETRY_MAX_DELAY", "3600"},
                {"PROXMOX_TIMEOUT", name == "PROXMOX_TIMEOUT" ? text(inside) : "120"},
                {"PROXMOX_CONNECT_TIMEOUT", name == "PROXMOX_CONNECT_TIMEOUT" ? text(inside) : "1"},
                {"HEDGE_DELAY_MAX", name == "HEDGE_DELAY_MAX" ? text(inside) : "60000"},
                {"HEDGE_DELAY_MIN", name == "HEDGE_DELAY_MIN" ? text(inside) : "1"}}));
      CHECK_MESSAGE(l.ok(), text(inside), " ", l.all_errors());
    }
    for (double outside : {spec.min - step, spec.max + step}) {
      if (spec.zero_allowed && outside == 0) {
        continue;
      }
      auto l = load(with(minimal_env(), {{name, text(outside)}}));
      CHECK_MESSAGE(l.has_error(name + "=" + text(outside) + " (from environment): expected "),
                    text(outside));
    }
    auto junk = load(with(minimal_env(), {{name, "12abc"}}));
    CHECK(junk.has_error(name + "=12abc (from environment): expected "));
  }
}

TEST_CASE("integers are strict - decimals only where the table allows them") {
  CHECK(load(with(minimal_env(), {{"UPDATE_INTERVAL", "60s"}})).has_error("UPDATE_INTERVAL=60s"));
  CHECK(load(with(minimal_env(), {{"UPDATE_INTERVAL", "60.5"}})).has_error("UPDATE_INTERVAL=60.5"));
  CHECK(load(with(minimal_env(), {{"UPDATE_INTERVAL", "+60"}})).has_error("UPDATE_INTERVAL=+60"));
  auto l = load(with(minimal_env(), {{"RETRY_BASE_DELAY", "0.05"}}));
  REQUIRE(l.ok());
  CHECK(l.settings().retry_base_delay == doctest::Approx(0.05));
  CHECK(load(with(minimal_env(), {{"RETRY_BASE_DELAY", "nan"}})).has_error("RETRY_BASE_DELAY=nan"));
}

TEST_CASE("0 means never for FULL_RESYNC_INTERVAL - but 1..59 is refused") {
  auto zero = load(with(minimal_env(), {{"FULL_RESYNC_INTERVAL", "0"}}));
  REQUIRE(zero.ok());
  CHECK(zero.settings().full_resync_interval == 0);
  auto l = load(with(minimal_env(), {{"FULL_RESYNC_INTERVAL", "59"}}));
  CHECK(l.has_error(
      "FULL_RESYNC_INTERVAL=59 (from environment): expected 0 or an integer from 60 to 604800"));
}

TEST_CASE("booleans accept true/false/1/0/yes/no/on/off in any case") {
  for (const auto* t : {"true", "TRUE", "1", "yes", "Yes", "on", "ON"}) {
    auto l = load(with(minimal_env(), {{"CREATE_STOPPED_VMS", t}}));
    REQUIRE(l.ok());
    CHECK(l.settings().create_stopped_vms);
    CHECK(l.effective("CREATE_STOPPED_VMS").text == "true");
  }
  for (const auto* f : {"false", "False", "0", "no", "NO", "off", "Off"}) {
    auto l = load(with(minimal_env(), {{"MARK_MISSING_VMS", f}}));
    REQUIRE(l.ok());
    CHECK_FALSE(l.settings().mark_missing_vms);
  }
  auto bad = load(with(minimal_env(), {{"VM_DETAILS", "maybe"}}));
  CHECK(bad.has_error(
      "VM_DETAILS=maybe (from environment): expected true/false, 1/0, yes/no or on/off"));
}

TEST_CASE("enumerations accept any case and report the choices") {
  auto l =
      load(with(minimal_env(), {{"LOG_LEVEL", "WARNING"}, {"ACCOUNTDB_STRATEGY", "Round_Robin"}}));
  REQUIRE(l.ok());
  CHECK(l.settings().log_level == "warning");
  CHECK(l.settings().accountdb_strategy == Strategy::round_robin);
  CHECK(load(with(minimal_env(), {{"LOG_LEVEL", "verbose"}}))
            .has_error("LOG_LEVEL=verbose (from environment): expected one of trace, debug, info, "
                       "warning, error, "
                       "critical"));
  CHECK(load(with(minimal_env(), {{"LOG_FORMAT", "xml"}})).has_error("LOG_FORMAT=xml"));
  CHECK(load(with(minimal_env(), {{"ACCOUNTDB_STRATEGY", "random"}}))
            .has_error("ACCOUNTDB_STRATEGY=random"));
}

TEST_CASE("SYNC_GUEST_TYPES is a non-empty subset of qemu+lxc") {
  auto q = load(with(minimal_env(), {{"SYNC_GUEST_TYPES", "qemu"}}));
  REQUIRE(q.ok());
  CHECK(q.settings().sync_qemu);
  CHECK_FALSE(q.settings().sync_lxc);
  auto both = load(with(minimal_env(), {{"SYNC_GUEST_TYPES", " LXC , qemu "}}));
  REQUIRE(both.ok());
  CHECK(both.effective("SYNC_GUEST_TYPES").text == "qemu,lxc");
  CHECK(load(with(minimal_env(), {{"SYNC_GUEST_TYPES", "qemu,vz"}}))
            .has_error("SYNC_GUEST_TYPES=qemu,vz"));
  CHECK(load(with(minimal_env(), {{"SYNC_GUEST_TYPES", ","}})).has_error("SYNC_GUEST_TYPES=,"));
}

TEST_CASE("PROXMOX_HOST: a URL or host[:port] - https and 8006 by default") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"pve1", "https://pve1:8006"},
      {"pve1:8443", "https://pve1:8443"},
      {"https://10.0.0.5", "https://10.0.0.5:8006"},
      {"HTTPS://pve1.example.com:8006/", "https://pve1.example.com:8006"},
      {"[fd00::5]", "https://[fd00::5]:8006"},
      {"[::1]:8007", "https://[::1]:8007"},
  };
  for (const auto& [in, out] : cases) {
    auto l = load(with(minimal_env(), {{"PROXMOX_HOST", in}}));
    REQUIRE_MESSAGE(l.ok(), in, l.all_errors());
    CHECK(l.settings().proxmox_host.str() == out);
  }
  for (const auto* bad :
       {"ftp://pve1", "pve1:0", "pve1:99999", "pve 1", "user@pve1", "pve1?x=1", "fd00::5"}) {
    CHECK_MESSAGE(load(with(minimal_env(), {{"PROXMOX_HOST", bad}})).has_error("PROXMOX_HOST="),
                  bad);
  }
}

TEST_CASE("PROXMOX_HOSTS: a list of hosts - no duplicates") {
  auto l = load(with(minimal_env(), {{"PROXMOX_HOSTS", "pve2, https://pve3:8443,"}}));
  REQUIRE(l.ok());
  REQUIRE(l.settings().proxmox_hosts.size() == 2);
  CHECK(l.settings().proxmox_hosts[1].str() == "https://pve3:8443");
  CHECK(
      load(with(minimal_env(), {{"PROXMOX_HOSTS", "pve2,pve2:8006"}})).has_error("PROXMOX_HOSTS="));
}

TEST_CASE("ACCOUNTDB_URL: one URL - or endpoints with priority and weight") {
  auto l = load(with(minimal_env(), {{"ACCOUNTDB_URL",
                                      "https://adb1:8080;priority=1;weight=3, https://adb2:8080;"
                                      "priority=1, http://dr:8080/base/;priority=2;weight=0"}}));
  REQUIRE_MESSAGE(l.ok(), l.all_errors());
  const auto& eps = l.settings().accountdb_endpoints;
  REQUIRE(eps.size() == 3);
  CHECK(eps[0].url.str() == "https://adb1:8080");
  CHECK(eps[0].priority == 1);
  CHECK(eps[0].weight == 3);
  CHECK(eps[1].weight == 1);
  CHECK(eps[2].url.str() == "http://dr:8080/base");
  CHECK(eps[2].url.path == "/base");
  CHECK(eps[2].priority == 2);
  CHECK(eps[2].weight == 0);

  auto one = load(with(minimal_env(), {{"ACCOUNTDB_URL", "http://127.0.0.1:5000"}}));
  REQUIRE(one.ok());
  CHECK(one.settings().accountdb_endpoints[0].url.port == 5000);

  for (const auto* bad :
       {"adb1:8080", "https://a;weight=257", "https://a;weight=-1", "https://a;priority=x",
        "https://a;color=red", "https://a;weight=1;weight=2", "https://a, https://a",
        "https://a?api_key=x", " , "}) {
    CHECK_MESSAGE(load(with(minimal_env(), {{"ACCOUNTDB_URL", bad}})).has_error("ACCOUNTDB_URL="),
                  bad);
  }
}

TEST_CASE("PROXMOX_FINGERPRINT: SHA-256 colon hex - several allowed - normalised to upper case") {
  const std::string fp1 =
      "ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:"
      "67:89";
  const std::string fp2(fp1.size(), '0');
  std::string fp2c = fp2;
  for (std::size_t i = 2; i < fp2c.size(); i += 3) {
    fp2c[i] = ':';
  }
  auto l = load(with(minimal_env(), {{"PROXMOX_FINGERPRINT", fp1 + "," + fp2c}}));
  REQUIRE_MESSAGE(l.ok(), l.all_errors());
  REQUIRE(l.settings().proxmox_fingerprints.size() == 2);
  CHECK(l.settings().proxmox_fingerprints[0].starts_with("AB:CD:EF"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_FINGERPRINT", "AB:CD"}}))
            .has_error("PROXMOX_FINGERPRINT=AB:CD"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_FINGERPRINT", fp1.substr(0, 94) + "g"}}))
            .has_error("PROXMOX_FINGERPRINT="));
}

TEST_CASE("user - token id - node name and bind address formats") {
  CHECK(load(with(minimal_env(), {{"PROXMOX_USER", "root"}})).has_error("PROXMOX_USER=root"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_TOKEN_ID", "agent@pve"}}))
            .has_error("PROXMOX_TOKEN_ID=agent@pve"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_TOKEN_ID", "agent!tok"}}))
            .has_error("PROXMOX_TOKEN_ID=agent!tok"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_NODE_NAME", "pve_1"}}))
            .has_error("PROXMOX_NODE_NAME=pve_1"));
  auto auto_name = load(with(minimal_env(), {{"PROXMOX_NODE_NAME", "AUTO"}}));
  REQUIRE(auto_name.ok());
  CHECK(auto_name.settings().node_name.empty());
  auto named = load(with(minimal_env(), {{"PROXMOX_NODE_NAME", "pve-7"}}));
  REQUIRE(named.ok());
  CHECK(named.settings().node_name == "pve-7");
  auto v6 = load(with(minimal_env(), {{"BIND_ADDRESS", "::"}}));
  REQUIRE(v6.ok());
  CHECK(v6.settings().bind_address == "::");
  CHECK(load(with(minimal_env(), {{"BIND_ADDRESS", "localhost"}}))
            .has_error("BIND_ADDRESS=localhost"));
}

TEST_CASE("every required setting is named when it is missing - all at once") {
  auto l = load({});
  CHECK(l.has_error("ACCOUNTDB_URL is not set"));
  CHECK(l.has_error("ACCOUNTDB_API_KEY is not set"));
  CHECK(l.has_error("ACCOUNTDB_NODE_ID is not set"));
  CHECK(l.has_error("PROXMOX_TOKEN_ID is not set: Proxmox credentials are required"));
  CHECK(l.errors().size() == 4);
}

TEST_CASE("several bad settings are all reported") {
  auto l = load(
      with(minimal_env(), {{"UPDATE_INTERVAL", "1"}, {"PORT", "70000"}, {"LOG_LEVEL", "loud"}}));
  CHECK(l.errors().size() == 3);
  CHECK(l.has_error("UPDATE_INTERVAL=1"));
  CHECK(l.has_error("PORT=70000"));
  CHECK(l.has_error("LOG_LEVEL=loud"));
}

TEST_CASE("Proxmox credentials: a token with its secret - or a password") {
  const auto no_token = without(without(minimal_env(), "PROXMOX_TOKEN_ID"), "PROXMOX_TOKEN_SECRET");
  auto password = load(with(no_token, {{"PROXMOX_PASSWORD", "hunter2!"}}));
  REQUIRE(password.ok());
  CHECK_FALSE(password.settings().uses_token_auth());
  CHECK(password.settings().proxmox_user == "root@pam");

  auto token = load(minimal_env());
  REQUIRE(token.ok());
  CHECK(token.settings().uses_token_auth());

  CHECK(load(without(minimal_env(), "PROXMOX_TOKEN_SECRET"))
            .has_error("PROXMOX_TOKEN_SECRET is not set"));
  CHECK(load(with(no_token, {{"PROXMOX_TOKEN_SECRET", "s3cr3t-value"}}))
            .has_error("PROXMOX_TOKEN_ID is not set"));
  CHECK(load(no_token).has_error("PROXMOX_TOKEN_ID is not set: Proxmox credentials are required"));
}

TEST_CASE("secrets are masked in errors and in --print-config") {
  const std::string secret = "super-secret-token-value";
  // A secret that is set twice (directly and by file) is an error that must not show it.
  test::FakeSystemAccess fs;
  fs.files["/run/key"] = "other-secret-from-file\n";
  auto l = load(
      with(minimal_env(), {{"ACCOUNTDB_API_KEY", secret}, {"ACCOUNTDB_API_KEY_FILE", "/run/key"}}),
      {}, "", &fs);
  REQUIRE_FALSE(l.ok());
  CHECK(
      l.has_error("ACCOUNTDB_API_KEY=*** (from environment): set either ACCOUNTDB_API_KEY or "
                  "ACCOUNTDB_API_KEY_FILE"));
  CHECK(l.all_errors().find(secret) == std::string::npos);
  CHECK(l.all_errors().find("other-secret-from-file") == std::string::npos);

  // A secret with a line break is refused without being shown.
  auto multi = load(with(minimal_env(), {{"AGENT_API_TOKEN", "line1\nline2"}}));
  CHECK(multi.has_error("AGENT_API_TOKEN=*** (from environment): must be a single line"));
  CHECK(multi.all_errors().find("line1") == std::string::npos);

  auto ok = load(with(minimal_env(), {{"AGENT_API_TOKEN", secret}}));
  REQUIRE(ok.ok());
  const auto json = print_config_json(ok.config());
  const auto dumped = json.dump();
  CHECK(dumped.find(secret) == std::string::npos);
  CHECK(dumped.find(minimal_env().at("ACCOUNTDB_API_KEY")) == std::string::npos);
  CHECK(dumped.find(minimal_env().at("PROXMOX_TOKEN_SECRET")) == std::string::npos);
  CHECK(json["settings"]["AGENT_API_TOKEN"]["value"] == "***");
  CHECK(json["settings"]["ACCOUNTDB_API_KEY"]["value"] == "***");
  CHECK(json["settings"]["PROXMOX_PASSWORD"]["value"] == "");
}

TEST_CASE("--print-config JSON: typed values and the source of every setting") {
  auto l = load(with(minimal_env(), {{"CPU_CHANGE_THRESHOLD", "2.5"}}), {{"PORT", "0"}},
                "VM_DETAILS=off\n");
  REQUIRE(l.ok());
  const auto json = print_config_json(l.config());
  const auto& s = json.at("settings");
  for (const auto& spec : settings_table()) {
    CHECK_MESSAGE(s.contains(std::string(spec.env)), spec.env);
    if (spec.secret) {
      CHECK(s.contains(file_variant(spec)));
    }
  }
  CHECK(s["PORT"]["value"] == 0);
  CHECK(s["PORT"]["source"] == "cli");
  CHECK(s["VM_DETAILS"]["value"] == false);
  CHECK(s["VM_DETAILS"]["source"] == "env-file");
  CHECK(s["CPU_CHANGE_THRESHOLD"]["value"] == 2.5);
  CHECK(s["ACCOUNTDB_NODE_ID"]["value"] == 34);
  CHECK(s["ACCOUNTDB_NODE_ID"]["source"] == "env");
  CHECK(s["UPDATE_INTERVAL"]["source"] == "default");
  CHECK(s["PROXMOX_HOST"]["value"] == "https://localhost:8006");
}

TEST_CASE("*_FILE variants read the secret from a file") {
  test::FakeSystemAccess fs;
  fs.files["/etc/pha/key"] = "key-from-file\n";
  fs.files["/etc/pha/empty"] = "\n";
  const auto base = without(minimal_env(), "ACCOUNTDB_API_KEY");
  auto l = load(with(base, {{"ACCOUNTDB_API_KEY_FILE", "/etc/pha/key"}}), {}, "", &fs);
  REQUIRE_MESSAGE(l.ok(), l.all_errors());
  CHECK(l.settings().accountdb_api_key == "key-from-file");
  CHECK(l.effective("ACCOUNTDB_API_KEY_FILE").text == "/etc/pha/key");
  CHECK(l.effective("ACCOUNTDB_API_KEY").origin.source == Source::env);

  auto from_env_file = load(base, {}, "ACCOUNTDB_API_KEY_FILE=/etc/pha/key\n", &fs);
  REQUIRE(from_env_file.ok());
  CHECK(from_env_file.effective("ACCOUNTDB_API_KEY").origin.source == Source::env_file);

  CHECK(load(with(base, {{"ACCOUNTDB_API_KEY_FILE", "/nope"}}), {}, "", &fs)
            .has_error("ACCOUNTDB_API_KEY_FILE=/nope (from environment): cannot read the secret: "
                       "No such file"));
  CHECK(load(with(base, {{"ACCOUNTDB_API_KEY_FILE", "/etc/pha/empty"}}), {}, "", &fs)
            .has_error(
                "ACCOUNTDB_API_KEY_FILE=/etc/pha/empty (from environment): the file is empty"));
  // Every secret has one.
  fs.files["/etc/pha/pw"] = "pw-from-file";
  fs.files["/etc/pha/tok"] = "tok-from-file";
  auto all = load(
      with(without(without(minimal_env(), "PROXMOX_TOKEN_ID"), "PROXMOX_TOKEN_SECRET"),
           {{"PROXMOX_PASSWORD_FILE", "/etc/pha/pw"}, {"AGENT_API_TOKEN_FILE", "/etc/pha/tok"}}),
      {}, "", &fs);
  REQUIRE_MESSAGE(all.ok(), all.all_errors());
  CHECK(all.settings().proxmox_password == "pw-from-file");
  CHECK(all.settings().agent_api_token == "tok-from-file");
}

TEST_CASE("DEBUG=true means LOG_LEVEL=debug unless LOG_LEVEL is set") {
  auto d = load(with(minimal_env(), {{"DEBUG", "true"}}));
  REQUIRE(d.ok());
  CHECK(d.settings().log_level == "debug");
  CHECK(d.effective("LOG_LEVEL").origin.source == Source::env);
  auto explicit_level = load(with(minimal_env(), {{"DEBUG", "true"}, {"LOG_LEVEL", "error"}}));
  REQUIRE(explicit_level.ok());
  CHECK(explicit_level.settings().log_level == "error");
  auto cli = load(minimal_env(), {{"DEBUG", "true"}});
  REQUIRE(cli.ok());
  CHECK(cli.settings().log_level == "debug");
}

TEST_CASE("HEARTBEAT_INTERVAL defaults to min(60 - UPDATE_INTERVAL)") {
  auto fast = load(with(minimal_env(), {{"UPDATE_INTERVAL", "30"}}));
  REQUIRE(fast.ok());
  CHECK(fast.settings().heartbeat_interval == 30);
  CHECK(fast.effective("HEARTBEAT_INTERVAL").text == "30");
  auto slow = load(with(minimal_env(), {{"UPDATE_INTERVAL", "600"}}));
  REQUIRE(slow.ok());
  CHECK(slow.settings().heartbeat_interval == 60);
  auto set = load(with(minimal_env(), {{"UPDATE_INTERVAL", "30"}, {"HEARTBEAT_INTERVAL", "120"}}));
  REQUIRE(set.ok());
  CHECK(set.settings().heartbeat_interval == 120);
}

TEST_CASE("settings that only make sense together") {
  test::FakeSystemAccess fs;
  fs.files["/tls/cert.pem"] = "cert";
  fs.certificates["/tls/cert.pem"] = 1;
  CHECK(load(with(minimal_env(), {{"TLS_CERT_FILE", "/tls/cert.pem"}}), {}, "", &fs)
            .has_error("TLS_KEY_FILE is not set: TLS_CERT_FILE is set"));
  CHECK(load(with(minimal_env(), {{"AGENT_READ_AUTH", "true"}}))
            .has_error("AGENT_READ_TOKEN is not set: AGENT_READ_AUTH=true"));
  auto control_reads = load(
      with(minimal_env(), {{"AGENT_READ_AUTH", "true"}, {"AGENT_API_TOKEN", "control-token-1"}}));
  REQUIRE(control_reads.ok());
  CHECK(control_reads.has_warning("AGENT_READ_AUTH=true without AGENT_READ_TOKEN"));
  auto same = load(with(minimal_env(), {{"AGENT_READ_TOKEN", "one-token-for-all"},
                                        {"AGENT_API_TOKEN", "one-token-for-all"}}));
  CHECK(same.has_error("AGENT_READ_TOKEN=*** (from environment): is the same as AGENT_API_TOKEN"));
  CHECK(load(with(minimal_env(),
                  {{"AGENT_OPEN_CUSTOMER_DATA", "true"}, {"AGENT_READ_TOKEN", "read-token-1"}}))
            .has_error("AGENT_OPEN_CUSTOMER_DATA=true (from environment): opens what "
                       "AGENT_READ_TOKEN guards"));
  auto open = load(with(minimal_env(), {{"AGENT_OPEN_CUSTOMER_DATA", "true"}}));
  REQUIRE(open.ok());
  CHECK(open.has_warning("AGENT_OPEN_CUSTOMER_DATA=true: /vms, /vms/{vmid} and /config answer"));
  CHECK(load(with(minimal_env(), {{"RETRY_BASE_DELAY", "10"}, {"RETRY_MAX_DELAY", "5"}}))
            .has_error(
                "RETRY_BASE_DELAY=10 (from environment): must not exceed RETRY_MAX_DELAY (5)"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_CONNECT_TIMEOUT", "10"}, {"PROXMOX_TIMEOUT", "5"}}))
            .has_error("PROXMOX_CONNECT_TIMEOUT=10 (from environment): must not exceed "
                       "PROXMOX_TIMEOUT (5)"));
  auto insecure = load(with(minimal_env(), {{"PROXMOX_VERIFY_SSL", "false"}}));
  REQUIRE(insecure.ok());
  CHECK(insecure.has_warning("PROXMOX_VERIFY_SSL=false: the Proxmox certificate is not verified"));
}

TEST_CASE("files: the CA bundle - the HTTPS certificate and key - the state directory") {
  test::FakeSystemAccess fs;
  fs.files["/ca.pem"] = "x";
  fs.certificates["/ca.pem"] = 2;
  fs.files["/empty.pem"] = "x";
  fs.files["/cert.pem"] = "x";
  fs.certificates["/cert.pem"] = 1;
  fs.files["/key.pem"] = "x";
  fs.private_keys.insert("/key.pem");
  fs.writable_dirs.insert("/state");
  auto good = load(with(minimal_env(), {{"PROXMOX_CA_FILE", "/ca.pem"},
                                        {"TLS_CERT_FILE", "/cert.pem"},
                                        {"TLS_KEY_FILE", "/key.pem"},
                                        {"STATE_DIR", "/state"}}),
                   {}, "", &fs);
  REQUIRE_MESSAGE(good.ok(), good.all_errors());
  CHECK(good.settings().state_dir == "/state");
  CHECK(load(with(minimal_env(), {{"PROXMOX_CA_FILE", "/missing.pem"}}), {}, "", &fs)
            .has_error(
                "PROXMOX_CA_FILE=/missing.pem (from environment): cannot read it: No such file"));
  CHECK(load(with(minimal_env(), {{"PROXMOX_CA_FILE", "/empty.pem"}}), {}, "", &fs)
            .has_error("PROXMOX_CA_FILE=/empty.pem (from environment): holds no PEM certificate"));
  CHECK(load(with(minimal_env(), {{"TLS_CERT_FILE", "/cert.pem"}, {"TLS_KEY_FILE", "/cert.pem"}}),
             {}, "", &fs)
            .has_error("TLS_KEY_FILE=/cert.pem (from environment): holds no PEM private key"));
  // A configured state directory that is missing or read-only: a warning, and
  // the agent runs without persistence.
  auto no_state = load(with(minimal_env(), {{"STATE_DIR", "/nope"}}), {}, "", &fs);
  REQUIRE_MESSAGE(no_state.ok(), no_state.all_errors());
  CHECK(no_state.has_warning(
      "STATE_DIR: /nope (from environment) is not a writable directory, so nothing is persisted"));
  CHECK(no_state.has_warning("create it or make it writable for this user"));
  CHECK(no_state.settings().state_dir.empty());
  fs.writable_dirs.insert("/var/lib/proxmox-host-agent");
  auto packaged = load(minimal_env(), {}, "", &fs);
  REQUIRE(packaged.ok());
  CHECK(packaged.settings().state_dir == "/var/lib/proxmox-host-agent");
}

TEST_CASE("unknown keys in the env file warn - the old agent's log forwarding keys warn once") {
  auto l = load(minimal_env(), {},
                "UPDTE_INTERVAL=60\nLOG_FORWARDING_ENABLED=true\nLOG_FORWARDING_URL=http://"
                "x\nLOG_BATCH_SIZE=10\n");
  REQUIRE(l.ok());
  CHECK(l.has_warning("test.env:1: unknown setting UPDTE_INTERVAL is ignored"));
  CHECK(l.has_warning("LOG_FORWARDING_ENABLED (test.env:2) is a setting of the old agent"));
  CHECK(l.has_warning("LOG_BATCH_SIZE (test.env:4)"));
  // Unrelated variables of the process environment are not the agent's business.
  auto env = load(with(minimal_env(), {{"HOME", "/root"}, {"LOG_FLUSH_INTERVAL", "5"}}));
  REQUIRE(env.ok());
  CHECK_FALSE(env.has_warning("HOME"));
  CHECK(env.has_warning("LOG_FLUSH_INTERVAL (environment)"));
  // The same legacy key in the file and the environment: one warning.
  auto twice = load(with(minimal_env(), {{"LOG_BATCH_SIZE", "5"}}), {}, "LOG_BATCH_SIZE=10\n");
  REQUIRE(twice.ok());
  const auto& w = twice.config().warnings;
  CHECK(std::count_if(w.begin(), w.end(),
                      [](const std::string& x) { return x.starts_with("LOG_BATCH_SIZE"); }) == 1);
}

TEST_CASE("a malformed env file is a config error with its line number") {
  auto l = load(minimal_env(), {}, "A=1\nthis is wrong\n");
  REQUIRE_FALSE(l.ok());
  CHECK(l.errors().at(0) == "test.env:2: expected KEY=value");
}

TEST_CASE("errors say where the value came from") {
  auto file = load(minimal_env(), {}, "\nPORT=abc\n");
  CHECK(file.has_error("PORT=abc (from test.env:2): expected an integer from 0 to 65535"));
  auto cli = load(minimal_env(), {{"PORT", "-1"}});
  CHECK(cli.has_error("PORT=-1 (from --port): expected an integer from 0 to 65535"));
}

TEST_CASE("the proxmox-only scope of --list-guests does not require the AccountDB settings") {
  LayeredSettings layered;
  layered.values["PROXMOX_TOKEN_ID"] = {"agent@pve!sync", {Source::env, "environment"}};
  layered.values["PROXMOX_TOKEN_SECRET"] = {"secret-value", {Source::env, "environment"}};
  test::FakeSystemAccess fs;
  auto proxmox_only = validate_settings(layered, fs, Scope::proxmox_only);
  CHECK(std::holds_alternative<LoadedConfig>(proxmox_only));
  auto agent = validate_settings(layered, fs, Scope::agent);
  REQUIRE(std::holds_alternative<ConfigErrors>(agent));
  CHECK(std::get<ConfigErrors>(agent).errors.size() == 3);
  // The Proxmox credentials stay required, and a bad AccountDB value is still an error.
  layered.values.erase("PROXMOX_TOKEN_SECRET");
  layered.values["ACCOUNTDB_NODE_ID"] = {"zero", {Source::env, "environment"}};
  auto bad = validate_settings(layered, fs, Scope::proxmox_only);
  REQUIRE(std::holds_alternative<ConfigErrors>(bad));
  CHECK(std::get<ConfigErrors>(bad).errors.size() == 2);
}

TEST_CASE("WEBHOOK_URLS: http or https URLs - shown by origin only - no duplicates") {
  auto l = load(with(minimal_env(), {{"WEBHOOK_URLS",
                                      "https://hooks.example/services/T0/SECRET, "
                                      "http://10.0.0.9:9000/hook?key=abc"}}));
  REQUIRE(l.ok());
  const auto& urls = l.settings().webhook_urls;
  REQUIRE(urls.size() == 2);
  CHECK(urls[0] == "https://hooks.example:443/services/T0/SECRET");
  CHECK(urls[1] == "http://10.0.0.9:9000/hook?key=abc");
  CHECK(l.effective("WEBHOOK_URLS").text ==
        "https://hooks.example:443/...,http://10.0.0.9:9000/...");
  const auto dumped = print_config_json(l.config()).dump();
  CHECK(dumped.find("T0/SECRET") == std::string::npos);
  CHECK(dumped.find("key=abc") == std::string::npos);

  CHECK(load(with(minimal_env(), {{"WEBHOOK_URLS", "ftp://h/x"}})).has_error("WEBHOOK_URLS="));
  auto userinfo = load(with(minimal_env(), {{"WEBHOOK_URLS", "https://u:pw@h/x"}}));
  CHECK(userinfo.has_error("WEBHOOK_URLS="));
  CHECK(userinfo.all_errors().find("pw@") == std::string::npos);
  auto bad = load(with(minimal_env(), {{"WEBHOOK_URLS", "https://h/T0/SECRET,ftp://x"}}));
  CHECK(bad.has_error("WEBHOOK_URLS=https://h/...,ftp://x (from environment)"));
  CHECK(bad.all_errors().find("T0/SECRET") == std::string::npos);
  CHECK(load(with(minimal_env(), {{"WEBHOOK_URLS", "https://h/x,https://h:443/x"}}))
            .has_error("WEBHOOK_URLS="));
  CHECK(load(minimal_env()).settings().webhook_urls.empty());
}

TEST_CASE("WEBHOOK_EVENTS: a non-empty subset of the known events in any case") {
  auto all = load(minimal_env());
  REQUIRE(all.ok());
  CHECK(all.settings().webhook_events.size() == kWebhookEventNames.size());
  auto some = load(with(minimal_env(), {{"WEBHOOK_EVENTS", "Sync_Failed, failover"}}));
  REQUIRE(some.ok());
  CHECK(some.settings().webhook_events == std::vector<std::string>{"failover", "sync_failed"});
  CHECK(load(with(minimal_env(), {{"WEBHOOK_EVENTS", "failover,reboot"}}))
            .has_error(
                "WEBHOOK_EVENTS=failover,reboot (from environment): 'reboot' is not an event"));
  CHECK(load(with(minimal_env(), {{"WEBHOOK_EVENTS", " , "}})).has_error("WEBHOOK_EVENTS="));
}

TEST_CASE("WEBHOOK_URLS: the agent's own HTTP API is refused - it would loop") {
  auto own = load(with(minimal_env(), {{"WEBHOOK_URLS", "http://127.0.0.1:8000/hook"}}));
  CHECK(own.has_error(
      "WEBHOOK_URLS=http://127.0.0.1:8000/... (from environment): is the agent's own"));
  auto other_port = load(with(minimal_env(), {{"WEBHOOK_URLS", "http://127.0.0.1:9000/hook"}}));
  CHECK(other_port.ok());
  auto moved = load(with(minimal_env(), {{"WEBHOOK_URLS", "http://localhost:9000/hook"}}),
                    {{"PORT", "9000"}});
  CHECK(moved.has_error("WEBHOOK_URLS="));
}

TEST_CASE("WEBHOOK_TOKEN is a secret - with a file variant - and masked") {
  test::FakeSystemAccess fs;
  fs.files["/run/hook"] = "hook-secret-from-file\n";
  auto l = load(with(minimal_env(), {{"WEBHOOK_TOKEN_FILE", "/run/hook"}}), {}, "", &fs);
  REQUIRE(l.ok());
  CHECK(l.settings().webhook_token == "hook-secret-from-file");
  const auto secrets = l.settings().secrets();
  CHECK(std::find(secrets.begin(), secrets.end(), "hook-secret-from-file") != secrets.end());
  const auto json = print_config_json(l.config());
  CHECK(json["settings"]["WEBHOOK_TOKEN"]["value"] == "***");
  CHECK(json.dump().find("hook-secret-from-file") == std::string::npos);
}
