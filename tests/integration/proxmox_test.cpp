// The Proxmox half of the agent over real loopback HTTPS against the
// simulator: the real libcurl client with the retry layer (ProxmoxUpstream)
// for repeated reads, and the real binary with --list-guests.

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "agent/upstream/accountdb_upstream.hpp"
#include "agent/upstream/options.hpp"
#include "agent/upstream/proxmox_upstream.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

const std::string kTokenId = "agent@pve!sync";
const std::string kTokenSecret = "6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b";
const std::string kUser = "root@pam";
const std::string kPassword = "correct horse";

struct Sim {
  test::TempDir dir;
  sim::PveSim sim;
  explicit Sim(std::size_t guests = 40, std::string version = "8.4.14")
      : sim({.dir = dir.path(),
             .nodes = {"pve1", "pve2", "pve3"},
             .guests = guests,
             .seed = 11,
             .version = std::move(version),
             .auth_failure_delay = 20ms,
             .tokens = {{.id = kTokenId, .secret = kTokenSecret}},
             .users = {{.userid = kUser, .password = kPassword}}}) {}
  sim::PveHost& pve1() { return sim.host("pve1"); }
  std::size_t guests_on_pve1() { return sim.cluster().guests_on("pve1").size(); }
};

Settings token_settings(Sim& s) {
  Settings st;
  st.proxmox_host = *parse_url(s.pve1().url(), {"https", 8006});
  st.proxmox_token_id = kTokenId;
  st.proxmox_token_secret = kTokenSecret;
  st.proxmox_ca_file = s.sim.ca_file();
  st.proxmox_timeout = 2;
  st.proxmox_connect_timeout = 1;
  st.retry_base_delay = 0.05;
  st.retry_max_delay = 1;
  return st;
}

struct Reader {
  SystemClock clock;
  Interrupt interrupt;
  LiveSettings settings;
  ProxmoxUpstream upstream;
  explicit Reader(const Settings& s) : settings(s), upstream(settings, clock, interrupt) {}
  Result<GuestRead> read() { return upstream.client().read_guests(); }
  static std::string message_of(const Result<GuestRead>& r) {
    return r ? std::string() : r.error().message;
  }
};

std::map<std::string, std::string> list_env(Sim& s) {
  return {{"PROXMOX_HOST", s.pve1().url()},
          {"PROXMOX_TOKEN_ID", kTokenId},
          {"PROXMOX_TOKEN_SECRET", kTokenSecret},
          {"PROXMOX_CA_FILE", s.sim.ca_file()},
          {"RETRY_BASE_DELAY", "0.05"},
          {"STATE_DIR", s.dir.path()},
          {"PATH", "/usr/bin:/bin"}};
}

test::ProcessResult list_guests(const std::map<std::string, std::string>& env,
                                const std::string& cwd) {
  return test::run_process(PHA_AGENT_BINARY, {{"--list-guests"}, env, cwd}, 60s);
}

}  // namespace

TEST_CASE("--list-guests with an API token: the node from /cluster/status and its guests") {
  Sim s;
  auto r = list_guests(list_env(s), s.dir.path());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["node"] == "pve1");
  CHECK(j["source"] == "node");
  CHECK(j["complete"] == true);
  CHECK(j["count"] == s.guests_on_pve1());
  CHECK(j["guests"].size() == s.guests_on_pve1());
  for (const auto& g : j["guests"]) {
    CHECK(g["proxmox_node"] == "pve1");
    CHECK(g["disk_gb"].is_number_integer());
    CHECK_FALSE(g["name"].get<std::string>().empty());
  }
  CHECK(j["requests"].get<int>() >= 3);  // cluster/status, qemu, lxc, then details
  CHECK(s.pve1().count("GET /api2/json/nodes/pve1/qemu") == 1);
  CHECK(s.pve1().count("GET /api2/json/nodes/pve1/lxc") == 1);
  CHECK(r.err.find(kTokenSecret) == std::string::npos);
}

TEST_CASE("a second read makes the two list calls plus details only for what changed") {
  Sim s;
  auto settings = token_settings(s);
  settings.node_name = "pve1";
  Reader reader(settings);
  auto first = reader.read();
  REQUIRE_MESSAGE(first.ok(), Reader::message_of(first));
  CHECK(first->guests.size() == s.guests_on_pve1());
  s.pve1().reset_counts();
  auto second = reader.read();
  REQUIRE(second.ok());
  CHECK(s.pve1().total_requests() == 2);
  CHECK(second->requests == 2);

  // One stopped guest starts: its config and its addresses are read again, nothing else.
  int started = 0;
  for (const auto& g : s.sim.cluster().guests_on("pve1")) {
    if (g.status == sim::GuestStatus::stopped && !g.template_) {
      started = g.vmid;
      break;
    }
  }
  REQUIRE(started != 0);
  REQUIRE(s.sim.cluster().start(started));
  s.pve1().reset_counts();
  auto third = reader.read();
  REQUIRE(third.ok());
  CHECK(third->detail_requests == 2);
  CHECK(s.pve1().total_requests() == 4);
}

TEST_CASE("password auth: ticket login - and an expired ticket gets one fresh login") {
  Sim s;
  auto settings = token_settings(s);
  settings.proxmox_token_id.clear();
  settings.proxmox_token_secret.clear();
  settings.proxmox_user = kUser;
  settings.proxmox_password = kPassword;
  settings.node_name = "pve1";
  Reader reader(settings);
  auto first = reader.read();
  REQUIRE_MESSAGE(first.ok(), Reader::message_of(first));
  CHECK(s.pve1().count("POST /api2/json/access/ticket") == 1);
  // The simulator's time moves past the ticket's 2 hours; the agent's did not.
  s.sim.cluster().advance(std::chrono::hours(2) + 1min);
  auto second = reader.read();
  REQUIRE_MESSAGE(second.ok(), Reader::message_of(second));
  CHECK(s.pve1().count("POST /api2/json/access/ticket") == 2);
}

TEST_CASE("a wrong password or token is a clear auth failure without a hot loop") {
  Sim s;
  auto env = list_env(s);
  env.erase("PROXMOX_TOKEN_ID");
  env.erase("PROXMOX_TOKEN_SECRET");
  env["PROXMOX_USER"] = kUser;
  env["PROXMOX_PASSWORD"] = "wrong password";
  env["PROXMOX_NODE_NAME"] = "pve1";
  auto r = list_guests(env, s.dir.path());
  CHECK(r.exit_code == 1);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["kind"] == "auth");
  CHECK(j["message"].get<std::string>().find("check PROXMOX_USER and PROXMOX_PASSWORD") !=
        std::string::npos);
  CHECK(s.pve1().count("POST /api2/json/access/ticket") == 1);
  CHECK((r.out + r.err).find("wrong password") == std::string::npos);

  auto token = list_env(s);
  token["PROXMOX_TOKEN_SECRET"] = "00000000-0000-0000-0000-000000000000";
  token["PROXMOX_NODE_NAME"] = "pve1";
  s.pve1().reset_counts();
  auto t = list_guests(token, s.dir.path());
  CHECK(t.exit_code == 1);
  CHECK(nlohmann::json::parse(t.out)["kind"] == "auth");
  CHECK(s.pve1().total_requests() == 1);
}

TEST_CASE("TLS: refused without options - accepted with the CA file or the right fingerprint") {
  Sim s;
  auto env = list_env(s);
  env["PROXMOX_NODE_NAME"] = "pve1";
  env.erase("PROXMOX_CA_FILE");
  auto refused = list_guests(env, s.dir.path());
  CHECK(refused.exit_code == 1);
  const auto j = nlohmann::json::parse(refused.out);
  CHECK(j["kind"] == "tls");
  CHECK(j["message"].get<std::string>().find("PROXMOX_CA_FILE") != std::string::npos);
  CHECK(j["message"].get<std::string>().find("PROXMOX_FINGERPRINT") != std::string::npos);
  CHECK(s.pve1().total_requests() == 0);

  env["PROXMOX_FINGERPRINT"] = s.sim.cert("pve1").sha256_fingerprint;
  auto pinned = list_guests(env, s.dir.path());
  CHECK_MESSAGE(pinned.exit_code == 0, pinned.out, pinned.err);

  env.erase("PROXMOX_FINGERPRINT");
  env["PROXMOX_CA_FILE"] = s.sim.ca_file();
  CHECK(list_guests(env, s.dir.path()).exit_code == 0);
}

TEST_CASE("TLS: a wrong fingerprint is refused before a single request byte") {
  Sim s;
  auto env = list_env(s);
  env["PROXMOX_NODE_NAME"] = "pve1";
  env.erase("PROXMOX_CA_FILE");
  env["PROXMOX_FINGERPRINT"] = s.sim.cert("pve2").sha256_fingerprint;  // another node's certificate
  auto r = list_guests(env, s.dir.path());
  CHECK(r.exit_code == 1);
  CHECK(nlohmann::json::parse(r.out)["kind"] == "tls");
  CHECK(s.pve1().total_requests() == 0);
}

TEST_CASE("legacy typing of a PVE 6 server reads the same guests") {
  Sim s(40, "6.4-15");
  auto env = list_env(s);
  auto r = list_guests(env, s.dir.path());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["complete"] == true);
  CHECK(j["count"] == s.guests_on_pve1());
}

TEST_CASE("each fault of the host gives its failure kind and no crash") {
  Sim s(10);
  auto settings = token_settings(s);
  settings.node_name = "pve1";
  settings.proxmox_timeout = 1;
  settings.retry_max_attempts = 1;
  settings.vm_details = false;
  Reader reader(settings);
  REQUIRE(reader.read().ok());
  struct Case {
    sim::Fault fault;
    std::optional<ErrorKind> kind;  // none: the read succeeds
  };
  const std::vector<Case> cases = {
      {{.kind = sim::FaultKind::down}, ErrorKind::network},
      {{.kind = sim::FaultKind::hang}, ErrorKind::timeout},
      {{.kind = sim::FaultKind::slow, .delay = 1500ms}, ErrorKind::timeout},
      {{.kind = sim::FaultKind::slow, .delay = 200ms}, std::nullopt},
      {{.kind = sim::FaultKind::reset}, ErrorKind::network},
      {{.kind = sim::FaultKind::truncated}, ErrorKind::server},
      {{.kind = sim::FaultKind::non_json}, ErrorKind::bad_reply},
      {{.kind = sim::FaultKind::oversized}, ErrorKind::server},
      {{.kind = sim::FaultKind::status, .status = 500}, ErrorKind::server},
      {{.kind = sim::FaultKind::status, .status = 501}, ErrorKind::client},
      {{.kind = sim::FaultKind::status, .status = 595, .reason = "No route to host"},
       ErrorKind::server},
      {{.kind = sim::FaultKind::status, .status = 596, .reason = "Connection timed out"},
       ErrorKind::server},
  };
  for (const auto& c : cases) {
    CAPTURE(sim::to_string(c.fault.kind));
    CAPTURE(c.fault.status);
    s.pve1().set_fault(c.fault);
    auto r = reader.read();
    s.pve1().clear_fault();
    CHECK(r.ok() == !c.kind.has_value());
    if (!r.ok()) {
      CHECK(r.error().kind == c.kind);
      CHECK_FALSE(r.error().message.empty());
      CHECK(r.error().message.find(kTokenSecret) == std::string::npos);
      CHECK(r.error().url.find(kTokenSecret) == std::string::npos);
    }
    // And the host serves again once the fault is gone.
    auto again = reader.read();
    CHECK_MESSAGE(again.ok(), Reader::message_of(again));
  }
}

TEST_CASE("a flapping host is retried while the retry budget allows and never stormed") {
  Sim s(10);
  auto settings = token_settings(s);
  settings.node_name = "pve1";
  settings.retry_max_attempts = 3;
  settings.vm_details = false;
  Reader reader(settings);
  // Every other request fails: each failed list call is retried once and
  // succeeds, until the budget (10 tokens, -1 per failure, +0.1 per success,
  // retries only above 5) says the host fails too often to retry.
  s.pve1().set_fault({.kind = sim::FaultKind::flap, .status = 500, .every = 1});
  int ok = 0;
  for (int i = 0; i < 6; ++i) {
    ok += reader.read().ok() ? 1 : 0;
  }
  CHECK(ok >= 2);
  CHECK(ok < 6);
  // Without the budget 6 reads would send 6 x 2 x 2 = 24 requests.
  CHECK(s.pve1().total_requests() < 24);
  CHECK(s.pve1().total_requests() >= 12);
}
