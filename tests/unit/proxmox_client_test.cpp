// The Proxmox client's logic against a scripted HTTP peer and a fake clock:
// authentication, the node name, which calls a read makes, and failures.

#include <algorithm>
#include <functional>
#include <mutex>

#include <doctest/doctest.h>

#include "agent/platform/logging.hpp"
#include "agent/proxmox/client.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/log_capture.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::FakeHttp;
using test::http_answer;

namespace {

std::string fixture(const std::string& name) {
  return test::fixture_text("proxmox/" + name);
}

ProxmoxCredentials token_credentials() {
  return {.token_id = "agent@pve!sync", .token_secret = "tok-secret"};
}

ProxmoxCredentials password_credentials() {
  return {.user = "root@pam", .password = "p@ss word"};
}

ProxmoxClientOptions token_options() {
  ProxmoxClientOptions o;
  o.host = *parse_url("https://127.0.0.1:8006", {"https", 8006});
  o.credentials = token_credentials();
  o.node_name = "pve";
  o.short_hostname = [] { return std::string("host-from-uname"); };
  return o;
}

ProxmoxClientOptions password_options() {
  auto o = token_options();
  o.credentials = password_credentials();
  return o;
}

std::string header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      return v;
    }
  }
  return "";
}

const std::string kQemu = "GET /api2/json/nodes/pve/qemu";
const std::string kLxc = "GET /api2/json/nodes/pve/lxc";
const std::string kTicket = "POST /api2/json/access/ticket";

// A node with the PVE 8 fixtures: qemu 100 (running) and 101 (stopped); lxc 102 (running), 103..105
// (stopped).
void serve_node(FakeHttp& http) {
  http.on(kQemu, http_answer(200, fixture("nodes-node-qemu.pve8.json")));
  http.on(kLxc, http_answer(200, fixture("nodes-node-lxc.pve8-vmid-string.json")));
  for (const auto* id : {"100", "101"}) {
    http.on(std::string("GET /api2/json/nodes/pve/qemu/") + id + "/config",
            http_answer(
                200, std::string(R"({"data":{"cores":1,"description":"notes of )") + id + "\"}}"));
  }
  for (const auto* id : {"102", "103", "104", "105"}) {
    http.on(std::string("GET /api2/json/nodes/pve/lxc/") + id + "/config",
            http_answer(200, R"({"data":{"cores":2}})"));
  }
  http.on(
      "GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces",
      http_answer(200, R"({"data":{"result":[{"name":"eth0","ip-addresses":[)"
                       R"({"ip-address":"10.0.0.100","ip-address-type":"ipv4","prefix":24}]}]}})"));
  http.on("GET /api2/json/nodes/pve/lxc/102/interfaces",
          http_answer(200, R"({"data":[{"name":"eth0","inet":"10.0.0.102/24"}]})"));
}

struct Fixture {
  FakeHttp http;
  test::FakeClock clock;
  ProxmoxCredentials credentials;  // what a reload changes; the client reads it at each request
  ProxmoxClient client;
  explicit Fixture(ProxmoxClientOptions o)
      : credentials(o.credentials()),
        client(
            with_live_credentials(std::move(o)),
            [this](const HttpRequest& r) { return http.send(r); }, clock) {}

 private:
  ProxmoxClientOptions with_live_credentials(ProxmoxClientOptions o) {
    o.credentials = Live<ProxmoxCredentials>([this] { return credentials; });
    return o;
  }
};

std::string message_of(const Result<GuestRead>& r) {
  return r ? std::string() : r.error().message;
}

const Guest* find(const GuestRead& r, std::int64_t vmid) {
  for (const auto& g : r.guests) {
    if (g.vmid == vmid) {
      return &g;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("token auth: the PVEAPIToken header on every request and no cookie") {
  Fixture f(token_options());
  serve_node(f.http);
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  for (const auto& req : f.http.requests()) {
    CHECK(header(req, "Authorization") == "PVEAPIToken=agent@pve!sync=tok-secret");
    CHECK(header(req, "Cookie").empty());
    CHECK(req.url.starts_with("https://127.0.0.1:8006/api2/json/"));
    CHECK(req.url.find("full=1") == std::string::npos);
    CHECK(req.method == "GET");
  }
}

TEST_CASE("the first read: two list calls plus details of every guest") {
  Fixture f(token_options());
  serve_node(f.http);
  f.client.check_permissions();  // as the cycle does first (the fake cannot answer it)
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  // Nothing said yet what the token may see: a guest it may not see would be missing.
  CHECK_FALSE(r.complete);
  CHECK(r.incomplete_reason.find("not known") != std::string::npos);
  CHECK(r.node == "pve");
  CHECK(r.source == GuestSource::node);
  CHECK(r.guests.size() == 6);
  CHECK(f.http.count(kQemu) == 1);
  CHECK(f.http.count(kLxc) == 1);
  // 6 configs + the agent of the running VM + the interfaces of the running container.
  CHECK(r.detail_requests == 8);
  CHECK(r.requests == 10);
  CHECK(f.http.count("GET /api2/json/nodes/pve/lxc/103/interfaces") == 0);  // stopped: not asked
  REQUIRE(find(r, 100) != nullptr);
  CHECK(find(r, 100)->ip_address == std::optional<std::string>("10.0.0.100"));
  CHECK(find(r, 100)->notes == std::optional<std::string>("notes of 100"));
  CHECK(find(r, 102)->ip_address == std::optional<std::string>("10.0.0.102"));
  CHECK_FALSE(find(r, 101)->ip_address.has_value());
}

TEST_CASE("list calls may be retried but detail calls are best-effort single attempts") {
  Fixture f(token_options());
  serve_node(f.http);
  REQUIRE(f.client.read_guests().ok());
  for (const auto& req : f.http.requests()) {
    const bool list = req.url.ends_with("/nodes/pve/qemu") || req.url.ends_with("/nodes/pve/lxc");
    CHECK_MESSAGE(req.retry == list, req.url);
  }
}

TEST_CASE("the second read makes exactly the two list calls when nothing changed") {
  Fixture f(token_options());
  serve_node(f.http);
  REQUIRE(f.client.read_guests().ok());
  f.http.clear_requests();
  f.clock.advance(60s);
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(r.requests == 2);
  CHECK(r.detail_requests == 0);
  CHECK(f.http.requests().size() == 2);
  // Cached details are still reported.
  CHECK(find(r, 100)->notes == std::optional<std::string>("notes of 100"));
  CHECK(find(r, 100)->ip_address == std::optional<std::string>("10.0.0.100"));
}

TEST_CASE(
    "details are read again only for a guest whose status changed - a new guest - or after the "
    "TTL") {
  auto o = token_options();
  o.details_ttl = 3600s;
  Fixture f(o);
  serve_node(f.http);
  REQUIRE(f.client.read_guests().ok());

  // 101 starts (its status changes): config + agent (no agent: 500, cached as such).
  f.http.on(kQemu, http_answer(200, R"({"data":[
      {"vmid":100,"status":"running","name":"pxe.home.arpa","cpus":1,"cpu":0.1,"maxmem":4294967296},
      {"vmid":101,"status":"running","name":"test1","cpus":1,"maxmem":536870912},
      {"vmid":107,"status":"stopped","name":"new-one","cpus":1,"maxmem":536870912}]})"));
  f.http.on("GET /api2/json/nodes/pve/qemu/101/agent/network-get-interfaces",
            http_answer(500, R"({"data":null})", "QEMU guest agent is not running"));
  f.http.on("GET /api2/json/nodes/pve/qemu/107/config",
            http_answer(200, R"({"data":{"description":"fresh"}})"));
  f.http.clear_requests();
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(r.detail_requests == 3);  // 101 config + 101 agent + 107 config
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/101/config") == 1);
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/101/agent/network-get-interfaces") == 1);
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/107/config") == 1);
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/100/config") == 0);
  CHECK(find(r, 107)->notes == std::optional<std::string>("fresh"));

  // The missing agent was an answer: not asked again next cycle.
  f.http.clear_requests();
  REQUIRE(f.client.read_guests().ok());
  CHECK(f.http.requests().size() == 2);

  // After the TTL every guest's details are read again.
  f.clock.advance(3601s);
  f.http.clear_requests();
  auto late_read = f.client.read_guests();
  REQUIRE_MESSAGE(late_read.ok(), message_of(late_read));
  const auto& late = *late_read;
  CHECK(late.detail_requests > 0);
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/100/config") == 1);
}

TEST_CASE("a passing failure of a detail call keeps the known details and is retried next cycle") {
  Fixture f(token_options());
  serve_node(f.http);
  REQUIRE(f.client.read_guests().ok());
  f.http.on(kQemu,
            http_answer(200, R"({"data":[{"vmid":100,"status":"paused","name":"pxe","cpus":1}]})"));
  f.http.on("GET /api2/json/nodes/pve/qemu/100/config",
            http_answer(500, R"({"data":null})",
                        "Configuration file 'nodes/pve/qemu-server/100.conf' does not exist"));
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(find(r, 100)->notes == std::optional<std::string>("notes of 100"));
  f.http.clear_requests();
  REQUIRE(f.client.read_guests().ok());
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/100/config") == 1);
}

TEST_CASE("a guest agent call refused for want of VM.Monitor is cached and not asked every cycle") {
  Fixture f(token_options());
  serve_node(f.http);
  f.http.on("GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces",
            http_answer(403, "", "Permission check failed (/vms/100, VM.Monitor)"));
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(find(r, 100)->notes == std::optional<std::string>("notes of 100"));
  CHECK_FALSE(find(r, 100)->ip_address.has_value());
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces") == 1);
  f.http.clear_requests();
  REQUIRE(f.client.read_guests().ok());
  CHECK(f.http.count("GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces") == 0);
  CHECK(f.http.requests().size() == 2);  // the two list calls only
}

TEST_CASE("VM_DETAILS off and SYNC_GUEST_TYPES=qemu make one list call and nothing else") {
  auto o = token_options();
  o.vm_details = false;
  o.sync_lxc = false;
  Fixture f(o);
  serve_node(f.http);
  f.client.check_permissions();  // as the cycle does first (the fake cannot answer it)
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(r.requests == 1);
  CHECK(r.guests.size() == 2);
  CHECK_FALSE(find(r, 100)->notes.has_value());
}

TEST_CASE("ticket auth: login - cookie - renewal after an hour - one re-login on 401") {
  Fixture f(password_options());
  serve_node(f.http);
  int logins = 0;
  f.http.on(kTicket, [&](const HttpRequest& req) {
    ++logins;
    const auto n = std::to_string(logins);
    if (req.body != "username=root%40pam&password=p%40ss%20word" &&
        req.body != "username=root%40pam&password=PVE%3Aroot%40pam%3A" +
                        std::to_string(logins - 1) + "%3A%3Asig") {
      return http_answer(401, R"({"data":null})", "authentication failure");
    }
    return http_answer(200, R"({"data":{"ticket":"PVE:root@pam:)" + n +
                                R"(::sig","CSRFPreventionToken":"csrf)" + n +
                                R"(","username":"root@pam"}})");
  });
  REQUIRE(f.client.read_guests().ok());
  CHECK(logins == 1);
  const auto first = f.http.requests();
  CHECK(first.front().method == "POST");
  CHECK(header(first.front(), "Content-Type") == "application/x-www-form-urlencoded");
  CHECK(header(first[1], "Cookie") == "PVEAuthCookie=PVE:root@pam:1::sig");
  CHECK(header(first[1], "Authorization").empty());
  CHECK(header(first[1], "CSRFPreventionToken").empty());  // GET needs no CSRF token

  // Within the hour the ticket is reused.
  f.clock.advance(59min);
  REQUIRE(f.client.read_guests().ok());
  CHECK(logins == 1);

  // After an hour it is renewed by posting it as the password.
  f.clock.advance(2min);
  f.http.clear_requests();
  REQUIRE(f.client.read_guests().ok());
  CHECK(logins == 2);
  CHECK(f.http.requests().front().body ==
        "username=root%40pam&password=PVE%3Aroot%40pam%3A1%3A%3Asig");
  CHECK(header(f.http.requests()[1], "Cookie") == "PVEAuthCookie=PVE:root@pam:2::sig");

  // A refused ticket: one fresh login, then the call again.
  int refusals = 1;
  f.http.on(kLxc, [&](const HttpRequest& req) {
    if (refusals > 0 && header(req, "Cookie") == "PVEAuthCookie=PVE:root@pam:2::sig") {
      --refusals;
      return http_answer(401, "", "permission denied - invalid PVE ticket");
    }
    return http_answer(200, fixture("nodes-node-lxc.pve8-vmid-string.json"));
  });
  f.http.clear_requests();
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  CHECK(logins == 3);
  CHECK(f.http.count(kLxc) == 2);
}

TEST_CASE("a wrong password is a clear auth failure - one login attempt and no loop") {
  auto o = password_options();
  o.credentials = ProxmoxCredentials{.user = "root@pam", .password = "wrong"};
  Fixture f(o);
  serve_node(f.http);
  f.http.on(kTicket, http_answer(401, R"({"data":null})", "authentication failure"));
  auto r = f.client.read_guests();
  CHECK_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::auth);
  CHECK(
      r.error().message ==
      "Proxmox rejected the login of root@pam (401 authentication failure): check PROXMOX_USER and "
      "PROXMOX_PASSWORD");
  CHECK(f.http.requests().size() == 1);
  CHECK(r.error().message.find("wrong") == std::string::npos);
}

TEST_CASE("reloaded credentials: a changed password logs in anew - a token replaces the ticket") {
  Fixture f(password_options());
  serve_node(f.http);
  // The server knows only the new password.
  f.http.on(kTicket, [](const HttpRequest& req) {
    if (req.body != "username=root%40pam&password=new-password") {
      return http_answer(401, R"({"data":null})", "authentication failure");
    }
    return http_answer(200, R"({"data":{"ticket":"PVE:root@pam:2::sig",)"
                            R"("CSRFPreventionToken":"2:csrf","username":"root@pam"}})");
  });
  CHECK_FALSE(f.client.read_guests().ok());
  CHECK(f.http.count(kTicket) == 1);
  auto changed = password_credentials();
  changed.password = "new-password";
  f.credentials = changed;
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  CHECK(f.http.count(kTicket) == 2);
  // The same credentials again change nothing: the ticket is kept.
  f.credentials = changed;
  REQUIRE(f.client.read_guests().ok());
  CHECK(f.http.count(kTicket) == 2);
  // A token instead: no more logins, the header on every request.
  f.credentials = token_credentials();
  f.http.clear_requests();
  REQUIRE(f.client.read_guests().ok());
  CHECK(f.http.count(kTicket) == 0);
  for (const auto& req : f.http.requests()) {
    CHECK(header(req, "Authorization") == "PVEAPIToken=agent@pve!sync=tok-secret");
    CHECK(header(req, "Cookie").empty());
  }
}

TEST_CASE("a body that fails after a 200 head says why - not 200 OK") {
  Fixture f(token_options());
  auto cut = http_answer(200, R"({"data":[)", "OK");
  cut.kind = FailureKind::server;
  cut.error =
      "GET https://127.0.0.1:8006/api2/json/nodes/pve/qemu: response body over the 16 MiB "
      "limit of Proxmox responses";
  f.http.on(kQemu, cut);
  auto r = f.client.read_guests();
  CHECK_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::server);
  CHECK_MESSAGE(r.error().message.find("response body over the 16 MiB limit") != std::string::npos,
                r.error().message);
  CHECK(r.error().message.find("200 OK") == std::string::npos);
}

TEST_CASE("a rejected token is an auth failure that names the settings - without the secret") {
  Fixture f(token_options());
  f.http.on(kQemu, http_answer(401, "", "invalid token value!"));
  auto r = f.client.read_guests();
  CHECK_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::auth);
  CHECK(r.error().message ==
        "Proxmox rejected the API token (401 invalid token value!): check PROXMOX_TOKEN_ID and "
        "PROXMOX_TOKEN_SECRET");
  CHECK(r.error().message.find("tok-secret") == std::string::npos);
  CHECK(f.http.requests().size() == 1);
}

TEST_CASE("a missing privilege is an auth failure that names the role") {
  Fixture f(token_options());
  f.http.on(kQemu,
            http_answer(403, R"({"data":null})", "Permission check failed (/vms, VM.Audit)"));
  auto r = f.client.read_guests();
  CHECK(r.error().kind == ErrorKind::auth);
  CHECK(r.error().message.find("403 Permission check failed (/vms, VM.Audit)") !=
        std::string::npos);
  CHECK(r.error().message.find("PVEAuditor") != std::string::npos);
}

TEST_CASE("an empty node seen through a token gets the VM.Audit hint") {
  Fixture f(token_options());
  f.http.on(kQemu, http_answer(200, R"({"data":[]})"));
  f.http.on(kLxc, http_answer(200, R"({"data":[]})"));
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(r.guests.empty());
  CHECK(r.hint.find("VM.Audit") != std::string::npos);
}

TEST_CASE("server errors - garbage and partial lists") {
  Fixture f(token_options());
  serve_node(f.http);
  f.http.on(kLxc, http_answer(596, "", "Connection timed out"));
  auto r = f.client.read_guests();
  CHECK_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::server);
  CHECK(r.error().message ==
        "GET /nodes/pve/lxc on https://127.0.0.1:8006: 596 Connection timed out");

  f.http.on(kLxc, http_answer(200, "<html>oops</html>"));
  auto garbage = f.client.read_guests();
  CHECK_FALSE(garbage.ok());
  CHECK(garbage.error().kind == ErrorKind::bad_reply);
  CHECK(garbage.error().message.find("the answer is not understood: the body is not JSON") !=
        std::string::npos);

  f.http.on(
      kLxc,
      http_answer(200,
                  R"({"data":[{"vmid":"x","status":"running"},{"vmid":110,"status":"stopped"}]})"));
  f.http.on("GET /api2/json/nodes/pve/lxc/110/config", http_answer(200, R"({"data":{}})"));
  auto partial_read = f.client.read_guests();
  REQUIRE_MESSAGE(partial_read.ok(), message_of(partial_read));
  const auto& partial = *partial_read;
  CHECK_FALSE(partial.complete);
  CHECK(partial.rejected.size() == 1);
  CHECK(find(partial, 110) != nullptr);

  f.http.on(kQemu, test::http_failure(FailureKind::network, "connection refused"));
  auto down = f.client.read_guests();
  CHECK(down.error().kind == ErrorKind::network);
  CHECK(down.error().message ==
        "GET /nodes/pve/qemu on https://127.0.0.1:8006: connection refused");
}

TEST_CASE("the node name: the setting - else /cluster/status - else the host name") {
  auto o = token_options();
  o.node_name = "";
  {
    Fixture f(o);
    f.http.on("GET /api2/json/cluster/status",
              http_answer(200, fixture("cluster-status.pve74-4node.json")));
    CHECK(f.client.node_name() == "node1");
    CHECK(f.client.node_name() == "node1");
    CHECK(f.http.requests().size() == 1);  // learnt once
  }
  {
    Fixture f(o);  // a token without Sys.Audit: 403 for good
    f.http.on("GET /api2/json/cluster/status",
              http_answer(403, R"({"data":null})", "Permission check failed (/, Sys.Audit)"));
    CHECK(f.client.node_name() == "host-from-uname");
    CHECK(f.client.node_name() == "host-from-uname");
    CHECK(f.http.requests().size() == 1);
  }
  {
    Fixture f(o);  // the API is down: asked again later
    f.http.on("GET /api2/json/cluster/status", test::http_failure(FailureKind::network, "refused"));
    CHECK(f.client.node_name() == "host-from-uname");
    f.http.on("GET /api2/json/cluster/status",
              http_answer(200, fixture("cluster-status.pve74-4node.json")));
    CHECK(f.client.node_name() == "node1");
  }
  {
    Fixture f(token_options());
    CHECK(f.client.node_name() == "pve");
    CHECK(f.http.requests().empty());
  }
}

namespace {

const std::string kVersion = "GET /api2/json/version";
const std::string kPermissions = "GET /api2/json/access/permissions";
const std::string kAgentOf100 = "GET /api2/json/nodes/pve/qemu/100/agent/network-get-interfaces";

// A PVE `version` node whose token holds `privileges` on / and /vms.
void serve_permissions(FakeHttp& http, const std::string& version,
                       const std::vector<std::string>& privileges) {
  nlohmann::json granted = nlohmann::json::object();
  for (const auto& p : privileges) {
    granted[p] = 1;
  }
  http.on(kVersion, http_answer(200, nlohmann::json({{"data",
                                                      {{"version", version},
                                                       {"release", version.substr(0, 3)},
                                                       {"repoid", "0f39f621"}}}})
                                         .dump()));
  http.on(kPermissions,
          http_answer(200, nlohmann::json({{"data", {{"/", granted}, {"/vms", granted}}}}).dump()));
}

}  // namespace

TEST_CASE("the permission check: asked once - each missing privilege logged once - the state") {
  test::LogCapture logged;
  Fixture f(token_options());
  serve_node(f.http);
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit"});
  f.http.on(kAgentOf100, http_answer(403, "",
                                     "Permission check failed (/vms/100, "
                                     "VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)"));
  CHECK_FALSE(f.client.permissions().checked.has_value());
  f.client.check_permissions();
  f.client.check_permissions();
  REQUIRE(f.client.read_guests().ok());
  f.client.check_permissions();
  CHECK(f.http.count(kVersion) == 1);
  CHECK(f.http.count(kPermissions) == 1);
  const auto st = f.client.permissions();
  CHECK(st.checked == f.clock.unix_now());
  CHECK(st.version == "9.0.3");
  CHECK_FALSE(st.error.has_value());
  REQUIRE(st.missing.size() == 1);
  CHECK(st.missing[0].privilege == "VM.GuestAgent.Audit");
  CHECK(st.missing[0].path == "/vms");
  CHECK(st.missing[0].effect == "QEMU guest IPs stay empty");
  CHECK(logged.count("proxmox_privilege_missing") == 1);
  CHECK(logged.count("privilege=VM.GuestAgent.Audit") == 1);
  CHECK(logged.count("fix=\"pveum acl modify / --roles PVEAuditor") == 1);
  // The refused guest agent call was explained already.
  CHECK(logged.count("proxmox_agent_denied") == 0);
  for (const auto& l : logged.lines) {
    CHECK(l.find("tok-secret") == std::string::npos);
  }
}

TEST_CASE("the permission check: every privilege - and PVE 8 without VM.Monitor") {
  {
    test::LogCapture logged;
    Fixture f(token_options());
    serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
    f.client.check_permissions();
    CHECK(f.client.permissions().missing.empty());
    CHECK(logged.count("proxmox_permissions: agent@pve!sync has every privilege") == 1);
  }
  test::LogCapture logged;
  Fixture f(token_options());
  serve_permissions(f.http, "8.4.14", {"VM.Audit", "Sys.Audit"});
  f.client.check_permissions();
  const auto st = f.client.permissions();
  REQUIRE(st.missing.size() == 1);
  CHECK(st.missing[0].privilege == "VM.Monitor");
  // Going without it is the advice: said, not warned.
  CHECK(logged.count("info proxmox_privilege_missing") == 1);
  CHECK(logged.count("guest-exec") == 1);
}

TEST_CASE("the permission check again after the credentials changed - not for the same ones") {
  test::LogCapture logged;
  Fixture f(token_options());
  serve_permissions(f.http, "9.0.3", {"VM.Audit"});
  f.client.check_permissions();
  f.credentials = token_credentials();
  f.client.check_permissions();
  CHECK(f.http.count(kPermissions) == 1);
  auto changed = token_credentials();
  changed.token_secret = "other-secret";
  f.credentials = changed;
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  f.client.check_permissions();
  CHECK(f.http.count(kPermissions) == 2);
  CHECK(f.client.permissions().missing.empty());
  CHECK(logged.count("proxmox_privilege_missing") == 2);  // Sys.Audit, the guest agent: once
}

TEST_CASE("permissions that cannot be read are unknown - logged once - not asked again") {
  test::LogCapture logged;
  Fixture f(token_options());
  serve_node(f.http);
  serve_permissions(f.http, "6.1-3", {});
  f.http.on(kPermissions, http_answer(501, R"({"data":null})",
                                      "Method 'GET /access/permissions' not implemented"));
  f.client.check_permissions();
  REQUIRE(f.client.read_guests().ok());
  f.client.check_permissions();
  CHECK(f.http.count(kPermissions) == 1);
  const auto st = f.client.permissions();
  CHECK_FALSE(st.checked.has_value());
  CHECK(st.missing.empty());
  REQUIRE(st.error.has_value());
  CHECK(st.error->find("501") != std::string::npos);
  CHECK(logged.count("proxmox_permissions_unknown") == 1);

  // A malformed answer: unknown, with the parser's reason.
  Fixture g(token_options());
  serve_permissions(g.http, "9.0.3", {});
  g.http.on(kPermissions, http_answer(200, R"({"data":{"/vms":["VM.Audit"]}})"));
  g.client.check_permissions();
  REQUIRE(g.client.permissions().error.has_value());
  CHECK(g.client.permissions().error->find("not understood: the privileges of \"/vms\"") !=
        std::string::npos);
}

TEST_CASE("permissions Proxmox did not answer are asked again once after a good read") {
  test::LogCapture logged;
  Fixture f(token_options());
  serve_node(f.http);
  f.http.on(kVersion, test::http_failure(FailureKind::network, "connection refused"));
  f.client.check_permissions();
  f.client.check_permissions();  // no answer came, and no read since: not asked
  CHECK(f.http.count(kVersion) == 1);
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  REQUIRE(f.client.read_guests().ok());
  f.client.check_permissions();
  f.client.check_permissions();
  CHECK(f.http.count(kVersion) == 2);
  CHECK(f.http.count(kPermissions) == 1);
  CHECK(f.client.permissions().checked.has_value());
  CHECK_FALSE(f.client.permissions().error.has_value());
  CHECK(logged.count("proxmox_permissions_unknown") == 1);
}

TEST_CASE("an empty node: the VM.Audit hint is definite once the permissions are known") {
  Fixture f(token_options());
  f.http.on(kQemu, http_answer(200, R"({"data":[]})"));
  f.http.on(kLxc, http_answer(200, R"({"data":[]})"));
  serve_permissions(f.http, "9.0.3", {"Sys.Audit"});
  f.client.check_permissions();
  auto r_read = f.client.read_guests();
  REQUIRE_MESSAGE(r_read.ok(), message_of(r_read));
  const auto& r = *r_read;
  CHECK(r.hint.find("lacks VM.Audit on /vms") != std::string::npos);

  // It may see every guest: the node has none, nothing to hint at.
  Fixture g(token_options());
  g.http.on(kQemu, http_answer(200, R"({"data":[]})"));
  g.http.on(kLxc, http_answer(200, R"({"data":[]})"));
  serve_permissions(g.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  g.client.check_permissions();
  CHECK(g.client.read_guests()->hint.empty());
}

// Issue 32: Proxmox leaves out of its lists what the user or token may not
// audit, with 200. A read is complete only when the permission check showed
// VM.Audit on /vms, and a read that shrinks asks again before it is believed.
TEST_CASE("a read is complete only with VM.Audit on /vms - a shrunken read asks again") {
  Fixture f(token_options());
  serve_node(f.http);
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  f.client.check_permissions();
  auto full = f.client.read_guests();
  REQUIRE_MESSAGE(full.ok(), message_of(full));
  CHECK(full->complete);
  CHECK(full->incomplete_reason.empty());
  CHECK(f.http.count(kPermissions) == 1);
  // The token loses VM.Audit: the lists answer 200 with nothing.
  f.http.on(kQemu, http_answer(200, R"({"data":[]})"));
  f.http.on(kLxc, http_answer(200, R"({"data":[]})"));
  serve_permissions(f.http, "9.0.3", {"Sys.Audit"});
  auto empty = f.client.read_guests();
  REQUIRE_MESSAGE(empty.ok(), message_of(empty));
  CHECK(f.http.count(kPermissions) == 2);  // asked again because the read shrank
  CHECK_FALSE(empty->complete);
  CHECK(empty->incomplete_reason.find("lacks VM.Audit on /vms") != std::string::npos);
  // While the privilege is missing, each read asks again, so that its return counts at once.
  CHECK_FALSE(f.client.read_guests()->complete);
  CHECK(f.http.count(kPermissions) == 3);
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  CHECK(f.client.read_guests()->complete);
  CHECK(f.http.count(kPermissions) == 4);
  // With every privilege and a read that did not shrink, nothing more is asked.
  CHECK(f.client.read_guests()->complete);
  CHECK(f.http.count(kPermissions) == 4);
}

TEST_CASE("an entry not understood makes only its VMID unknown - one without a VMID the read") {
  Fixture f(token_options());
  serve_node(f.http);
  serve_permissions(f.http, "9.0.3", {"VM.Audit", "Sys.Audit", "VM.GuestAgent.Audit"});
  f.client.check_permissions();
  f.http.on(kQemu, http_answer(200, R"({"data":[{"vmid":100,"status":"running","name":"a"},)"
                                    R"({"vmid":101,"name":"no status"}]})"));
  auto r = f.client.read_guests();
  REQUIRE_MESSAGE(r.ok(), message_of(r));
  CHECK(r->complete);
  CHECK(r->rejected_vmids == std::set<std::int64_t>{101});
  f.http.on(kQemu, http_answer(200, R"({"data":[{"vmid":100,"status":"running","name":"a"},)"
                                    R"({"name":"no vmid","status":"running"}]})"));
  auto partial = f.client.read_guests();
  REQUIRE_MESSAGE(partial.ok(), message_of(partial));
  CHECK_FALSE(partial->complete);
  CHECK(partial->incomplete_reason.find("name no VMID") != std::string::npos);
}

TEST_CASE("may_see asks the permissions of one guest's path") {
  Fixture f(token_options());
  f.http.on(kPermissions, [](const HttpRequest& r) {
    const auto query = r.url.substr(r.url.find('?') + 1);
    if (query == "path=%2Fvms%2F101") {
      return http_answer(200, R"({"data":{"/vms/101":{"VM.Audit":1,"VM.Console":0}}})");
    }
    if (query == "path=%2Fvms%2F102") {
      return http_answer(200, R"({"data":{}})");
    }
    if (query == "path=%2Fvms%2F103") {
      return http_answer(200, R"({"data":{"/vms":{"VM.Audit":1}}})");
    }
    return http_answer(500, "", "Internal Server Error");
  });
  CHECK(f.client.may_see(101).value());
  CHECK_FALSE(f.client.may_see(102).value());
  CHECK_FALSE(f.client.may_see(103).value());  // the answer must name the path asked for
  CHECK_FALSE(f.client.may_see(104).ok());     // no answer: unknown, never "hidden"
}

TEST_CASE("the fallback read reports a guest of an offline node as the skeleton it is") {
  FakeHttp http;
  test::FakeClock clock;
  auto o = token_options();
  o.node_name = "pve2";  // the offline node of the fixture
  ProxmoxClient client(
      o, [&](const HttpRequest& r) { return http.send(r); }, clock,
      ProxmoxFailover{[] { return false; }, [] { return true; }, [](const std::string&) {}});
  http.on("GET /api2/json/cluster/resources",
          http_answer(200, fixture("cluster-resources-type-vm.vm-on-offline-node.json")));
  auto r = client.read_guests();
  REQUIRE_MESSAGE(r.ok(), message_of(r));
  CHECK(r->source == GuestSource::cluster);
  CHECK_FALSE(r->complete);
  REQUIRE(r->guests.size() == 1);
  CHECK(r->guests[0].vmid == 1002);
  CHECK(r->guests[0].unknown);  // no values: the plan sends nothing for it
  CHECK(r->guests[0].status == "unknown");
}

TEST_CASE("reloaded options: guest types - details - host and the auto node name apply at once") {
  FakeHttp http;
  test::FakeClock clock;
  std::mutex mutex;
  auto o = token_options();
  ProxmoxClient client(
      Live<ProxmoxClientOptions>(std::function<ProxmoxClientOptions()>([&] {
        std::lock_guard lock(mutex);
        return o;
      })),
      [&http](const HttpRequest& r) { return http.send(r); }, clock);
  const auto reload = [&](const std::function<void(ProxmoxClientOptions&)>& change) {
    std::lock_guard lock(mutex);
    change(o);
  };
  serve_node(http);
  auto first = client.read_guests();
  REQUIRE_MESSAGE(first.ok(), message_of(first));
  CHECK(first->requests > 2);  // both lists and the details

  // SIGHUP: SYNC_GUEST_TYPES=qemu, VM_DETAILS=false.
  reload([](ProxmoxClientOptions& x) {
    x.sync_lxc = false;
    x.vm_details = false;
  });
  const auto lxc_lists = http.count(kLxc);
  const auto qemu_lists = http.count(kQemu);
  auto second = client.read_guests();
  REQUIRE_MESSAGE(second.ok(), message_of(second));
  // One list, no details; the read shrank, so the permissions are asked too.
  CHECK(http.count(kLxc) == lxc_lists);
  CHECK(http.count(kQemu) == qemu_lists + 1);
  CHECK(second->detail_requests == 0);
  CHECK_FALSE(find(*second, 100)->notes.has_value());

  // SIGHUP: PROXMOX_HOST on another address, PROXMOX_NODE_NAME=auto.
  http.on("GET /api2/json/cluster/status",
          http_answer(200, fixture("cluster-status.pve74-4node.json")));
  reload([](ProxmoxClientOptions& x) {
    x.host = *parse_url("https://10.0.0.2:8006", {"https", 8006});
    x.node_name = "";
  });
  CHECK(client.node_name() == "node1");
  CHECK(http.requests().back().url == "https://10.0.0.2:8006/api2/json/cluster/status");
  CHECK(client.node_name() == "node1");
  CHECK(http.count("GET /api2/json/cluster/status") == 1);
  // Learnt from one host, asked again of another (it may be another node).
  reload([](ProxmoxClientOptions& x) { x.host = *parse_url("https://10.0.0.3", {"https", 8006}); });
  CHECK(client.node_name() == "node1");
  CHECK(http.count("GET /api2/json/cluster/status") == 2);
  CHECK(http.requests().back().url == "https://10.0.0.3:8006/api2/json/cluster/status");
}

TEST_CASE("a node Proxmox does not know is a wrong PROXMOX_NODE_NAME - said as such") {
  Fixture f(token_options());
  f.http.on(kQemu, http_answer(500, R"({"data":null})",
                               "hostname lookup 'pve' failed - failed to get address info for: "
                               "pve: Name or service not known"));
  auto r = f.client.read_guests();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("check PROXMOX_NODE_NAME") != std::string::npos);
  CHECK(is_unknown_node_answer(HttpOutcome{
      .kind = FailureKind::server, .status = 500, .reason = "hostname lookup 'x' failed - ..."}));
  CHECK_FALSE(is_unknown_node_answer(
      HttpOutcome{.kind = FailureKind::server, .status = 500, .reason = "Internal Server Error"}));
  CHECK_FALSE(is_unknown_node_answer(HttpOutcome{
      .kind = FailureKind::server, .status = 595, .reason = "hostname lookup 'x' failed"}));
}
