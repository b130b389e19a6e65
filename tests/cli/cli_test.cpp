// The real binary, started as a process: usage, exit codes, config errors,
// the config modes, and signals.

#include <csignal>
#include <filesystem>
#include <sstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "tests/support/process.hpp"

using namespace pha::test;
using Env = std::map<std::string, std::string>;

namespace {

const std::string kBinary = PHA_AGENT_BINARY;
constexpr int kExitConfig = 78;
const std::string kApiKey = "Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";

Env good_env(const TempDir& dir) {
  return {{"ACCOUNTDB_URL", "http://127.0.0.1:9/"},
          {"ACCOUNTDB_API_KEY", kApiKey},
          {"ACCOUNTDB_NODE_ID", "34"},
          {"PROXMOX_TOKEN_ID", "agent@pve!sync"},
          {"PROXMOX_TOKEN_SECRET", "11111111-2222-3333-4444-555555555555"},
          {"STATE_DIR", dir.path()},
          {"PORT", "0"},  // tests run in parallel: never the fixed default port
          {"BIND_ADDRESS", "127.0.0.1"},
          {"PATH", "/usr/bin:/bin"}};
}

ProcessResult run(const Env& env, std::vector<std::string> args, const std::string& cwd = "") {
  return run_process(kBinary, {std::move(args), env, cwd});
}

Env with(Env env, const Env& extra) {
  for (const auto& [k, v] : extra) {
    env[k] = v;
  }
  return env;
}

Env without(Env env, const std::string& key) {
  env.erase(key);
  return env;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("--help lists the flags of the settings with their environment names") {
  TempDir dir;
  auto r = run({}, {"--help"}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "--update-interval"));
  CHECK(contains(r.out, "UPDATE_INTERVAL"));
  CHECK(contains(r.out, "--no-proxmox-verify-ssl"));
  CHECK(contains(r.out, "--check-config"));
  CHECK(contains(r.out, "--env-file"));
  // Secrets have no flag.
  CHECK_FALSE(contains(r.out, "--accountdb-api-key"));
  CHECK_FALSE(contains(r.out, "--proxmox-password"));
}

TEST_CASE("--version") {
  auto r = run({}, {"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.starts_with("proxmox-host-agent "));
  CHECK(r.out.find_first_of("0123456789") != std::string::npos);
}

TEST_CASE("wrong usage exits 2") {
  TempDir dir;
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--no-such-flag"},
                                             {"positional"},
                                             {"--update-interval"},
                                             {"--check-config", "--print-config"},
                                             {"--check-required", "--check-config"},
                                             {"--check-required", "--once"},
                                             {"--accountdb-api-key", "x"}}) {
    CAPTURE(args.front());
    auto r = run(good_env(dir), args, dir.path());
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "--help"));
  }
}

TEST_CASE("--check-config on a good configuration prints 'config OK'") {
  TempDir dir;
  auto r = run(good_env(dir), {"--check-config"}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(r.out == "config OK\nread: no env file\n");
}

TEST_CASE("each configuration error exits 78 and names the setting") {
  TempDir dir;
  const auto base = good_env(dir);
  struct Case {
    Env env;
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {without(base, "ACCOUNTDB_URL"), {}, "ACCOUNTDB_URL is not set"},
      {without(base, "ACCOUNTDB_API_KEY"), {}, "ACCOUNTDB_API_KEY is not set"},
      {without(base, "ACCOUNTDB_NODE_ID"), {}, "ACCOUNTDB_NODE_ID is not set"},
      {without(without(base, "PROXMOX_TOKEN_ID"), "PROXMOX_TOKEN_SECRET"),
       {},
       "PROXMOX_TOKEN_ID is not set"},
      {without(base, "PROXMOX_TOKEN_SECRET"), {}, "PROXMOX_TOKEN_SECRET is not set"},
      {with(base, {{"ACCOUNTDB_NODE_ID", "0"}}), {}, "ACCOUNTDB_NODE_ID=0 (from environment)"},
      {with(base, {{"ACCOUNTDB_URL", "adb:8080"}}),
       {},
       "ACCOUNTDB_URL=adb:8080 (from environment)"},
      {with(base, {{"UPDATE_INTERVAL", "9"}}), {}, "UPDATE_INTERVAL=9 (from environment)"},
      {base, {"--update-interval", "86401"}, "UPDATE_INTERVAL=86401 (from --update-interval)"},
      {with(base, {{"PROXMOX_VERIFY_SSL", "perhaps"}}), {}, "PROXMOX_VERIFY_SSL=perhaps"},
      {with(base, {{"ACCOUNTDB_STRATEGY", "fastest"}}), {}, "ACCOUNTDB_STRATEGY=fastest"},
      {with(base, {{"BIND_ADDRESS", "example.com"}}), {}, "BIND_ADDRESS=example.com"},
      {with(base, {{"PROXMOX_CA_FILE", dir.path() + "/missing.pem"}}), {}, "PROXMOX_CA_FILE="},
      {with(base, {{"TLS_CERT_FILE", "/etc/hostname"}}), {}, "TLS_KEY_FILE is not set"},
      {without(base, "ACCOUNTDB_API_KEY"), {"--env-file", dir.path() + "/nope.env"}, "--env-file"},
      {with(without(base, "ACCOUNTDB_API_KEY"),
            {{"ACCOUNTDB_API_KEY_FILE", dir.path() + "/nokey"}}),
       {},
       "ACCOUNTDB_API_KEY_FILE="},
  };
  for (const auto& c : cases) {
    CAPTURE(c.expected);
    auto r = run(c.env, c.args, dir.path());
    CHECK(r.exit_code == kExitConfig);
    CHECK(contains(r.err, c.expected));
    CHECK(r.out.empty());
    CHECK_FALSE(contains(r.err, kApiKey));
  }
}

TEST_CASE("--check-config: a missing STATE_DIR is a warning and the config is OK") {
  TempDir dir;
  auto r = run(with(good_env(dir), {{"STATE_DIR", dir.path() + "/missing"}}), {"--check-config"},
               dir.path());
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "config OK"));
  CHECK(contains(r.out + r.err, "STATE_DIR: " + dir.path() + "/missing (from environment)"));
  CHECK(contains(r.out + r.err, "nothing is persisted"));
}

TEST_CASE("--check-config reports every error at once - with exit 78") {
  TempDir dir;
  auto r =
      run(with(good_env(dir), {{"UPDATE_INTERVAL", "1"}, {"PORT", "x"}, {"LOG_FORMAT", "xml"}}),
          {"--check-config"}, dir.path());
  CHECK(r.exit_code == kExitConfig);
  CHECK(contains(r.err, "UPDATE_INTERVAL=1"));
  CHECK(contains(r.err, "PORT=x"));
  CHECK(contains(r.err, "LOG_FORMAT=xml"));
  CHECK_FALSE(contains(r.out, "config OK"));
}

TEST_CASE("a malformed env file line is reported with its number") {
  TempDir dir;
  const auto file = dir.write("agent.env", "# settings\nUPDATE_INTERVAL=60\nthis line is broken\n");
  auto r = run(good_env(dir), {"--env-file", file, "--check-config"}, dir.path());
  CHECK(r.exit_code == kExitConfig);
  CHECK(contains(r.err, file + ":3: expected KEY=value"));
}

TEST_CASE("./.env in the working directory is read when there is no --env-file") {
  TempDir dir;
  dir.write(".env", "UPDATE_INTERVAL=45\nACCOUNTDB_API_KEY=from-dot-env-key\n");
  auto r = run(without(good_env(dir), "ACCOUNTDB_API_KEY"), {"--print-config"}, dir.path());
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["settings"]["UPDATE_INTERVAL"]["value"] == 45);
  CHECK(j["settings"]["UPDATE_INTERVAL"]["source"] == "env-file");
  CHECK(j["settings"]["ACCOUNTDB_API_KEY"]["value"] == "***");
  CHECK_FALSE(contains(r.out, "from-dot-env-key"));
}

TEST_CASE("--print-config prints only JSON on stdout - with sources - secrets masked") {
  TempDir dir;
  const auto file =
      dir.write("agent.env", "UPDATE_INTERVAL=60\nPORT=8100\nLOG_FORWARDING_ENABLED=true\n");
  auto r = run(with(good_env(dir), {{"PORT", "8200"}}),
               {"--env-file", file, "--print-config", "--port", "8300"}, dir.path());
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);  // nothing but JSON
  const auto& s = j.at("settings");
  CHECK(s["UPDATE_INTERVAL"] ==
        nlohmann::json({{"value", 60}, {"source", "env-file"}, {"from", file + ":1"}}));
  CHECK(s["PORT"] == nlohmann::json({{"value", 8300}, {"source", "cli"}, {"from", "--port"}}));
  CHECK(s["ACCOUNTDB_NODE_ID"] ==
        nlohmann::json({{"value", 34}, {"source", "env"}, {"from", "environment"}}));
  CHECK(s["HEALTH_CHECK_INTERVAL"] ==
        nlohmann::json({{"value", 30}, {"source", "default"}, {"from", "built-in default"}}));
  CHECK(s["ACCOUNTDB_API_KEY"]["value"] == "***");
  CHECK(s["PROXMOX_TOKEN_SECRET"]["value"] == "***");
  CHECK_FALSE(contains(r.out, kApiKey));
  CHECK_FALSE(contains(r.out, "11111111-2222"));
  // The legacy key is warned about on stderr, not on stdout.
  CHECK(contains(r.err, "LOG_FORWARDING_ENABLED"));
}

TEST_CASE("--print-config names the drop-in and line a value came from") {
  TempDir dir;
  const auto file = dir.write("agent.env", "UPDATE_INTERVAL=60\nWHITELIST_TTL=100\n");
  const auto drop_in = dir.write("agent.env.d/10-node.env", "# this node\nUPDATE_INTERVAL=90\n");
  dir.write("agent.env.d/10-node.env.dpkg-old", "UPDATE_INTERVAL=30\n");
  auto r = run(good_env(dir), {"--env-file", file, "--print-config"}, dir.path());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto s = nlohmann::json::parse(r.out).at("settings");
  CHECK(s["UPDATE_INTERVAL"] ==
        nlohmann::json({{"value", 90}, {"source", "env-file"}, {"from", drop_in + ":2"}}));
  CHECK(s["WHITELIST_TTL"]["from"] == file + ":2");
}

TEST_CASE("--check-config lists the files it read - a broken drop-in is named with its line") {
  TempDir dir;
  const auto file = dir.write("agent.env", "UPDATE_INTERVAL=60\n");
  const auto a = dir.write("agent.env.d/10-a.env", "PORT=0\n");
  const auto b = dir.write("agent.env.d/20-b.env", "WHITELIST_TTL=100\n");
  dir.write("agent.env.d/README", "not read\n");
  auto ok = run(good_env(dir), {"--env-file", file, "--check-config"}, dir.path());
  CHECK(ok.exit_code == 0);
  CHECK(ok.out == "config OK\nread: " + file + ", " + a + ", " + b + "\n");

  dir.write("agent.env.d/20-b.env", "WHITELIST_TTL=100\nthis line is broken\n");
  auto broken = run(good_env(dir), {"--env-file", file, "--check-config"}, dir.path());
  CHECK(broken.exit_code == kExitConfig);
  CHECK(contains(broken.err, b + ":2: expected KEY=value"));
  CHECK_FALSE(contains(broken.out, "config OK"));

  dir.write("agent.env.d/20-b.env", "WHITELIST_TTL=5\n");
  auto invalid = run(good_env(dir), {"--env-file", file, "--check-config"}, dir.path());
  CHECK(invalid.exit_code == kExitConfig);
  CHECK(contains(invalid.err, "WHITELIST_TTL=5 (from " + b + ":1)"));

  // A dangling symlink named like a drop-in is meant to be read: an error naming it.
  std::filesystem::remove(b);
  std::filesystem::create_symlink(dir.path() + "/nowhere.env", b);
  auto dangling = run(good_env(dir), {"--env-file", file, "--check-config"}, dir.path());
  CHECK(dangling.exit_code == kExitConfig);
  CHECK(contains(dangling.err, b + ": cannot read it: No such file or directory"));
}

TEST_CASE("the old Python agent's .env copied unchanged as a drop-in passes --check-config") {
  TempDir dir;
  const auto file = dir.write("agent.env", "# required, set in agent.env.d/\nACCOUNTDB_URL=\n");
  const auto old = dir.write("agent.env.d/50-old-agent.env",
                             "# Proxmox connection\n"
                             "export PROXMOX_HOST=\"https://127.0.0.1:8006\"\n"
                             "PROXMOX_USER=root@pam\n"
                             "PROXMOX_PASSWORD='pa ss#word'\n"
                             "PROXMOX_VERIFY_SSL=false  # self-signed certificate\n"
                             "\n"
                             "# AccountDB\n"
                             "ACCOUNTDB_URL=http://127.0.0.1:9\n"
                             "ACCOUNTDB_API_KEY=\"" +
                                 kApiKey +
                                 "\"\n"
                                 "ACCOUNTDB_NODE_ID=34\n"
                                 "UPDATE_INTERVAL=300\n"
                                 "PORT=8000\n"
                                 "LOG_LEVEL=INFO\n"
                                 "LOG_FORWARDING_ENABLED=true\n"
                                 "LOG_FORWARDING_URL=http://logs.example:514\n"
                                 "LOG_BATCH_SIZE=100\n");
  const Env env = {{"STATE_DIR", dir.path()}, {"PATH", "/usr/bin:/bin"}};
  auto r = run(env, {"--env-file", file, "--check-config"}, dir.path());
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out == "config OK\nread: " + file + ", " + old + "\n");
  CHECK(contains(r.err, "LOG_FORWARDING_ENABLED (" + old + ":14)"));
  CHECK(contains(r.err, "PROXMOX_VERIFY_SSL=false"));
  CHECK_FALSE(contains(r.err, kApiKey));
  CHECK_FALSE(contains(r.err, "pa ss#word"));
}

TEST_CASE("--check-required: exit 1 naming what is missing and where - 0 once it is set") {
  TempDir dir;
  const auto file =
      dir.write("agent.env", "ACCOUNTDB_URL=\nACCOUNTDB_API_KEY=\nACCOUNTDB_NODE_ID=\n");
  const Env bare = {{"STATE_DIR", dir.path()}, {"PATH", "/usr/bin:/bin"}};
  auto fresh = run(bare, {"--env-file", file, "--check-required"}, dir.path());
  CHECK(fresh.exit_code == 1);
  CHECK(fresh.out.empty());
  CHECK(fresh.err ==
        "proxmox-host-agent: not configured yet: set ACCOUNTDB_URL, ACCOUNTDB_API_KEY, "
        "ACCOUNTDB_NODE_ID, PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET (or PROXMOX_PASSWORD) in " +
            file + " or a file in " + file + ".d/\n");

  dir.write("agent.env.d/10-node.env",
            "ACCOUNTDB_URL=http://127.0.0.1:9\nACCOUNTDB_NODE_ID=34\nPROXMOX_TOKEN_ID=a@pve!t\n");
  dir.write("key", kApiKey + "\n");
  auto partly = run(with(bare, {{"ACCOUNTDB_API_KEY_FILE", dir.path() + "/key"}}),
                    {"--env-file", file, "--check-required"}, dir.path());
  CHECK(partly.exit_code == 1);
  CHECK(contains(partly.err, "set PROXMOX_TOKEN_SECRET in " + file));

  auto configured = run(good_env(dir), {"--env-file", file, "--check-required"}, dir.path());
  CHECK(configured.exit_code == 0);
  CHECK(configured.out.empty());
  CHECK(configured.err.empty());
}

TEST_CASE("--check-required: 0 when the settings are there but wrong - the start reports it") {
  TempDir dir;
  const auto file = dir.write("agent.env", "UPDATE_INTERVAL=1\n");
  CHECK(run(good_env(dir), {"--env-file", file, "--check-required"}, dir.path()).exit_code == 0);
  CHECK(run(good_env(dir), {"--env-file", file}, dir.path()).exit_code == kExitConfig);
  // A file that cannot be parsed, even with nothing set: the start must fail visibly.
  dir.write("agent.env", "broken\n");
  const Env bare = {{"PATH", "/usr/bin:/bin"}};
  CHECK(run(bare, {"--env-file", file, "--check-required"}, dir.path()).exit_code == 0);
  // So is a missing --env-file.
  CHECK(run(bare, {"--env-file", file + ".missing", "--check-required"}, dir.path()).exit_code ==
        0);
  // Without an env file it says where settings can come from.
  auto none = run(bare, {"--check-required"}, dir.path());
  CHECK(none.exit_code == 1);
  CHECK(contains(none.err, "in the environment or an env file (--env-file PATH, or ./.env)"));
}

TEST_CASE("--list-guests needs only the Proxmox settings and reports a failed read with exit 1") {
  TempDir dir;
  Env env = {{"PROXMOX_HOST", "127.0.0.1:1"},
             {"PROXMOX_TOKEN_ID", "agent@pve!sync"},
             {"PROXMOX_TOKEN_SECRET", "11111111-2222-3333-4444-555555555555"},
             {"PROXMOX_NODE_NAME", "pve1"},
             {"RETRY_MAX_ATTEMPTS", "1"},
             {"STATE_DIR", dir.path()},
             {"PATH", "/usr/bin:/bin"}};
  auto r = run(env, {"--list-guests"}, dir.path());
  CHECK(r.exit_code == 1);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["status"] == "error");
  CHECK(j["kind"] == "network");
  CHECK(contains(j["message"].get<std::string>(), "/nodes/pve1/qemu"));
  CHECK_FALSE(contains(r.out + r.err, "11111111-2222"));
  // Without Proxmox credentials it is a configuration error as usual.
  auto no_creds = run(without(env, "PROXMOX_TOKEN_SECRET"), {"--list-guests"}, dir.path());
  CHECK(no_creds.exit_code == kExitConfig);
  CHECK(contains(no_creds.err, "PROXMOX_TOKEN_SECRET is not set"));
}

TEST_CASE("SIGTERM and SIGINT stop the agent promptly with exit 0") {
  for (int sig : {SIGTERM, SIGINT}) {
    CAPTURE(sig);
    TempDir dir;
    Process p(kBinary, {{}, good_env(dir), dir.path()});
    REQUIRE(p.wait_for_output("agent_started"));
    const auto t0 = std::chrono::steady_clock::now();
    p.signal(sig);
    auto r = p.wait(std::chrono::seconds(5));
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    CHECK(contains(r.err, "agent_stopped"));
  }
}

TEST_CASE(
    "SIGHUP re-reads the env file - an invalid one is rejected - start-only changes are named") {
  TempDir dir;
  const auto file = dir.write("agent.env", "UPDATE_INTERVAL=60\nWEBHOOK_TIMEOUT=5\n");
  Process p(kBinary, {{"--env-file", file}, good_env(dir), dir.path()});
  REQUIRE(p.wait_for_output("agent_started"));

  dir.write("agent.env", "UPDATE_INTERVAL=1\n");
  p.signal(SIGHUP);
  REQUIRE(p.wait_for_output("config_reload_rejected"));
  CHECK(contains(p.err_so_far(), "UPDATE_INTERVAL=1"));

  dir.write("agent.env",
            "UPDATE_INTERVAL=120\nWEBHOOK_TIMEOUT=7\nWEBHOOK_TOKEN=hook-secret-4711\n");
  p.signal(SIGHUP);
  REQUIRE(p.wait_for_output("config_reloaded"));
  // Applied at once, so not named; the two webhook settings wait for a
  // restart and are named, the token by its name only.
  const auto err = p.err_so_far();
  const auto at = err.find("reload_partial");
  REQUIRE(at != std::string::npos);
  const auto line = err.substr(at, err.find('\n', at) - at);
  CHECK(contains(line, "WEBHOOK_TOKEN, WEBHOOK_TIMEOUT changed at reload"));
  CHECK_FALSE(contains(line, "UPDATE_INTERVAL"));
  CHECK_FALSE(contains(err, "hook-secret-4711"));

  p.signal(SIGTERM);
  auto r = p.wait(std::chrono::seconds(5));
  CHECK(r.exit_code == 0);
}

TEST_CASE("LOG_FORMAT=json writes one JSON object per line on stderr") {
  TempDir dir;
  Process p(
      kBinary,
      {{}, with(good_env(dir), {{"LOG_FORMAT", "json"}, {"LOG_BATCH_SIZE", "5"}}), dir.path()});
  REQUIRE(p.wait_for_output("agent_started"));
  p.signal(SIGTERM);
  auto r = p.wait(std::chrono::seconds(5));
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.err);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j.contains("time"));
    CHECK(j.contains("level"));
    CHECK(j.contains("event"));
    CHECK(j.contains("message"));
    ++count;
  }
  CHECK(count >= 3);  // the legacy-key warning, agent_started, agent_stopped
  CHECK_FALSE(contains(r.err, kApiKey));
}
