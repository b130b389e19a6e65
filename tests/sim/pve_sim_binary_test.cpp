// The pve-sim program: the ready line, the hosts it lists, its control API
// (faults and lies, guests, pools, ACL entries, roles, users), its options,
// and a prompt exit 0 on SIGTERM and SIGINT.

#include <csignal>
#include <iterator>
#include <set>

#include <doctest/doctest.h>

#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::simtest;
using namespace pha::test;
using nlohmann::json;

namespace {

const std::string kBinary = PHA_PVE_SIM_BINARY;

struct RunningSim {
  explicit RunningSim(const TempDir& dir, std::vector<std::string> extra = {})
      : process(kBinary,
                {.args = args(dir, std::move(extra)), .env = {{"PATH", "/usr/bin:/bin"}}}) {
    REQUIRE(process.wait_for_output("\"event\":\"ready\"", std::chrono::seconds(30)));
    const auto out = process.out_so_far();
    ready = json::parse(out.substr(0, out.find('\n')));
  }

  static std::vector<std::string> args(const TempDir& dir, std::vector<std::string> extra) {
    std::vector<std::string> a = {"--dir",           dir.path() + "/pki",
                                  "--nodes",         "2",
                                  "--guests",        "25",
                                  "--seed",          "9",
                                  "--token",         kTokenId + "=" + kTokenSecret,
                                  "--auth-delay-ms", "0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  Reply control(const std::string& method, const std::string& path, const std::string& body = "") {
    Request r;
    r.method = method;
    r.url = ready["control"].get<std::string>() + path;
    r.body = body;
    r.headers = {"Content-Type: application/json"};
    return fetch(r);
  }

  Reply api(const std::string& node, const std::string& path,
            const std::string& auth = kTokenHeader) {
    Request r;
    r.url = ready["hosts"][node].get<std::string>() + "/api2/json" + path;
    r.ca_file = ready["ca_file"];
    r.headers = {auth};
    return fetch(r);
  }

  Process process;
  json ready;
};

}  // namespace

TEST_CASE("pve-sim prints one ready line and serves every node") {
  TempDir dir;
  RunningSim s(dir);
  CHECK(s.ready["event"] == "ready");
  CHECK(s.ready["ca_file"] == dir.path() + "/pki/ca.pem");
  CHECK(s.ready["control"].get<std::string>().starts_with("http://127.0.0.1:"));
  REQUIRE(s.ready["hosts"].size() == 2);
  CHECK(s.ready["hosts"]["pve1"].get<std::string>().starts_with("https://127.0.0.1:"));
  const auto r = s.api("pve2", "/cluster/resources?type=vm");
  REQUIRE(r.status == 200);
  CHECK(r.json()["data"].size() == 25);
  s.process.signal(SIGTERM);
  const auto result = s.process.wait(std::chrono::seconds(10));
  CHECK(result.exit_code == 0);
  CHECK_FALSE(result.timed_out);
}

TEST_CASE("pve-sim control API sets faults and reads and resets counts") {
  TempDir dir;
  RunningSim s(dir, {"--legacy"});
  CHECK(s.api("pve1", "/nodes/pve1/qemu").json()["data"][0]["vmid"].is_string());
  auto r = s.control("POST", "/control/hosts/pve1/fault", R"({"kind":"down"})");
  CHECK(r.status == 200);
  CHECK(s.api("pve1", "/version").code == CURLE_COULDNT_CONNECT);
  CHECK(s.api("pve2", "/nodes/pve1/qemu").status == 595);
  CHECK(s.control("DELETE", "/control/hosts/pve1/fault").status == 200);
  CHECK(s.api("pve1", "/version").status == 200);

  const auto counts = s.control("GET", "/control/hosts/pve1/counts").json();
  CHECK(counts["counts"]["GET /api2/json/version"] == 1);
  // The call proxied by pve2 while pve1 was down never reached pve1.
  CHECK(counts["counts"]["GET /api2/json/nodes/pve1/qemu"] == 1);
  CHECK(s.control("POST", "/control/hosts/pve1/counts/reset").status == 200);
  CHECK(s.control("GET", "/control/hosts/pve1/counts").json()["total"] == 0);

  CHECK(s.control("POST", "/control/hosts/nosuch/fault", R"({"kind":"down"})").status == 404);
  CHECK(s.control("POST", "/control/hosts/pve1/fault", R"({"kind":"bogus"})").status == 400);
  s.process.signal(SIGINT);
  CHECK(s.process.wait(std::chrono::seconds(10)).exit_code == 0);
}

TEST_CASE("pve-sim control API changes guests nodes and the clock") {
  TempDir dir;
  RunningSim s(dir);
  auto r =
      s.control("POST", "/control/guests",
                R"({"vmid":4242,"node":"pve2","type":"lxc","name":"new-ct","status":"running"})");
  REQUIRE(r.status == 200);
  const auto find = [&](int vmid) {
    const auto resources = s.api("pve1", "/cluster/resources?type=vm").json()["data"];
    for (const auto& e : resources) {
      if (e["vmid"] == vmid) {
        return e;
      }
    }
    return json();
  };
  CHECK(find(4242)["name"] == "new-ct");
  CHECK(s.control("POST", "/control/guests/4242/rename", R"({"name":"renamed"})").status == 200);
  CHECK(find(4242)["name"] == "renamed");
  CHECK(s.control("POST", "/control/guests/4242/stop").status == 200);
  CHECK(find(4242)["status"] == "stopped");
  CHECK(s.control("POST", "/control/guests/4242/migrate", R"({"node":"pve1"})").status == 200);
  CHECK(find(4242)["node"] == "pve1");
  CHECK(s.control("POST", "/control/guests/4242/description", R"({"description":"hi"})").status ==
        200);
  CHECK(s.api("pve1", "/nodes/pve1/lxc/4242/config").json()["data"]["description"] == "hi");

  CHECK(s.control("POST", "/control/nodes/pve2/offline").status == 200);
  CHECK(s.control("POST", "/control/clock/advance", R"({"seconds":400})").status == 200);
  const auto state = s.control("GET", "/control/state").json();
  CHECK(state["hosts"]["pve1"]["url"] == s.ready["hosts"]["pve1"]);
  CHECK(state["guests"].size() == 26);
  for (const auto& g : state["guests"]) {
    if (g["node"] == "pve2") {
      CHECK(find(g["vmid"].get<int>())["status"] == "unknown");
      break;
    }
  }
  CHECK(s.control("POST", "/control/guests/4242/delete").status == 200);
  CHECK(find(4242).is_null());
  CHECK(s.control("POST", "/control/guests/4242/start").status == 404);
  s.process.signal(SIGTERM);
  CHECK(s.process.wait(std::chrono::seconds(10)).exit_code == 0);
}

TEST_CASE(
    "pve-sim --pve-version and --acl: a token's role and privileges in that version's model") {
  TempDir dir;
  RunningSim s(dir,
               {"--pve-version", "9.0.3", "--privsep-token", "mon@pve!ro=s2", "--acl",
                "/:mon@pve!ro:PVEAuditor", "--acl", "/vms:mon@pve!ro:VM.Monitor,VM.PowerMgmt:0"});
  const std::string auth = "Authorization: PVEAPIToken=mon@pve!ro=s2";
  const auto d = s.api("pve1", "/access/permissions", auth).json()["data"];
  CHECK(d["/"]["VM.GuestAgent.Audit"] == 1);
  // The entry on /vms replaces PVEAuditor there; VM.Monitor does not exist on PVE 9.
  CHECK(d["/vms"] == json{{"VM.PowerMgmt", 0}});
  CHECK(s.api("pve1", "/cluster/status", auth).status == 200);
  CHECK(s.api("pve1", "/version").json()["data"]["release"] == "9.0");

  TempDir dir8;
  RunningSim pve8(dir8, {"--privsep-token", "mon@pve!ro=s2", "--acl", "/:mon@pve!ro:PVEAuditor"});
  const auto d8 = pve8.api("pve1", "/access/permissions?path=/vms", auth).json()["data"]["/vms"];
  CHECK(d8["VM.Audit"] == 1);
  CHECK_FALSE(d8.contains("VM.GuestAgent.Audit"));
  CHECK_FALSE(d8.contains("VM.Monitor"));
  // A user's ACL limits its tokens without privilege separation too.
  TempDir dir_user;
  RunningSim user(dir_user, {"--token", "ro@pve!t=s3", "--acl", "/vms:ro@pve:VM.Audit"});
  const auto u = user.api("pve1", "/access/permissions", "Authorization: PVEAPIToken=ro@pve!t=s3");
  // /vms and the pool members below it; nothing on / itself.
  CHECK(u.json()["data"]["/vms"] == json{{"VM.Audit", 1}});
  CHECK_FALSE(u.json()["data"].contains("/"));
}

TEST_CASE("pve-sim control API leaves tasks adds raw ones and sets the broadcast lag") {
  TempDir dir;
  RunningSim s(dir);
  REQUIRE(s.control("POST", "/control/guests",
                    R"({"vmid":4300,"node":"pve1","status":"running","user":"ops@pve"})")
              .status == 200);
  REQUIRE(s.control("POST", "/control/guests/4300/migrate", R"({"node":"pve2"})").status == 200);
  REQUIRE(s.control("POST", "/control/guests/4300/poweroff").status == 200);
  REQUIRE(s.control("POST", "/control/guests/4300/rename", R"({"name":"x"})").status == 200);
  REQUIRE(s.control("POST", "/control/guests/4300/rename", R"({"name":"y","async":true})").status ==
          200);
  const auto types = [&](const std::string& node) {
    std::vector<std::string> out;
    const auto list = s.api(node, "/nodes/" + node + "/tasks").json();
    for (const auto& e : list["data"]) {
      out.push_back(e["type"].get<std::string>() + ":" + e["user"].get<std::string>());
    }
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(types("pve1") == V{"qmigrate:root@pam", "qmstart:ops@pve", "qmcreate:ops@pve"});
  CHECK(types("pve2") == V{"qmconfig:root@pam", "qmstart:root@pam"});
  const auto added = s.control("POST", "/control/tasks",
                               R"({"node":"pve1","type":"qmigrate","id":4300,"running":true})");
  REQUIRE(added.status == 200);
  const auto upid = added.json()["upid"].get<std::string>();
  CHECK(s.api("pve1", "/nodes/pve1/tasks?source=active").json()["data"][0]["upid"] == upid);
  CHECK(s.control("POST", "/control/tasks/end",
                  json{{"upid", upid}, {"status", "migration aborted"}}.dump())
            .status == 200);
  CHECK(s.api("pve1", "/nodes/pve1/tasks?errors=1").json()["data"][0]["status"] ==
        "migration aborted");
  CHECK(s.control("POST", "/control/tasks", R"({"node":"nosuch","type":"x"})").status == 404);
  CHECK(s.control("PUT", "/control/tasks/lag", R"({"seconds":3600})").status == 200);
  CHECK(s.api("pve1", "/cluster/tasks").json()["data"].empty());
  CHECK(s.control("GET", "/control/tasks").json()["tasks"].size() == 6);
  s.process.signal(SIGTERM);
  CHECK(s.process.wait(std::chrono::seconds(10)).exit_code == 0);
}

TEST_CASE("pve-sim refuses a malformed --acl") {
  TempDir dir;
  Process p(kBinary, {.args = RunningSim::args(dir, {"--acl", "vms:agent@pve!sync:PVEAuditor"}),
                      .env = {{"PATH", "/usr/bin:/bin"}}});
  const auto r = p.wait(std::chrono::seconds(10));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("an ACL is PATH:SUBJECT:ROLES") != std::string::npos);
}

TEST_CASE("pve-sim control API tells lies and takes VM.Audit away at run time") {
  TempDir dir;
  RunningSim s(dir, {"--privsep-token", "mon@pve!ro=s2", "--acl", "/vms:mon@pve!ro:PVEAuditor"});
  const std::string auth = "Authorization: PVEAPIToken=mon@pve!ro=s2";
  const auto listed = [&](const std::string& path, const std::string& who = kTokenHeader) {
    std::set<int> out;
    const auto data = s.api("pve1", path, who).json()["data"];
    for (const auto& e : data) {
      if (e.contains("vmid")) {
        out.insert(e["vmid"].get<int>());
      }
    }
    return out;
  };
  const auto all = listed("/cluster/resources?type=vm");
  REQUIRE(all.size() == 25);

  // The lies, set and cleared like any fault.
  REQUIRE(s.control("POST", "/control/hosts/pve1/fault", R"({"kind":"empty_list"})").status == 200);
  CHECK(s.api("pve1", "/cluster/resources?type=vm").body == "{\"data\":[]}");
  CHECK(s.control("GET", "/control/state").json()["hosts"]["pve1"]["fault"]["kind"] ==
        "empty_list");
  const auto lowest = *all.begin();
  REQUIRE(s.control("POST", "/control/hosts/pve1/fault",
                    R"({"kind":"drop_entries","path_prefix":"/cluster/resources","drop":1})")
              .status == 200);
  auto seen = listed("/cluster/resources?type=vm");
  CHECK(seen.size() == 24);
  CHECK_FALSE(seen.contains(lowest));
  const auto gone = *std::next(all.begin(), 3);
  REQUIRE(s.control("POST", "/control/hosts/pve1/fault",
                    R"({"kind":"drop_entries","drop_vmids":[)" + std::to_string(gone) + "]}")
              .status == 200);
  seen = listed("/cluster/resources?type=vm");
  CHECK(seen.size() == 24);
  CHECK_FALSE(seen.contains(gone));
  CHECK(s.control("DELETE", "/control/hosts/pve1/fault").status == 200);
  CHECK(listed("/cluster/resources?type=vm") == all);

  // A guest into a pool whose ACL is the only way to it, and out again.
  const auto v = std::to_string(lowest);
  CHECK(s.control("GET", "/control/acls/mon@pve!ro").json()["acls"] ==
        json::array({{{"path", "/vms"},
                      {"role", "PVEAuditor"},
                      {"privileges", json::array()},
                      {"propagate", true}}}));
  REQUIRE(
      s.control("PUT", "/control/acls/mon@pve!ro", R"([{"path":"/pool/vip","role":"PVEAuditor"}])")
          .status == 200);
  CHECK(listed("/cluster/resources?type=vm", auth).empty());
  REQUIRE(s.control("POST", "/control/guests/" + v + "/pool", R"({"pool":"vip"})").status == 200);
  CHECK(listed("/cluster/resources?type=vm", auth) == std::set<int>{lowest});
  CHECK(s.api("pve1", "/access/permissions?path=/vms/" + v, auth)
            .json()["data"]["/vms/" + v]["VM.Audit"] == 0);
  REQUIRE(s.control("POST", "/control/guests/" + v + "/pool", R"({"pool":null})").status == 200);
  CHECK(listed("/cluster/resources?type=vm", auth).empty());

  // A custom role that loses VM.Audit; an entry added, then removed.
  REQUIRE(s.control("PUT", "/control/roles/Reader", R"({"privileges":["VM.Audit"]})").status ==
          200);
  REQUIRE(
      s.control("POST", "/control/acls/mon@pve!ro", R"({"path":"/vms","role":"Reader"})").status ==
      200);
  CHECK(listed("/cluster/resources?type=vm", auth) == all);
  CHECK(s.control("PUT", "/control/roles/Reader", R"({"privileges":["Sys.Audit"]})").status == 200);
  CHECK(listed("/cluster/resources?type=vm", auth).empty());
  CHECK(s.control("PUT", "/control/roles/Reader", R"({"privileges":["VM.Audit"]})").status == 200);
  CHECK(s.control("DELETE", "/control/acls/mon@pve!ro?path=/vms").status == 200);
  CHECK(listed("/cluster/resources?type=vm", auth).empty());
  CHECK(s.control("DELETE", "/control/acls/mon@pve!ro?path=/vms").status == 404);
  CHECK(s.control("DELETE", "/control/roles/Reader").status == 200);
  CHECK(s.control("DELETE", "/control/roles/Reader").status == 404);
  // The agent's token: a user entry narrows it.
  CHECK(s.control("GET", "/control/acls/agent@pve").json()["acls"].is_null());
  REQUIRE(s.control("PUT", "/control/acls/agent@pve",
                    R"([{"path":"/vms","role":"PVEAuditor"},{"path":"/vms/)" + v +
                        R"(","role":"NoAccess"}])")
              .status == 200);
  seen = listed("/cluster/resources?type=vm");
  CHECK(seen.size() == 24);
  CHECK_FALSE(seen.contains(lowest));
  CHECK(s.api("pve1", "/nodes/pve1/qemu/" + v + "/status/current").status == 403);
  CHECK(s.control("PUT", "/control/acls/nosuch@pve!t", "[]").status == 404);
  CHECK(s.control("PUT", "/control/acls/agent@pve", R"({"path":"/"})").status == 400);
  s.process.signal(SIGTERM);
  CHECK(s.process.wait(std::chrono::seconds(10)).exit_code == 0);
}

TEST_CASE("pve-sim --tfa gives a password user a second factor and --role a custom role") {
  TempDir dir;
  RunningSim s(
      dir, {"--password", "ops@pve:pw-1234", "--tfa", "ops@pve:424242", "--role", "Reader=VM.Audit",
            "--privsep-token", "mon@pve!ro=s2", "--acl", "/vms:mon@pve!ro:Reader"});
  const auto login = [&](const std::string& body) {
    Request r;
    r.method = "POST";
    r.url = s.ready["hosts"]["pve1"].get<std::string>() + "/api2/json/access/ticket";
    r.ca_file = s.ready["ca_file"];
    r.body = body;
    r.headers = {"Content-Type: application/x-www-form-urlencoded"};
    return fetch(r);
  };
  const auto partial = login("username=ops%40pve&password=pw-1234").json()["data"];
  CHECK(partial["NeedTFA"] == 1);
  const auto ticket = partial["ticket"].get<std::string>();
  CHECK(s.api("pve1", "/version", "Cookie: PVEAuthCookie=" + ticket).status == 401);
  CHECK(login("username=ops%40pve&password=pw-1234&otp=totp%3A424242").status == 200);
  CHECK(s.api("pve1", "/nodes/pve1/qemu", "Authorization: PVEAPIToken=mon@pve!ro=s2")
            .json()["data"]
            .size() == s.api("pve1", "/nodes/pve1/qemu").json()["data"].size());
  // Users appear at run time too.
  CHECK(s.control("POST", "/control/users",
                  R"({"userid":"new@pve","password":"pw-5678","totp":"111111"})")
            .status == 200);
  CHECK(login("username=new%40pve&password=pw-5678").json()["data"]["NeedTFA"] == 1);
  CHECK(s.control("POST", "/control/users", R"({"password":"x"})").status == 400);
  s.process.signal(SIGTERM);
  CHECK(s.process.wait(std::chrono::seconds(10)).exit_code == 0);

  Process bad(kBinary, {.args = RunningSim::args(dir, {"--tfa", "nobody@pve:1"}),
                        .env = {{"PATH", "/usr/bin:/bin"}}});
  CHECK(bad.wait(std::chrono::seconds(10)).exit_code == 1);
}
