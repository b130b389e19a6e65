// The privilege models of PVE 8 and PVE 9: which privilege lets the guest
// agent's network call through, what PVEAuditor holds, how ACL entries
// propagate, and GET /access/permissions for users, tokens and
// privilege-separated tokens, with and without `path`.

#include "tests/sim/pve_access.hpp"

#include <doctest/doctest.h>

#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

namespace {

const std::string kAgentCall = "/nodes/pve1/qemu/100/agent/network-get-interfaces";
const PveVersion kPve8 = PveVersion::parse("8.4.14");
const PveVersion kPve9 = PveVersion::parse("9.0.3");

// A cluster of one node of `version` with VM 100 running its guest agent.
struct AgentCluster {
  SimCluster c;
  explicit AgentCluster(const std::string& version) : c({.version = version}) {
    Guest g;
    g.vmid = 100;
    g.node = "pve1";
    g.status = GuestStatus::running;
    g.agent_configured = true;
    g.agent_running = true;
    g.ipv4 = "10.0.0.5/24";
    g.mac = "BC:24:11:AA:BB:CC";
    c.cluster().add_guest(g);
  }
  // A privilege-separated token mon@pve!<name> holding `acls`.
  std::vector<std::string> token(const std::string& name, std::vector<Acl> acls) {
    c.cluster().add_token({.id = "mon@pve!" + name,
                           .secret = "s",
                           .privsep = true,
                           .privileges = {},
                           .acls = std::move(acls)});
    return {"Authorization: PVEAPIToken=mon@pve!" + name + "=s"};
  }
  Reply get(const std::string& path, const std::vector<std::string>& headers) {
    return c.get("pve1", path, headers);
  }
};

Acl role(const std::string& path, const std::string& name, bool propagate = true) {
  return {.path = path, .role = name, .propagate = propagate};
}

Acl privs(const std::string& path, std::set<std::string> p, bool propagate = true) {
  return {.path = path, .privileges = std::move(p), .propagate = propagate};
}

}  // namespace

TEST_CASE("PVE 8: the guest agent call needs VM.Monitor - which PVEAuditor lacks") {
  AgentCluster a("8.4.14");
  auto r = a.get(kAgentCall, a.token("auditor", {role("/", "PVEAuditor")}));
  CHECK(r.status == 403);
  CHECK(r.reason == "Permission check failed (/vms/100, VM.Monitor)");
  // PVE 8 has no VM.GuestAgent.* privileges: granting one changes nothing.
  r = a.get(kAgentCall,
            a.token("new", {role("/", "PVEAuditor"), privs("/", {"VM.GuestAgent.Audit"})}));
  CHECK(r.status == 403);
  r = a.get(kAgentCall, a.token("monitor", {privs("/vms", {"VM.Monitor"})}));
  REQUIRE(r.status == 200);
  CHECK(r.json()["data"]["result"][1]["ip-addresses"][0]["ip-address"] == "10.0.0.5");
}

TEST_CASE(
    "PVE 9: the guest agent call needs VM.GuestAgent.Audit or Unrestricted - PVEAuditor has it") {
  AgentCluster a("9.0.3");
  CHECK(a.get(kAgentCall, a.token("auditor", {role("/", "PVEAuditor")})).status == 200);
  CHECK(a.get(kAgentCall, a.token("unrestricted", {privs("/vms", {"VM.GuestAgent.Unrestricted"})}))
            .status == 200);
  // VM.Monitor does not exist on PVE 9.
  const auto r = a.get(kAgentCall, a.token("monitor", {privs("/", {"VM.Audit", "VM.Monitor"})}));
  CHECK(r.status == 403);
  CHECK(r.reason ==
        "Permission check failed (/vms/100, VM.GuestAgent.Audit|VM.GuestAgent.Unrestricted)");
  // Granted on /vms without propagation: it does not reach /vms/100.
  CHECK(
      a.get(kAgentCall, a.token("flat", {privs("/vms", {"VM.GuestAgent.Audit"}, false)})).status ==
      403);
}

TEST_CASE("PVEAuditor and Administrator hold the privileges of their version") {
  const auto auditor8 = *builtin_role("PVEAuditor", kPve8);
  const auto auditor9 = *builtin_role("PVEAuditor", kPve9);
  for (const auto* p : {"VM.Audit", "Sys.Audit", "Datastore.Audit", "SDN.Audit", "Pool.Audit"}) {
    CHECK(auditor8.contains(p));
    CHECK(auditor9.contains(p));
  }
  CHECK_FALSE(auditor8.contains("VM.Monitor"));
  CHECK_FALSE(auditor8.contains("VM.GuestAgent.Audit"));
  CHECK(auditor9.contains("VM.GuestAgent.Audit"));
  CHECK_FALSE(auditor9.contains("VM.GuestAgent.Unrestricted"));
  CHECK(builtin_role("Administrator", kPve8)->contains("VM.Monitor"));
  CHECK_FALSE(builtin_role("Administrator", kPve9)->contains("VM.Monitor"));
  CHECK(builtin_role("Administrator", kPve9)->contains("VM.GuestAgent.Unrestricted"));
  CHECK_FALSE(builtin_role("NoSuchRole", kPve9).has_value());
}

TEST_CASE("ACL entries: propagation - deeper entries replace shallower ones - NoAccess") {
  const std::vector<Acl> acls = {role("/", "PVEAuditor"), privs("/vms/100", {"VM.PowerMgmt"}),
                                 role("/vms/101", "NoAccess"),
                                 privs("/nodes", {"Sys.Console"}, false)};
  CHECK(privileges_at(acls, "/", kPve9).at("VM.Audit") == true);
  CHECK(privileges_at(acls, "/vms/102", kPve9).at("VM.Audit") == true);
  // The entry on /vms/100 replaces what / gave there.
  CHECK(privileges_at(acls, "/vms/100", kPve9) == Privileges{{"VM.PowerMgmt", true}});
  CHECK(privileges_at(acls, "/vms/101", kPve9).empty());
  // Not propagated: on /nodes itself with the flag 0, and nothing of it below.
  CHECK(privileges_at(acls, "/nodes", kPve9) == Privileges{{"Sys.Console", false}});
  CHECK(privileges_at(acls, "/nodes/pve1", kPve9).at("Sys.Audit") == true);
  CHECK_FALSE(privileges_at(acls, "/nodes/pve1", kPve9).contains("Sys.Console"));
}

TEST_CASE("/access/permissions of a token without privilege separation: its user's") {
  AgentCluster a("9.0.3");
  // agent@pve is not a listed user: every privilege, on every default path.
  const auto d = a.get("/access/permissions", {kTokenHeader}).json()["data"];
  for (const auto* path :
       {"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}) {
    REQUIRE_MESSAGE(d.contains(path), path);
    CHECK(d[path]["VM.Audit"] == 1);
    CHECK(d[path]["VM.GuestAgent.Unrestricted"] == 1);
    CHECK_FALSE(d[path].contains("VM.Monitor"));
  }
  // A listed user with an ACL: the token without privilege separation has exactly that.
  a.c.cluster().add_user({.userid = "ro@pve", .acls = std::vector<Acl>{role("/", "PVEAuditor")}});
  a.c.cluster().add_token({.id = "ro@pve!t", .secret = "s"});
  const auto t = a.get("/access/permissions?path=/vms", {"Authorization: PVEAPIToken=ro@pve!t=s"});
  REQUIRE(t.status == 200);
  CHECK(t.json()["data"] == json{{"/vms",
                                  {{"Datastore.Audit", 1},
                                   {"Mapping.Audit", 1},
                                   {"Pool.Audit", 1},
                                   {"SDN.Audit", 1},
                                   {"Sys.Audit", 1},
                                   {"VM.Audit", 1},
                                   {"VM.GuestAgent.Audit", 1}}}});
}

TEST_CASE("/access/permissions of a privilege-separated token: its own and its user's in common") {
  AgentCluster a("8.4.14");
  const auto none = a.token("none", {});
  CHECK(a.get("/access/permissions", none).json()["data"] == json::object());
  CHECK(a.get("/access/permissions?path=/vms", none).json()["data"] ==
        json{{"/vms", json::object()}});

  const auto flat =
      a.token("flat", {privs("/vms", {"VM.Audit"}, false), privs("/", {"Sys.Audit"})});
  const auto d = a.get("/access/permissions", flat).json()["data"];
  // The entry on /vms replaces what / gave there, and does not reach below it.
  CHECK(d["/vms"] == json{{"VM.Audit", 0}});
  CHECK(d["/"] == json{{"Sys.Audit", 1}});
  CHECK(d["/nodes"] == json{{"Sys.Audit", 1}});
  CHECK(a.get("/access/permissions?path=/vms/100", flat).json()["data"] ==
        json{{"/vms/100", {{"Sys.Audit", 1}}}});

  // The user holds less than the token: only what both hold, propagated
  // only where both propagate.
  a.c.cluster().add_user({.userid = "mon@pve", .acls = std::vector<Acl>{privs("/", {"VM.Audit"})}});
  const auto both = a.get("/access/permissions", flat).json()["data"];
  CHECK(both == json{{"/vms", {{"VM.Audit", 0}}}});
}

TEST_CASE("/access/permissions of a ticket user - and of someone else") {
  AgentCluster a("9.0.3");
  a.c.cluster().add_user({.userid = "ops@pve",
                          .password = "pw-ops-1234",
                          .acls = std::vector<Acl>{role("/vms", "PVEAuditor")}});
  const auto login = fetch([&] {
    auto r = a.c.request("pve1", "/access/ticket", {});
    r.method = "POST";
    r.body = "username=ops%40pve&password=pw-ops-1234";
    return r;
  }());
  REQUIRE(login.status == 200);
  const std::vector<std::string> cookie = {"Cookie: PVEAuthCookie=" +
                                           login.json()["data"]["ticket"].get<std::string>()};
  const auto d = a.get("/access/permissions", cookie).json()["data"];
  CHECK(d.size() == 1);
  CHECK(d["/vms"]["VM.GuestAgent.Audit"] == 1);
  // Another user's permissions need Sys.Audit on /access; root@pam has it.
  const auto other = a.get("/access/permissions?userid=root@pam", cookie);
  CHECK(other.status == 403);
  CHECK(other.reason == "Permission check failed (/access, Sys.Audit)");
  const auto by_root = a.get("/access/permissions?userid=ops@pve&path=/", {kTokenHeader});
  CHECK(by_root.json()["data"] == json{{"/", json::object()}});
  CHECK(a.get("/access/permissions?path=vms", {kTokenHeader}).status == 400);
}

TEST_CASE("/access/permissions lists the paths of every ACL entry and pool member") {
  AgentCluster a("9.0.3");
  a.c.cluster().update_guest(100, [](Guest& g) { g.pool = "customers"; });
  const auto h = a.token(
      "deep", {privs("/vms/100", {"VM.Audit"}), privs("/storage/local", {"Datastore.Audit"})});
  const auto d = a.get("/access/permissions", h).json()["data"];
  CHECK(d == json{{"/storage/local", {{"Datastore.Audit", 1}}}, {"/vms/100", {{"VM.Audit", 1}}}});
  // Someone else's ACL path shows with the privileges this token has there.
  const auto all = a.get("/access/permissions", {kTokenHeader}).json()["data"];
  CHECK(all.contains("/storage/local"));
  CHECK(all.contains("/vms/100"));
}

namespace {

// A cluster of one node with VM 100 in the pool "customers", VM 101 and CT
// 200 in none, and a privilege-separated token mon@pve!<name> per test.
struct PoolCluster {
  SimCluster c;
  PoolCluster() : c({.version = "8.4.14"}) {
    c.cluster().add_guest({.vmid = 100, .node = "pve1", .name = "in-pool", .pool = "customers"});
    c.cluster().add_guest({.vmid = 101, .node = "pve1", .name = "outside"});
    c.cluster().add_guest({.vmid = 200, .node = "pve1", .type = GuestType::lxc, .name = "ct"});
  }
  std::vector<std::string> token(const std::string& name, std::vector<Acl> acls) {
    c.cluster().add_token({.id = "mon@pve!" + name,
                           .secret = "s",
                           .privsep = true,
                           .privileges = {},
                           .acls = std::move(acls)});
    return {"Authorization: PVEAPIToken=mon@pve!" + name + "=s"};
  }
  // The vmids a list shows to `h`.
  std::set<int> listed(const std::string& path, const std::vector<std::string>& h) {
    const auto r = c.get("pve1", path, h);
    REQUIRE(r.status == 200);
    std::set<int> out;
    const auto data = r.json()["data"];
    for (const auto& e : data) {
      if (e.contains("vmid")) {
        out.insert(e["vmid"].get<int>());
      }
    }
    return out;
  }
  // Whether every view of the API agrees that `h` may audit the guest.
  bool audits(int vmid, const std::vector<std::string>& h) {
    const auto type = vmid < 200 ? std::string("qemu") : std::string("lxc");
    const auto v = std::to_string(vmid);
    const bool in_list = listed("/nodes/pve1/" + type, h).contains(vmid);
    const bool in_resources = listed("/cluster/resources?type=vm", h).contains(vmid);
    const auto status = c.get("pve1", "/nodes/pve1/" + type + "/" + v + "/status/current", h);
    const auto perms = c.get("pve1", "/access/permissions?path=/vms/" + v, h).json()["data"];
    const auto all = c.get("pve1", "/access/permissions", h).json()["data"];
    const bool in_perms = perms["/vms/" + v].contains("VM.Audit");
    const bool in_all = all.contains("/vms/" + v) && all["/vms/" + v].contains("VM.Audit");
    CHECK_MESSAGE(in_list == in_resources, vmid);
    CHECK_MESSAGE(in_list == (status.status == 200), vmid);
    CHECK_MESSAGE(in_list == in_perms, vmid);
    if (status.status != 200) {
      CHECK(status.status == 403);
      CHECK(status.reason == "Permission check failed (/vms/" + v + ", VM.Audit)");
    }
    // Without `path` only the pool members and ACL paths are listed (101 is neither).
    if (vmid == 100) {
      CHECK_MESSAGE(in_list == in_all, vmid);
    }
    return in_list;
  }
};

}  // namespace

TEST_CASE("an ACL on a pool gives its guests the privileges - not propagated - and nothing else") {
  PoolCluster p;
  const auto h = p.token("pool", {role("/pool/customers", "PVEAuditor")});
  CHECK(p.audits(100, h));
  CHECK_FALSE(p.audits(101, h));
  CHECK_FALSE(p.audits(200, h));
  // Not propagated: the flag on /vms/100 is 0.
  const auto perms = p.c.get("pve1", "/access/permissions?path=/vms/100", h).json()["data"];
  CHECK(perms["/vms/100"]["VM.Audit"] == 0);
  // The same for a ticket user whose own ACL is on the pool.
  p.c.cluster().add_user({.userid = "ops@pve",
                          .password = "pw-ops-1234",
                          .acls = std::vector<Acl>{role("/pool/customers", "PVEAuditor")}});
  p.c.cluster().add_token({.id = "ops@pve!t", .secret = "s"});
  const std::vector<std::string> user_token = {"Authorization: PVEAPIToken=ops@pve!t=s"};
  CHECK(p.audits(100, user_token));
  CHECK_FALSE(p.audits(101, user_token));
  // A privilege-separated token of that user holds what both hold.
  p.c.cluster().add_token({.id = "ops@pve!sep",
                           .secret = "s",
                           .privsep = true,
                           .privileges = {},
                           .acls = {privs("/vms", {"VM.Audit"})}});
  const std::vector<std::string> sep = {"Authorization: PVEAPIToken=ops@pve!sep=s"};
  CHECK(p.audits(100, sep));
  CHECK_FALSE(p.audits(101, sep));
}

TEST_CASE("/cluster/resources shows a guest's pool only to who may audit the pool") {
  PoolCluster p;
  const auto pool_of_100 = [&](const std::vector<std::string>& h) {
    const auto d = p.c.get("pve1", "/cluster/resources?type=vm", h).json()["data"];
    for (const auto& e : d) {
      if (e["vmid"] == 100) {
        return e.value("pool", std::string());
      }
    }
    return std::string("(not listed)");
  };
  CHECK(pool_of_100(p.token("vms", {privs("/vms", {"VM.Audit"})})) == "");
  CHECK(pool_of_100(p.token("both", {privs("/vms", {"VM.Audit"}),
                                     privs("/pool/customers", {"Pool.Audit"})})) == "customers");
  CHECK(pool_of_100(p.token("auditor", {role("/", "PVEAuditor")})) == "customers");
}

TEST_CASE("NoAccess on /vms/{vmid} hides the guest although /vms grants VM.Audit - and the pool") {
  PoolCluster p;
  const auto h =
      p.token("deny", {role("/vms", "PVEAuditor"), role("/vms/101", "NoAccess"),
                       role("/vms/100", "NoAccess"), role("/pool/customers", "PVEAuditor")});
  CHECK_FALSE(p.audits(100, h));  // a NoAccess on the guest is never trumped by the pool
  CHECK_FALSE(p.audits(101, h));
  CHECK(p.audits(200, h));
  // NoAccess on the pool hides its guests, whatever /vms grants.
  const auto pool_denied =
      p.token("pool-deny", {role("/vms", "PVEAuditor"), role("/pool/customers", "NoAccess")});
  CHECK_FALSE(p.audits(100, pool_denied));
  CHECK(p.audits(101, pool_denied));
  // A NoAccess propagated from / is not trumped by the pool either.
  const auto root_denied =
      p.token("root-deny", {role("/", "NoAccess"), role("/pool/customers", "PVEAuditor")});
  CHECK_FALSE(p.audits(100, root_denied));
}

TEST_CASE("VM.Audit taken away at run time: out of the pool - a removed ACL - a changed role") {
  PoolCluster p;
  p.c.cluster().set_role("GuestReader", {"VM.Audit"});
  const std::string id = "mon@pve!live";
  const auto h = p.token("live", {{.path = "/pool/customers", .role = "GuestReader"}});
  CHECK(p.audits(100, h));
  // Out of the pool and back in; another guest joins it.
  CHECK(p.c.cluster().set_pool(100, ""));
  CHECK_FALSE(p.c.cluster().pool_of(100).has_value());
  CHECK_FALSE(p.audits(100, h));
  CHECK(p.c.cluster().set_pool(100, "customers"));
  CHECK(p.c.cluster().pool_of(100) == "customers");
  CHECK(p.audits(100, h));
  CHECK(p.c.cluster().set_pool(101, "customers"));
  CHECK(p.audits(101, h));
  CHECK_FALSE(p.c.cluster().set_pool(999, "customers"));
  // The role changes, or goes away.
  p.c.cluster().set_role("GuestReader", {"Sys.Audit"});
  CHECK_FALSE(p.audits(100, h));
  p.c.cluster().set_role("GuestReader", {"VM.Audit"});
  CHECK(p.audits(100, h));
  CHECK(p.c.cluster().remove_role("GuestReader"));
  CHECK_FALSE(p.c.cluster().remove_role("GuestReader"));
  CHECK_FALSE(p.audits(100, h));
  p.c.cluster().set_role("GuestReader", {"VM.Audit"});
  // The ACL entry goes away.
  CHECK(p.c.cluster().remove_acls(id, "/pool/customers"));
  CHECK_FALSE(p.c.cluster().remove_acls(id, "/pool/customers"));
  CHECK_FALSE(p.audits(100, h));
  // Replaced, then narrowed by one more entry.
  CHECK(p.c.cluster().set_acls(id, {role("/vms", "PVEAuditor")}));
  CHECK(p.audits(100, h));
  CHECK(p.audits(200, h));
  CHECK(p.c.cluster().add_acl(id, role("/vms/200", "NoAccess")));
  CHECK_FALSE(p.audits(200, h));
  CHECK_FALSE(p.c.cluster().set_acls("mon@pve!nosuch", {}));
  CHECK_FALSE(p.c.cluster().add_acl("mon@pve!nosuch", role("/", "PVEAuditor")));

  // A user's entries: its token without privilege separation follows them.
  p.c.cluster().add_token({.id = "free@pve!t", .secret = "s"});
  const std::vector<std::string> user_token = {"Authorization: PVEAPIToken=free@pve!t=s"};
  CHECK(p.audits(101, user_token));  // a user the cluster does not list: every privilege
  CHECK(p.c.cluster().set_acls("free@pve", {role("/pool/customers", "PVEAuditor")}));
  CHECK(p.c.cluster().user("free@pve").has_value());
  CHECK(p.audits(100, user_token));
  CHECK(p.audits(101, user_token));  // in the pool since above
  CHECK_FALSE(p.audits(200, user_token));
  CHECK(p.c.cluster().remove_acls("free@pve", "/pool/customers"));
  CHECK_FALSE(p.audits(100, user_token));
}

TEST_CASE("privileges_at adds a pool's roles to its guests' paths only") {
  const std::vector<Acl> acls = {role("/pool/customers", "PVEAuditor"),
                                 privs("/vms/100", {"VM.PowerMgmt"})};
  const AccessContext pools{.pool_of = [](int vmid) -> std::optional<std::string> {
    return vmid == 100 || vmid == 101 ? std::optional<std::string>("customers") : std::nullopt;
  }};
  const auto at100 = privileges_at(acls, "/vms/100", kPve8, pools);
  CHECK(at100.at("VM.PowerMgmt") == true);  // its own entry, propagated
  CHECK(at100.at("VM.Audit") == false);     // from the pool, never propagated
  CHECK(privileges_at(acls, "/vms/101", kPve8, pools).at("VM.Audit") == false);
  CHECK(privileges_at(acls, "/vms/102", kPve8, pools).empty());
  CHECK(privileges_at(acls, "/vms", kPve8, pools).empty());
  CHECK(privileges_at(acls, "/vms/101/x", kPve8, pools).empty());
  // Without pool lookups no guest is in a pool.
  CHECK_FALSE(privileges_at(acls, "/vms/101", kPve8).contains("VM.Audit"));
  // Custom roles by name; a built-in name wins.
  const AccessContext custom{
      .roles = {{"Reader", {"VM.Audit", "VM.Monitor"}}, {"PVEAuditor", {"VM.PowerMgmt"}}}};
  const std::vector<Acl> reader = {{.path = "/vms", .role = "Reader"}};
  CHECK(privileges_at(reader, "/vms/5", kPve8, custom) ==
        Privileges{{"VM.Audit", true}, {"VM.Monitor", true}});
  CHECK(privileges_at(reader, "/vms/5", kPve9, custom) == Privileges{{"VM.Audit", true}});
  CHECK_FALSE(
      privileges_at({role("/", "PVEAuditor")}, "/", kPve8, custom).contains("VM.PowerMgmt"));
}
