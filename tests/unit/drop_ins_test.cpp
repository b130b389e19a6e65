// The env file's drop-ins (PATH.d/*.env), a secret and its *_FILE across
// places, and what --check-required decides; on a fake filesystem.

#include <algorithm>

#include <doctest/doctest.h>

#include "agent/config/docs.hpp"
#include "agent/config/loader.hpp"
#include "tests/support/fake_system.hpp"

using namespace pha;

namespace {

const std::string kEnvFile = "/etc/pha/agent.env";
const std::string kDir = "/etc/pha/agent.env.d";

// Everything required but ACCOUNTDB_API_KEY, which each test puts somewhere.
const std::string kBase =
    "ACCOUNTDB_URL=https://adb.example:8080\n"
    "ACCOUNTDB_NODE_ID=34\n"
    "PROXMOX_TOKEN_ID=agent@pve!sync\n"
    "PROXMOX_TOKEN_SECRET=11111111-2222-3333-4444-555555555555\n";
const std::string kKey = "ACCOUNTDB_API_KEY=k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD\n";

struct Node {
  test::FakeSystemAccess fs;
  StringMap environment;

  Node() { fs.files[kEnvFile] = kBase; }
  void drop_in(const std::string& name, const std::string& text) {
    fs.files[kDir + "/" + name] = text;
  }
  LoadOutcome load() {
    LoadInput input;
    input.env_file = kEnvFile;
    input.env_file_named = true;
    input.environment = environment;
    return load_settings(input, fs);
  }
  LoadedConfig loaded() {
    auto outcome = load();
    if (const auto* errors = std::get_if<ConfigErrors>(&outcome)) {
      FAIL(errors->errors.front());
    }
    return std::get<LoadedConfig>(std::move(outcome));
  }
  std::vector<std::string> errors() {
    auto outcome = load();
    REQUIRE(std::holds_alternative<ConfigErrors>(outcome));
    return std::get<ConfigErrors>(outcome).errors;
  }
};

bool has(const std::vector<std::string>& lines, std::string_view part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

}  // namespace

TEST_CASE("drop-ins are read after the env file in byte-wise order - a later one wins per key") {
  Node n;
  n.fs.files[kEnvFile] = kBase + kKey + "UPDATE_INTERVAL=60\nLOG_LEVEL=debug\n";
  // Listed in reverse by the fake: the order is the loader's own.
  n.drop_in("20-shared.env", "UPDATE_INTERVAL=70\nWHITELIST_TTL=100\n");
  n.drop_in("10-node.env", "UPDATE_INTERVAL=65\nWHITELIST_TTL=90\nPORT=8100\n");
  n.drop_in("Z-upper.env", "PORT=8200\n");  // 'Z' (0x5A) sorts before 'a'
  n.drop_in("a-lower.env", "PORT=8300\n");
  const auto c = n.loaded();
  CHECK(c.env_files == std::vector<std::string>{kEnvFile, kDir + "/10-node.env",
                                                kDir + "/20-shared.env", kDir + "/Z-upper.env",
                                                kDir + "/a-lower.env"});
  CHECK(c.settings.update_interval == 70);
  CHECK(c.effective.at("UPDATE_INTERVAL").origin.where == kDir + "/20-shared.env:1");
  CHECK(c.settings.whitelist_ttl == 100);
  CHECK(c.settings.port == 8300);
  CHECK(c.effective.at("PORT").origin.where == kDir + "/a-lower.env:1");
  // Untouched keys keep the env file's value and line.
  CHECK(c.settings.log_level == "debug");
  CHECK(c.effective.at("LOG_LEVEL").origin.where == kEnvFile + ":7");
  const auto json = print_config_json(c);
  CHECK(json["settings"]["UPDATE_INTERVAL"]["source"] == "env-file");
  CHECK(json["settings"]["UPDATE_INTERVAL"]["from"] == kDir + "/20-shared.env:1");
  // The environment is still above every file.
  n.environment["UPDATE_INTERVAL"] = "80";
  CHECK(n.loaded().effective.at("UPDATE_INTERVAL").origin.where == "environment");
}

TEST_CASE("drop-ins: only names ending in .env that do not start with a dot - files only") {
  Node n;
  n.drop_in("50-key.env", kKey);
  for (const auto* name : {"README", "10-old.env.dpkg-old", "10-new.env.dpkg-dist", "foo.env~",
                           ".hidden.env", ".env", "10-node.envx", "10.ENV"}) {
    n.drop_in(name, "this line would be a syntax error\n");
  }
  n.fs.dirs.insert(kDir + "/60-dir.env");  // a directory with a drop-in's name
  const auto c = n.loaded();
  CHECK(c.env_files == std::vector<std::string>{kEnvFile, kDir + "/50-key.env"});
  // Quietly: no warning about the files that are not read.
  CHECK_FALSE(has(c.warnings, "dpkg"));
  CHECK_FALSE(has(c.warnings, "README"));
}

TEST_CASE("drop-ins: a missing directory is fine - an empty one too") {
  Node n;
  n.fs.files[kEnvFile] = kBase + kKey;
  CHECK(n.loaded().env_files == std::vector<std::string>{kEnvFile});
  n.fs.dirs.insert(kDir);
  CHECK(n.loaded().env_files == std::vector<std::string>{kEnvFile});
}

TEST_CASE("drop-ins: an unreadable directory or file is a config error naming it") {
  Node n;
  n.fs.files[kEnvFile] = kBase + kKey;
  n.fs.dirs.insert(kDir);
  n.fs.unreadable.insert(kDir);
  CHECK(n.errors() ==
        std::vector<std::string>{kDir + ": cannot read the drop-in directory: Permission denied"});

  n.fs.unreadable = {kDir + "/10-node.env"};
  n.drop_in("10-node.env", "PORT=1\n");
  CHECK(n.errors() ==
        std::vector<std::string>{kDir + "/10-node.env: cannot read it: Permission denied"});
}

TEST_CASE("drop-ins: every broken file is reported with its line - the env file's too") {
  Node n;
  n.fs.files[kEnvFile] = kBase + "oops\n";
  n.drop_in("10-a.env", "PORT=1\n\nexport 'bad key'=1\n");
  n.drop_in("20-b.env", "UPDATE_INTERVAL=\"unterminated\n");
  n.fs.unreadable = {kDir + "/30-c.env"};
  n.drop_in("30-c.env", "");
  const auto e = n.errors();
  CHECK(e.size() == 4);
  CHECK(has(e, kEnvFile + ":5: expected KEY=value"));
  CHECK(has(e, kDir + "/10-a.env:3: "));
  CHECK(has(e, kDir + "/20-b.env:1: unterminated double quote"));
  CHECK(has(e, kDir + "/30-c.env: cannot read it"));
  // The env file named by --env-file says so when it cannot be read.
  n.fs.files.erase(kEnvFile);
  CHECK(has(n.errors(), "--env-file " + kEnvFile + ": cannot read it: No such file"));
}

TEST_CASE("drop-ins: a value's errors and warnings name the drop-in and line") {
  Node n;
  n.drop_in("10-node.env", kKey + "\nUPDATE_INTERVAL=abc\n");
  CHECK(has(n.errors(), "UPDATE_INTERVAL=abc (from " + kDir + "/10-node.env:3)"));
  n.drop_in("10-node.env", kKey + "UPDTE_INTERVAL=60\nPORT=1\nPORT=2\n");
  const auto w = n.loaded().warnings;
  CHECK(has(w, kDir + "/10-node.env:2: unknown setting UPDTE_INTERVAL is ignored"));
  CHECK(has(w, kDir + "/10-node.env:4: PORT is set again (line 3 set it first)"));
  // The same key in two files is an override, not a warning.
  n.drop_in("20-more.env", "PORT=3\n");
  const auto again = n.loaded().warnings;
  CHECK(std::count_if(again.begin(), again.end(), [](const std::string& x) {
          return x.find("is set again") != std::string::npos;
        }) == 1);
}

TEST_CASE("drop-ins: the old Python agent's .env works unchanged as one") {
  Node n;
  n.fs.files[kEnvFile] = "# the packaged agent.env: the required settings, empty\nACCOUNTDB_URL=\n";
  n.drop_in("50-old-agent.env",
            "# Proxmox\n"
            "export PROXMOX_HOST=\"https://pve1.example:8006\"\n"
            "PROXMOX_USER=root@pam\n"
            "PROXMOX_PASSWORD='s3cr#t pass'\n"
            "PROXMOX_VERIFY_SSL=false  # self-signed\n"
            "ACCOUNTDB_URL=http://adb.example:8080\n"
            "ACCOUNTDB_API_KEY=k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD\n"
            "ACCOUNTDB_NODE_ID=7\n"
            "UPDATE_INTERVAL=300\n"
            "PORT=8000\n"
            "LOG_LEVEL=INFO\n"
            "LOG_FORWARDING_ENABLED=false\n"
            "LOG_FORWARDING_URL=http://logs.example\n");
  const auto c = n.loaded();
  CHECK(c.settings.proxmox_host.str() == "https://pve1.example:8006");
  CHECK(c.settings.proxmox_password == "s3cr#t pass");
  CHECK_FALSE(c.settings.proxmox_verify_ssl);
  CHECK(c.settings.accountdb_node_id == 7);
  CHECK(c.effective.at("ACCOUNTDB_URL").origin.where == kDir + "/50-old-agent.env:6");
  CHECK(has(c.warnings, "LOG_FORWARDING_ENABLED (" + kDir + "/50-old-agent.env:12)"));
}

TEST_CASE("a secret and its _FILE: in one place an error - from two places the higher one wins") {
  Node n;
  n.fs.files["/run/credentials/key"] = "k3y-from-credential-abcdefghijklmnopqrstuvwxyz0\n";
  const std::string file_line = "ACCOUNTDB_API_KEY_FILE=/run/credentials/key\n";
  SUBCASE("both in the env file") {
    n.fs.files[kEnvFile] = kBase + kKey + file_line;
    CHECK(has(n.errors(), "set either ACCOUNTDB_API_KEY or ACCOUNTDB_API_KEY_FILE (from " +
                              kEnvFile + ":6), not both"));
  }
  SUBCASE("both in one drop-in") {
    n.drop_in("10-node.env", kKey + file_line);
    CHECK(has(n.errors(), "not both"));
  }
  SUBCASE("both in the environment") {
    n.environment = {{"ACCOUNTDB_API_KEY", "k3y-env"},
                     {"ACCOUNTDB_API_KEY_FILE", "/run/credentials/key"}};
    CHECK(has(n.errors(), "ACCOUNTDB_API_KEY=*** (from environment): set either"));
  }
  SUBCASE("the key in the env file - its _FILE in a drop-in: the drop-in wins") {
    n.fs.files[kEnvFile] = kBase + kKey;
    n.drop_in("10-node.env", file_line);
    const auto c = n.loaded();
    CHECK(c.settings.accountdb_api_key == "k3y-from-credential-abcdefghijklmnopqrstuvwxyz0");
    CHECK(c.effective.at("ACCOUNTDB_API_KEY").origin.where == kDir + "/10-node.env:1");
    CHECK(c.effective.at("ACCOUNTDB_API_KEY_FILE").text == "/run/credentials/key");
  }
  SUBCASE("the _FILE in the env file - the key in a drop-in: the drop-in wins") {
    n.fs.files[kEnvFile] = kBase + file_line;
    n.drop_in("10-node.env", kKey);
    const auto c = n.loaded();
    CHECK(c.settings.accountdb_api_key == "k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD");
    // The losing _FILE is not shown as if it were used.
    CHECK(c.effective.at("ACCOUNTDB_API_KEY_FILE").text.empty());
  }
  SUBCASE("the key in a file - a systemd credential's _FILE in the environment wins") {
    n.fs.files[kEnvFile] = kBase + kKey;
    n.environment["ACCOUNTDB_API_KEY_FILE"] = "/run/credentials/key";
    const auto c = n.loaded();
    CHECK(c.settings.accountdb_api_key == "k3y-from-credential-abcdefghijklmnopqrstuvwxyz0");
    CHECK(c.effective.at("ACCOUNTDB_API_KEY").origin.source == Source::env);
  }
  SUBCASE("a conflict in a lower place is settled by a higher one") {
    n.fs.files[kEnvFile] = kBase + kKey + file_line;
    n.environment["ACCOUNTDB_API_KEY"] = "k3y-from-the-environment";
    CHECK(n.loaded().settings.accountdb_api_key == "k3y-from-the-environment");
  }
}

TEST_CASE("--check-required: missing required settings are named with where to put them") {
  Node n;
  n.fs.files[kEnvFile] = "ACCOUNTDB_URL=\nACCOUNTDB_API_KEY=\n";
  const auto message = missing_required_message(n.load(), kEnvFile);
  REQUIRE(message);
  CHECK(*message ==
        "not configured yet: set ACCOUNTDB_URL, ACCOUNTDB_API_KEY, ACCOUNTDB_NODE_ID, "
        "PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET (or PROXMOX_PASSWORD) in " +
            kEnvFile + " or a file in " + kDir + "/");
  // A drop-in that sets them: configured.
  n.drop_in("10-node.env", kBase + kKey);
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
  // A token id without its secret: the secret is required.
  n.drop_in("10-node.env",
            "ACCOUNTDB_URL=https://adb\nACCOUNTDB_NODE_ID=1\nPROXMOX_TOKEN_ID=a@pve!t\n" + kKey);
  CHECK(missing_required_message(n.load(), kEnvFile) ==
        "not configured yet: set PROXMOX_TOKEN_SECRET in " + kEnvFile + " or a file in " + kDir +
            "/");
  // A password is credentials enough; a _FILE is as good as the key.
  n.fs.files["/run/key"] = "k3y-abcdefghijklmnopqrstuvwxyz0123456789ABCD";
  n.drop_in("10-node.env",
            "ACCOUNTDB_URL=https://adb\nACCOUNTDB_NODE_ID=1\nPROXMOX_PASSWORD=pw\n"
            "ACCOUNTDB_API_KEY_FILE=/run/key\n");
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
  // Without an env file it says so.
  CHECK(missing_required_message(load_settings(LoadInput{}, n.fs), std::nullopt)
            ->ends_with("in the environment or an env file (--env-file PATH, or ./.env)"));
}

TEST_CASE("--check-required: other errors are for the start to report") {
  Node n;
  // Present but invalid: required means set, not valid.
  n.fs.files[kEnvFile] = kBase + kKey + "ACCOUNTDB_URL=adb:8080\nUPDATE_INTERVAL=1\n";
  auto invalid = n.load();
  REQUIRE(std::holds_alternative<ConfigErrors>(invalid));
  CHECK_FALSE(missing_required_message(invalid, kEnvFile));
  // A secret file that cannot be read: the start names it.
  n.fs.files[kEnvFile] = kBase + "ACCOUNTDB_API_KEY_FILE=/nope\n";
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
  // Cross-checks are not required settings.
  n.fs.files[kEnvFile] = kBase + kKey + "TLS_CERT_FILE=/etc/cert.pem\nAGENT_READ_AUTH=true\n";
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
  // A file that cannot be parsed at all, even with nothing else set.
  n.fs.files[kEnvFile] = "ACCOUNTDB_URL=\n";
  n.drop_in("10-node.env", "broken\n");
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
  n.fs.unreadable.insert(kDir);
  CHECK_FALSE(missing_required_message(n.load(), kEnvFile));
}
