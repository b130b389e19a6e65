// The real binary reads its own Proxmox permissions at start-up and after a
// reload with other credentials: what it logs (once per missing privilege)
// and shows in /status, on the PVE 8 and PVE 9 privilege models of the
// simulator.

#include <csignal>

#include <doctest/doctest.h>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

const std::string kMonitorToken = "mon@pve!ro";
const std::string kMonitorSecret = "0b9e0e52-57c5-4c1b-9d43-3a4c2f1e8d77";

// A running VM on pve1 whose guest agent reports an address.
void add_vm_with_agent(World& w) {
  sim::Guest g;
  g.vmid = 9100;
  g.node = "pve1";
  g.name = "with-agent";
  g.status = sim::GuestStatus::running;
  g.agent_configured = true;
  g.agent_running = true;
  g.ipv4 = "10.9.1.7/24";
  g.mac = "BC:24:11:00:91:00";
  w.pve.cluster().add_guest(g);
}

// A privilege-separated token holding `acls`, and the environment that uses it.
Env privsep_token(World& w, std::vector<sim::Acl> acls, Env extra = {}) {
  add_vm_with_agent(w);
  w.pve.cluster().add_token({.id = kMonitorToken,
                             .secret = kMonitorSecret,
                             .privsep = true,
                             .privileges = {},
                             .acls = std::move(acls)});
  extra["PROXMOX_TOKEN_ID"] = kMonitorToken;
  extra["PROXMOX_TOKEN_SECRET"] = kMonitorSecret;
  return extra;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// The log lines of one event, parsed.
std::vector<nlohmann::json> events(RunningAgent& a, const std::string& event) {
  std::vector<nlohmann::json> out;
  const auto err = a.process().err_so_far();
  std::size_t start = 0;
  while (start < err.size()) {
    auto end = err.find('\n', start);
    end = end == std::string::npos ? err.size() : end;
    auto line = nlohmann::json::parse(err.substr(start, end - start), nullptr, false);
    if (!line.is_discarded() && line.value("event", "") == event) {
      out.push_back(std::move(line));
    }
    start = end + 1;
  }
  return out;
}

// How many QEMU guests of /vms have an address, and how many are running.
std::pair<int, int> qemu_ips(RunningAgent& a) {
  int with_ip = 0;
  int running = 0;
  const auto vms = a.get_json("/vms");
  for (const auto& v : vms["vms"]) {
    if (v["type"] == "qemu" && v["status"] == "running") {
      ++running;
      with_ip += v["ip_address"].is_string() ? 1 : 0;
    }
  }
  return {with_ip, running};
}

bool last_result_ok(const nlohmann::json& status) {
  return status["sync"]["last_result"]["status"] == "ok";
}

sim::Acl role(const std::string& path, const std::string& name) {
  return {.path = path, .role = name};
}

}  // namespace

TEST_CASE(
    "PVE 9 privilege-separated token with only VM.Audit: VM.GuestAgent.Audit missing - once") {
  World w;
  w.pve.cluster().set_all_versions("9.0.3");
  // A fixed node name, no discovery and no change signal (the task list):
  // Sys.Audit is not needed either.
  RunningAgent a(w, privsep_token(w, {{.path = "/vms", .privileges = {"VM.Audit"}}},
                                  {{"PROXMOX_NODE_NAME", "pve1"},
                                   {"PROXMOX_DISCOVER_HOSTS", "false"},
                                   {"CHANGE_POLL_INTERVAL", "0"}}));
  REQUIRE(a.wait_cycles(1));
  for (int i = 0; i < 2; ++i) {
    CHECK(last_result_ok(cycle(a)));
  }
  const auto missing = events(a, "proxmox_privilege_missing");
  REQUIRE_MESSAGE(missing.size() == 1, log_tail(a));
  CHECK(missing[0]["privilege"] == "VM.GuestAgent.Audit");
  CHECK(missing[0]["path"] == "/vms");
  CHECK(missing[0]["effect"] == "QEMU guest IPs stay empty");
  CHECK(missing[0]["version"] == "9.0.3");
  CHECK(missing[0]["fix"].get<std::string>().find("--roles PVEAuditor") != std::string::npos);
  CHECK(missing[0]["level"] == "warning");
  // The refused guest agent calls were explained by that line already.
  CHECK(events(a, "proxmox_agent_denied").empty());
  CHECK(w.pve.host("pve1").count("GET /api2/json/access/permissions") == 1);

  const auto p = a.get_json("/status")["proxmox"]["permissions"];
  CHECK(p["checked"].is_number_integer());
  CHECK(p["version"] == "9.0.3");
  CHECK(p["error"].is_null());
  CHECK(p["missing"] == nlohmann::json::array({{{"privilege", "VM.GuestAgent.Audit"},
                                                {"path", "/vms"},
                                                {"effect", "QEMU guest IPs stay empty"}}}));
  const auto [with_ip, running] = qemu_ips(a);
  CHECK(running > 0);
  CHECK(with_ip == 0);
  const auto err = a.stop().err;
  CHECK(err.find(kMonitorSecret) == std::string::npos);
}

TEST_CASE("PVE 9 PVEAuditor token: nothing missing - QEMU IPs present") {
  World w;
  w.pve.cluster().set_all_versions("9.0.3");
  RunningAgent a(w, privsep_token(w, {role("/", "PVEAuditor")}));
  REQUIRE(a.wait_cycles(1));
  const auto p = a.get_json("/status")["proxmox"]["permissions"];
  CHECK(p["checked"].is_number_integer());
  CHECK(p["version"] == "9.0.3");
  CHECK(p["missing"] == nlohmann::json::array());
  CHECK(p["error"].is_null());
  CHECK(events(a, "proxmox_privilege_missing").empty());
  CHECK(events(a, "proxmox_permissions").size() == 1);
  const auto [with_ip, running] = qemu_ips(a);
  CHECK(running > 0);
  CHECK(with_ip > 0);
  CHECK(a.get_json("/vms/9100")["ip_address"] == "10.9.1.7");
  CHECK(a.get_json("/status")["agent"]["node"] == "pve1");  // Sys.Audit: from /cluster/status
}

TEST_CASE("PVE 8 PVEAuditor token: VM.Monitor missing - IPs stay empty - said with its risk") {
  World w;  // 8.4.14
  RunningAgent a(w, privsep_token(w, {role("/", "PVEAuditor")}));
  REQUIRE(a.wait_cycles(1));
  CHECK(last_result_ok(cycle(a)));
  const auto missing = events(a, "proxmox_privilege_missing");
  REQUIRE_MESSAGE(missing.size() == 1, log_tail(a));
  CHECK(missing[0]["privilege"] == "VM.Monitor");
  CHECK(missing[0]["effect"] == "QEMU guest IPs stay empty");
  CHECK(missing[0]["level"] == "info");  // going without it is the advice
  CHECK(missing[0]["fix"].get<std::string>().find("any command as root in every VM") !=
        std::string::npos);
  const auto p = a.get_json("/status")["proxmox"]["permissions"];
  CHECK(p["version"] == "8.4.14");
  REQUIRE(p["missing"].size() == 1);
  CHECK(p["missing"][0]["privilege"] == "VM.Monitor");
  CHECK(p["missing"][0]["effect"] == "QEMU guest IPs stay empty");
  // A missing optional privilege is no warning of the sync.
  CHECK(a.get_json("/status")["current"]["status"] == "ok");
  const auto [with_ip, running] = qemu_ips(a);
  CHECK(running > 0);
  CHECK(with_ip == 0);
}

TEST_CASE(
    "permissions are read again after SIGHUP changed the token - and unknown when unreadable") {
  World w;
  w.pve.cluster().set_all_versions("9.0.3");
  w.pve.cluster().add_token({.id = kMonitorToken,
                             .secret = kMonitorSecret,
                             .privsep = true,
                             .privileges = {},
                             .acls = {{.path = "/", .privileges = {"VM.Audit", "Sys.Audit"}}}});
  const auto env_file =
      w.dir.write("agent.env", "PROXMOX_TOKEN_ID=" + kMonitorToken +
                                   "\nPROXMOX_TOKEN_SECRET=" + kMonitorSecret + "\n");
  RunningAgent a(w, {}, {"--env-file", env_file}, {"PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET"});
  REQUIRE(a.wait_cycles(1));
  REQUIRE(a.get_json("/status")["proxmox"]["permissions"]["missing"].size() == 1);

  // The operator switches to the world's token (every privilege) - on a
  // server that cannot answer /access/permissions.
  w.pve.host("pve1").set_fault(
      {.kind = sim::FaultKind::status, .path_prefix = "/access/permissions", .status = 501});
  w.dir.write("agent.env",
              "PROXMOX_TOKEN_ID=" + kTokenId + "\nPROXMOX_TOKEN_SECRET=" + kTokenSecret + "\n");
  a.process().signal(SIGHUP);
  REQUIRE(a.process().wait_for_output("config_reloaded", 10s));
  REQUIRE(a.wait_status(
      [](const nlohmann::json& s) { return !s["proxmox"]["permissions"]["error"].is_null(); }));
  const auto p = a.get_json("/status")["proxmox"]["permissions"];
  CHECK(p["checked"].is_null());
  CHECK(p["missing"] == nlohmann::json::array());
  CHECK(p["error"].get<std::string>().find("501") != std::string::npos);
  // The cycles go on; while the privileges are unknown a guest missing
  // from a read is not counted as gone, and they say so.
  for (int i = 0; i < 2; ++i) {
    const auto s = cycle(a);
    CHECK(s["sync"]["last_result"]["status"] == "warning");
    CHECK(s["sync"]["read"]["counts_for_missing"] == false);
    CHECK(s["sync"]["read"]["reason"].get<std::string>().find("not known") != std::string::npos);
  }
  CHECK(events(a, "proxmox_permissions_unknown").size() == 1);
  CHECK(w.pve.host("pve1").count("GET /api2/json/access/permissions") == 2);
  const auto err = a.stop().err;
  CHECK(count(err, kTokenSecret) == 0);
  CHECK(count(err, kMonitorSecret) == 0);
}
