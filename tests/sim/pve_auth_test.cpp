// Authentication as pveproxy does it: API tokens (privilege separation),
// tickets with CSRF tokens, expiry and renewal, and the delayed 401s.

#include "tests/sim/pve_auth.hpp"

#include <algorithm>
#include <cctype>

#include <doctest/doctest.h>

#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

namespace {

Reply login(SimCluster& c, const std::string& body) {
  auto req = c.request("pve1", "/access/ticket", {});
  req.method = "POST";
  req.body = body;
  req.headers = {"Content-Type: application/x-www-form-urlencoded"};
  return fetch(req);
}

struct Session {
  std::string ticket;
  std::string csrf;
};

Session login_ok(SimCluster& c) {
  const auto r = login(c, "username=root%40pam&password=correct+horse");
  REQUIRE(r.status == 200);
  const auto d = r.json()["data"];
  return {d["ticket"].get<std::string>(), d["CSRFPreventionToken"].get<std::string>()};
}

std::string cookie(const std::string& ticket) {
  return "Cookie: PVEAuthCookie=" + ticket;
}

// Form encoding of a ticket (':' '+' '/' '=' escaped).
std::string url_encode_for_test(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("an API token is accepted without CSRF token also for POST") {
  SimCluster c;
  CHECK(c.get("pve1", "/version").status == 200);
  c.cluster().add_guest({.vmid = 100, .node = "pve1"});
  auto req = c.request("pve1", "/nodes/pve1/qemu/100/status/start");
  req.method = "POST";
  CHECK(fetch(req).status == 200);
}

TEST_CASE("a bad token gets a delayed 401 with the reason and an empty body") {
  SimCluster c;
  const auto check_401 = [&](const std::string& header, const std::string& reason) {
    const auto r = c.get("pve1", "/version", {header});
    CHECK(r.status == 401);
    CHECK(r.reason == reason);
    CHECK(r.body.empty());
    CHECK(r.elapsed >= kAuthDelay);
  };
  check_401("Authorization: PVEAPIToken=" + kTokenId + "=wrong", "invalid token value!");
  check_401("Authorization: PVEAPIToken=agent@pve!other=" + kTokenSecret,
            "no such token 'other' for user 'agent@pve'");
  check_401("Authorization: PVEAPIToken=agent@pve!sync", "no tokenid specified");
  c.cluster().add_token({.id = "old@pve!gone", .secret = "x", .expired = true});
  check_401("Authorization: PVEAPIToken=old@pve!gone=x", "token 'gone' access expired");
  c.cluster().add_token({.id = "off@pve!t", .secret = "x", .user_enabled = false});
  check_401("Authorization: PVEAPIToken=off@pve!t=x", "user 'off@pve' is disabled");
}

TEST_CASE("a removed token gets 401 from the next request on - and works again when re-added") {
  SimCluster c;
  CHECK(c.get("pve1", "/version").status == 200);
  CHECK(c.cluster().remove_token(kTokenId));
  CHECK_FALSE(c.cluster().remove_token(kTokenId));
  const auto r = c.get("pve1", "/version");
  CHECK(r.status == 401);
  CHECK(r.reason == "no such token 'sync' for user 'agent@pve'");
  c.cluster().add_token({.id = kTokenId, .secret = kTokenSecret});
  CHECK(c.get("pve1", "/version").status == 200);
}

TEST_CASE("a changed password: the old one gets 401 while tickets already issued stay valid") {
  SimCluster c;
  const auto session = login_ok(c);
  auto user = c.cluster().user("root@pam");
  REQUIRE(user);
  user->password = "new battery staple";
  c.cluster().add_user(*user);
  CHECK(login(c, "username=root%40pam&password=correct+horse").status == 401);
  CHECK(c.get("pve1", "/version", {cookie(session.ticket)}).status == 200);
  CHECK(login(c, "username=root%40pam&password=new+battery+staple").status == 200);
}

TEST_CASE("no credentials get 401 No ticket") {
  SimCluster c;
  const auto r = c.get("pve1", "/nodes/pve1/qemu", {});
  CHECK(r.status == 401);
  CHECK(r.reason == "No ticket");
  CHECK(r.body.empty());
  // Authentication comes before the path lookup.
  CHECK(c.get("pve1", "/nodes/pve1/foo", {}).status == 401);
}

TEST_CASE("servers from 9.1.5 on give one reason for every authentication failure") {
  SimCluster c({.version = "9.1.5"});
  auto r = c.get("pve1", "/version", {"Authorization: PVEAPIToken=" + kTokenId + "=wrong"});
  CHECK(r.reason == "Authentication failed!");
  r = c.get("pve1", "/version", {"Cookie: PVEAuthCookie=PVE:root@pam:00000000::forged"});
  CHECK(r.reason == "Authentication failed!");
  CHECK(c.get("pve1", "/version", {}).reason == "No ticket");
}

TEST_CASE("a privilege-separated token without VM.Audit sees empty lists") {
  SimCluster c({.nodes = {"pve1", "pve2"}, .guests = 20});
  c.cluster().add_token({.id = "mon@pve!ro", .secret = "s", .privsep = true, .privileges = {}});
  const std::vector<std::string> h = {"Authorization: PVEAPIToken=mon@pve!ro=s"};
  for (const auto* path :
       {"/nodes/pve1/qemu", "/nodes/pve1/lxc", "/cluster/resources?type=vm", "/nodes/pve2/qemu"}) {
    const auto r = c.get("pve1", path, h);
    CHECK(r.status == 200);
    CHECK(r.body == "{\"data\":[]}");
  }
  // The nodes are listed all the same, without their figures.
  const auto nodes = c.get("pve1", "/cluster/resources", h).json()["data"];
  REQUIRE(nodes.size() == 2);
  for (const auto& n : nodes) {
    CHECK(n["type"] == "node");
    CHECK(n["status"] == "online");
    CHECK_FALSE(n.contains("maxcpu"));
    CHECK_FALSE(n.contains("mem"));
  }
  auto r = c.get("pve1", "/cluster/status", h);
  CHECK(r.status == 403);
  CHECK(r.reason == "Permission check failed (/, Sys.Audit)");
  CHECK(r.json() ==
        json{{"data", nullptr}, {"message", "Permission check failed (/, Sys.Audit)\n"}});
  CHECK(c.get("pve1", "/version", h).status == 200);

  c.cluster().add_token(
      {.id = "mon@pve!sys", .secret = "s", .privsep = true, .privileges = {"Sys.Audit"}});
  CHECK(c.get("pve1", "/cluster/status", {"Authorization: PVEAPIToken=mon@pve!sys=s"}).status ==
        200);
  // A token without privilege separation has the user's privileges.
  const auto on_pve1 = c.cluster().guests_on("pve1");
  const auto qemu_on_pve1 = std::count_if(on_pve1.begin(), on_pve1.end(),
                                          [](const Guest& g) { return g.type == GuestType::qemu; });
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"].size() ==
        static_cast<std::size_t>(qemu_on_pve1));
}

TEST_CASE("password login returns a ticket in the real format") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  const auto r = login(c, "username=root%40pam&password=correct+horse");
  REQUIRE(r.status == 200);
  const auto d = r.json()["data"];
  CHECK(d["username"] == "root@pam");
  CHECK(d["clustername"] == "pve-cluster");
  CHECK(d["cap"]["vms"]["VM.Audit"] == 1);
  const auto ticket = d["ticket"].get<std::string>();
  CHECK(ticket.starts_with("PVE:root@pam:"));
  CHECK(ticket.substr(13, 8).find_first_not_of("0123456789ABCDEF") == std::string::npos);
  CHECK(ticket.substr(21, 2) == "::");
  CHECK(ticket.size() == 23 + 344);
  const auto csrf = d["CSRFPreventionToken"].get<std::string>();
  CHECK(csrf.size() == 8 + 1 + 43);
  CHECK(csrf.substr(0, 8) == ticket.substr(13, 8));
  // The realm may come separately.
  CHECK(login(c, "username=root&realm=pam&password=correct+horse").status == 200);
}

TEST_CASE("wrong credentials get a delayed 401 authentication failure") {
  SimCluster c;
  for (const auto* body : {"username=root%40pam&password=wrong", "username=nobody%40pam&password=x",
                           "username=root&password=correct+horse"}) {
    const auto r = login(c, body);
    CHECK(r.status == 401);
    CHECK(r.reason == "authentication failure");
    CHECK(r.json() == json{{"data", nullptr}, {"message", "authentication failure\n"}});
    CHECK(r.elapsed >= kAuthDelay);
  }
  c.cluster().set_node_version("pve1", "7.4-16");
  CHECK(login(c, "username=root%40pam&password=wrong").body == "{\"data\":null}");
  CHECK(login(c, "username=root%40pam").status == 400);
}

TEST_CASE("the ticket cookie authenticates and non-GET requests need the CSRF token") {
  SimCluster c;
  c.cluster().add_guest({.vmid = 100, .node = "pve1"});
  const auto s = login_ok(c);
  CHECK(c.get("pve1", "/nodes/pve1/qemu", {cookie(s.ticket)}).status == 200);

  auto post = c.request("pve1", "/nodes/pve1/qemu/100/status/start", {cookie(s.ticket)});
  post.method = "POST";
  auto r = fetch(post);
  CHECK(r.status == 401);
  CHECK(r.reason == "Permission denied - invalid csrf token");
  CHECK(r.elapsed >= kAuthDelay);
  post.headers.push_back("CSRFPreventionToken: " + s.csrf.substr(0, 9) + "forged");
  CHECK(fetch(post).status == 401);
  post.headers.back() = "CSRFPreventionToken: " + s.csrf;
  r = fetch(post);
  CHECK(r.status == 200);
  CHECK(r.json()["data"].get<std::string>().find(":root@pam:") != std::string::npos);
}

TEST_CASE("a ticket expires after 2 hours of simulated time") {
  SimCluster c;
  const auto s = login_ok(c);
  c.cluster().advance(std::chrono::minutes(119));
  CHECK(c.get("pve1", "/version", {cookie(s.ticket)}).status == 200);
  c.cluster().advance(std::chrono::minutes(2));
  const auto r = c.get("pve1", "/version", {cookie(s.ticket)});
  CHECK(r.status == 401);
  CHECK(r.reason == "permission denied - invalid PVE ticket");
  CHECK(r.body.empty());
}

TEST_CASE("posting a valid ticket as the password renews it") {
  SimCluster c;
  const auto s = login_ok(c);
  c.cluster().advance(std::chrono::minutes(61));
  auto r = login(c, "username=root%40pam&password=" + url_encode_for_test(s.ticket));
  REQUIRE(r.status == 200);
  const auto renewed = r.json()["data"]["ticket"].get<std::string>();
  CHECK(renewed != s.ticket);
  c.cluster().advance(std::chrono::minutes(61));
  CHECK(c.get("pve1", "/version", {cookie(s.ticket)}).status == 401);
  CHECK(c.get("pve1", "/version", {cookie(renewed)}).status == 200);
  // An expired ticket renews nothing; another user's ticket neither.
  CHECK(login(c, "username=root%40pam&password=" + url_encode_for_test(s.ticket)).status == 401);
  c.cluster().add_user({.userid = "other@pve", .password = "pw"});
  CHECK(login(c, "username=other%40pve&password=" + url_encode_for_test(renewed)).status == 401);
}

TEST_CASE("tickets and CSRF tokens are bound to the key and the user") {
  const auto t = make_ticket("key", "root@pam", 1'700'000'000);
  CHECK(verify_ticket("key", t, 1'700'000'100) == std::optional<std::string>("root@pam"));
  CHECK_FALSE(verify_ticket("other", t, 1'700'000'100));
  CHECK_FALSE(verify_ticket("key", t, 1'700'000'000 + kTicketLifetime));
  CHECK_FALSE(verify_ticket("key", t, 1'700'000'000 - 400));
  auto forged = t;
  forged.replace(4, 4, "evil");
  CHECK_FALSE(verify_ticket("key", forged, 1'700'000'100));
  const auto csrf = make_csrf_token("key", "root@pam", 1'700'000'000);
  CHECK(verify_csrf_token("key", "root@pam", csrf, 1'700'000'100));
  CHECK_FALSE(verify_csrf_token("key", "other@pam", csrf, 1'700'000'100));
}

TEST_CASE("a user with two-factor auth gets a partial ticket that every API call refuses") {
  SimCluster c({.nodes = {"pve1", "pve2"},
                .users = {{.userid = "ops@pve", .password = "pw-ops-1234", .totp = "123456"}}});
  auto r = login(c, "username=ops%40pve&password=pw-ops-1234");
  REQUIRE(r.status == 200);
  const auto d = r.json()["data"];
  CHECK(d["NeedTFA"] == 1);
  CHECK(d["username"] == "ops@pve");
  CHECK(d["CSRFPreventionToken"].is_string());
  CHECK_FALSE(d.contains("cap"));            // create_ticket adds cap only without NeedTFA
  CHECK(d["clustername"] == "pve-cluster");  // ops@pve holds every privilege here
  const auto partial = d["ticket"].get<std::string>();
  // "PVE:!tfa!<challenge, ':' encoded>:<time>::<signature>"
  CHECK(partial.starts_with(R"(PVE:!tfa!{"totp"%3Atrue}:)"));
  CHECK(partial.find("::") == partial.size() - 344 - 2);

  for (const auto* path : {"/version", "/nodes/pve1/qemu", "/cluster/resources"}) {
    const auto denied = c.get("pve1", path, {cookie(partial)});
    CHECK(denied.status == 401);
    CHECK(denied.reason == "permission denied - invalid PVE ticket");
    CHECK(denied.body.empty());
    CHECK(denied.elapsed >= kAuthDelay);
  }
  c.cluster().set_node_version("pve2", "9.1.5");
  CHECK(c.get("pve2", "/version", {cookie(partial)}).reason == "Authentication failed!");
  // It renews nothing either.
  CHECK(login(c, "username=ops%40pve&password=" + url_encode_for_test(partial)).status == 401);

  // The second step: the partial ticket as tfa-challenge, the code as the password.
  const auto second = [&](const std::string& code, const std::string& user = "ops%40pve") {
    return login(c, "username=" + user + "&tfa-challenge=" + url_encode_for_test(partial) +
                        "&password=" + url_encode_for_test(code));
  };
  CHECK(second("totp:654321").status == 401);
  CHECK(second("123456").status == 401);
  CHECK(second("totp:123456", "root%40pam").status == 401);  // bound to its user
  r = second("totp:123456");
  REQUIRE(r.status == 200);
  const auto full = r.json()["data"];
  CHECK_FALSE(full.contains("NeedTFA"));
  CHECK(full["cap"].is_object());
  CHECK(full["ticket"].get<std::string>().starts_with("PVE:ops@pve:"));
  CHECK(c.get("pve1", "/version", {cookie(full["ticket"].get<std::string>())}).status == 200);
  // The one-step form: the code as otp.
  CHECK(login(c, "username=ops%40pve&password=pw-ops-1234&otp=totp%3A123456")
            .json()["data"]["ticket"]
            .get<std::string>()
            .starts_with("PVE:ops@pve:"));
  CHECK(login(c, "username=ops%40pve&password=pw-ops-1234&otp=totp%3A000000").status == 401);
  // The partial ticket is good for 2 hours like any other.
  c.cluster().advance(std::chrono::minutes(121));
  CHECK(second("totp:123456").status == 401);
}

TEST_CASE("partial tickets are bound to the key - the user - and the time") {
  const auto t = make_tfa_ticket("key", "ops@pve", R"({"totp":true})", 1'700'000'000);
  CHECK(verify_tfa_ticket("key", t, "ops@pve", 1'700'000'100) ==
        std::optional<std::string>(R"({"totp":true})"));
  CHECK_FALSE(verify_tfa_ticket("key", t, "root@pam", 1'700'000'100));
  CHECK_FALSE(verify_tfa_ticket("other", t, "ops@pve", 1'700'000'100));
  CHECK_FALSE(verify_tfa_ticket("key", t, "ops@pve", 1'700'000'000 + kTicketLifetime));
  // Not a full ticket, and a full ticket is no partial one.
  CHECK_FALSE(verify_ticket("key", t, 1'700'000'100));
  CHECK_FALSE(verify_tfa_ticket("key", make_ticket("key", "ops@pve", 1'700'000'000), "ops@pve",
                                1'700'000'100));
}
