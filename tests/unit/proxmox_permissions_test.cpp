// Which privileges the agent lacks: the parser of GET /access/permissions
// (the shape of pve-access-control's get_effective_permissions: path ->
// privilege -> propagate flag) and the evaluation by version and settings.

#include <doctest/doctest.h>

#include "agent/proxmox/permissions.hpp"

using namespace pha;

namespace {

// A PVEAuditor-like grant of `privileges` on / and everything below.
PermissionMap on_root(const std::vector<std::string>& privileges) {
  PermissionMap m;
  for (const auto* path : {"/", "/access", "/nodes", "/storage", "/vms"}) {
    for (const auto& p : privileges) {
      m[path][p] = true;
    }
  }
  return m;
}

std::vector<std::string> names(const std::vector<MissingPrivilege>& missing) {
  std::vector<std::string> out;
  for (const auto& m : missing) {
    out.push_back(m.privilege + " " + m.path);
  }
  return out;
}

const PermissionNeeds kToken{.token_id = "agent@pve!sync"};

}  // namespace

TEST_CASE("missing privileges by version - grants and VM_DETAILS") {
  const std::vector<std::string> auditor8 = {"VM.Audit", "Sys.Audit", "Datastore.Audit"};
  auto auditor9 = auditor8;
  auditor9.push_back("VM.GuestAgent.Audit");
  PermissionNeeds no_details = kToken;
  no_details.vm_details = false;
  PermissionNeeds lxc_only = kToken;
  lxc_only.sync_qemu = false;
  struct Row {
    const char* what;
    int major;
    PermissionMap granted;
    PermissionNeeds needs;
    std::vector<std::string> missing;
  };
  const std::vector<Row> table = {
      {"PVE 9 PVEAuditor", 9, on_root(auditor9), kToken, {}},
      {"PVE 9 only VM.Audit",
       9,
       on_root({"VM.Audit"}),
       kToken,
       {"Sys.Audit /", "VM.GuestAgent.Audit /vms"}},
      {"PVE 9 VM.Audit without details", 9, on_root({"VM.Audit", "Sys.Audit"}), no_details, {}},
      {"PVE 9 Unrestricted instead of Audit",
       9,
       on_root({"VM.Audit", "Sys.Audit", "VM.GuestAgent.Unrestricted"}),
       kToken,
       {}},
      {"PVE 9 VM.Monitor is no guest agent privilege",
       9,
       on_root({"VM.Audit", "Sys.Audit", "VM.Monitor"}),
       kToken,
       {"VM.GuestAgent.Audit /vms"}},
      {"PVE 8 PVEAuditor", 8, on_root(auditor8), kToken, {"VM.Monitor /vms"}},
      {"PVE 8 PVEAuditor without details", 8, on_root(auditor8), no_details, {}},
      {"PVE 8 PVEAuditor syncing LXC only", 8, on_root(auditor8), lxc_only, {}},
      {"PVE 8 with VM.Monitor", 8, on_root({"VM.Audit", "Sys.Audit", "VM.Monitor"}), kToken, {}},
      {"PVE 7 is PVE 8's model", 7, on_root(auditor8), kToken, {"VM.Monitor /vms"}},
      {"nothing at all on PVE 9",
       9,
       {},
       kToken,
       {"VM.Audit /vms", "Sys.Audit /", "VM.GuestAgent.Audit /vms"}},
      {"nothing at all on PVE 8 without details",
       8,
       {},
       no_details,
       {"VM.Audit /vms", "Sys.Audit /"}},
  };
  for (const auto& row : table) {
    CAPTURE(row.what);
    CHECK(names(missing_privileges(row.granted, row.major, row.needs)) == row.missing);
  }
}

TEST_CASE("Sys.Audit is needed for the change signal too - the task list") {
  const auto granted = on_root({"VM.Audit", "VM.GuestAgent.Audit"});
  PermissionNeeds n = kToken;
  n.node_name_auto = false;
  n.discover_hosts = false;
  n.watch_tasks = true;
  const auto m = missing_privileges(granted, 9, n);
  REQUIRE(m.size() == 1);
  CHECK(m[0].privilege == "Sys.Audit");
  CHECK(m[0].effect ==
        "the task list is empty, so changes wait for the status read or the periodic cycle");
}

TEST_CASE("Sys.Audit is needed only for the node name and discovery") {
  const auto granted = on_root({"VM.Audit", "VM.GuestAgent.Audit"});
  PermissionNeeds n = kToken;
  n.node_name_auto = false;
  n.discover_hosts = false;
  CHECK(missing_privileges(granted, 9, n).empty());
  n.discover_hosts = true;
  auto m = missing_privileges(granted, 9, n);
  REQUIRE(m.size() == 1);
  CHECK(m[0].effect == "no failover hosts are discovered");
  n.node_name_auto = true;
  m = missing_privileges(granted, 9, n);
  REQUIRE(m.size() == 1);
  CHECK(m[0].effect.find("short host name") != std::string::npos);
  CHECK(m[0].effect.find("no failover hosts") != std::string::npos);
}

TEST_CASE("a privilege on /vms must propagate to reach the guests") {
  PermissionMap granted = on_root({"Sys.Audit"});
  granted["/vms"]["VM.Audit"] = false;  // pveum acl modify /vms ... --propagate 0
  granted["/vms"]["VM.GuestAgent.Audit"] = true;
  auto m = missing_privileges(granted, 9, kToken);
  REQUIRE(m.size() == 1);
  CHECK(m[0].privilege == "VM.Audit");
  CHECK(m[0].note.find("without propagation") != std::string::npos);
  // Only single guests: still missing on /vms, said so.
  granted.erase("/vms");
  granted["/vms/100"]["VM.Audit"] = true;
  granted["/vms/101"]["VM.Audit"] = true;
  m = missing_privileges(granted, 9, kToken);
  REQUIRE(m.size() == 2);
  CHECK(m[0].note == "granted only on 2 paths below /vms");
  // Sys.Audit is checked on / itself: its flag does not matter.
  granted["/"]["Sys.Audit"] = false;
  CHECK(names(missing_privileges(granted, 9, kToken)) ==
        std::vector<std::string>{"VM.Audit /vms", "VM.GuestAgent.Audit /vms"});
}

TEST_CASE("the fix is the pveum command of the version - with VM.Monitor's risk on PVE 8") {
  auto m9 = missing_privileges({}, 9, kToken);
  REQUIRE(m9.size() == 3);
  for (const auto& m : m9) {
    CHECK(m.fix ==
          "pveum acl modify / --roles PVEAuditor --users agent@pve --tokens 'agent@pve!sync'");
    CHECK(m.advised);
  }
  CHECK(m9[2].effect == "QEMU guest IPs stay empty");
  const auto m8 = missing_privileges(on_root({"VM.Audit", "Sys.Audit"}), 8,
                                     {.token_id = "", .user = "agent@pve"});
  REQUIRE(m8.size() == 1);
  CHECK(m8[0].privilege == "VM.Monitor");
  CHECK(m8[0].effect == "QEMU guest IPs stay empty");
  CHECK_FALSE(m8[0].advised);
  CHECK(m8[0].fix.starts_with("not advised: VM.Monitor also allows guest-exec"));
  CHECK(m8[0].fix.find("any command as root in every VM") != std::string::npos);
  CHECK(m8[0].fix.find("upgrade to Proxmox VE 9") != std::string::npos);
  CHECK(m8[0].fix.find("--users agent@pve") != std::string::npos);
  CHECK(m8[0].fix.find("--tokens") == std::string::npos);
}

TEST_CASE("pve_major reads the release or the version") {
  CHECK(pve_major({"9.0.3", "9.0"}) == 9);
  CHECK(pve_major({"8.4.14", ""}) == 8);
  CHECK(pve_major({"7.4-16", "7.4"}) == 7);
  CHECK(pve_major({"6.4-15", ""}) == 6);
  CHECK_FALSE(pve_major({"", ""}).has_value());
  CHECK_FALSE(pve_major({"nine", "x9"}).has_value());
  CHECK_FALSE(pve_major({"99999999999999999999", ""}).has_value());
}

TEST_CASE("parse_permissions: paths - privileges and their propagate flags") {
  const auto p = parse_permissions(
      R"({"data":{"/":{"Sys.Audit":1,"VM.Audit":1},"/vms":{"VM.Audit":1,"VM.GuestAgent.Audit":0},)"
      R"("/vms/100":{},"/storage/local":{"Datastore.Audit":"1"},"/nodes":{"Sys.Audit":true}}})");
  REQUIRE_MESSAGE(p, p.error().message);
  CHECK(p->size() == 5);
  CHECK(p->at("/").at("Sys.Audit"));
  CHECK_FALSE(p->at("/vms").at("VM.GuestAgent.Audit"));
  CHECK(p->at("/vms/100").empty());
  CHECK(p->at("/storage/local").at("Datastore.Audit"));
  CHECK(p->at("/nodes").at("Sys.Audit"));
  const auto empty = parse_permissions(R"({"data":{}})");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("parse_permissions rejects a malformed answer with a clear error") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not JSON"},
      {R"({"errors":{}})", "no \"data\""},
      {R"({"data":null})", "\"data\" is not an object"},
      {R"({"data":[{"path":"/"}]})", "\"data\" is not an object"},
      {R"({"data":{"vms":{"VM.Audit":1}}})", "does not begin with /"},
      {R"({"data":{"/vms":["VM.Audit"]}})", "\"/vms\" are not an object"},
      {R"({"data":{"/vms":{"VM.Audit":2}}})", "privilege \"VM.Audit\" of \"/vms\""},
      {R"({"data":{"/vms":{"VM.Audit":{"x":1}}}})", "not a propagate flag"},
      {R"({"data":{"/vms":{"":1}}})", "privilege \"\""},
  };
  for (const auto& [body, error] : cases) {
    CAPTURE(body);
    const auto p = parse_permissions(body);
    REQUIRE_FALSE(p);
    CHECK_MESSAGE(p.error().message.find(error) != std::string::npos, p.error().message);
  }
}
