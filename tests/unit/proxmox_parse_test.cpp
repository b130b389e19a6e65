// The parsers on captured real responses (tests/fixtures/proxmox, see its
// README) and on the garbage a broken server could send.

#include <algorithm>

#include <doctest/doctest.h>

#include "agent/proxmox/parse.hpp"
#include "tests/support/fixtures.hpp"

using namespace pha;

namespace {

std::string fixture(const std::string& name) {
  return test::fixture_text("proxmox/" + name);
}

const Guest& by_vmid(const GuestList& list, std::int64_t vmid) {
  const auto it = std::find_if(list.guests.begin(), list.guests.end(),
                               [&](const Guest& g) { return g.vmid == vmid; });
  REQUIRE_MESSAGE(it != list.guests.end(), vmid);
  return *it;
}

}  // namespace

TEST_CASE("qemu list of PVE 8: numeric vmid - pid only when running") {
  auto r = parse_guest_list(fixture("nodes-node-qemu.pve8.json"), GuestType::qemu, "pve");
  REQUIRE(r.ok());
  CHECK(r->rejected.empty());
  REQUIRE(r->guests.size() == 2);
  const auto& running = by_vmid(*r, 100);
  CHECK(running.name == "pxe.home.arpa");
  CHECK(running.status == "running");
  CHECK(running.cpus == 1);
  CHECK(running.cpu == doctest::Approx(0.174069059487628));
  CHECK(running.maxmem == 4294967296);
  CHECK(running.maxdisk == 34359738368);
  CHECK(running.uptime == 669);
  CHECK(running.node == "pve");
  CHECK(running.type == GuestType::qemu);
  CHECK_FALSE(running.is_template);
  const auto& stopped = by_vmid(*r, 101);
  CHECK(stopped.status == "stopped");
  CHECK(stopped.maxmem == 536870912);
}

TEST_CASE("qemu list of PVE 6.2: vmid and pid as strings and template as an empty string") {
  auto r =
      parse_guest_list(fixture("nodes-node-qemu.pve62-legacy-types.json"), GuestType::qemu, "pve");
  REQUIRE(r.ok());
  CHECK(r->rejected.empty());
  CHECK(r->guests.size() >= 2);
  const auto& g = by_vmid(*r, 101);
  CHECK(g.name == "test-qemu");
  CHECK_FALSE(g.is_template);
  // The legacy file holds a template (9001).
  CHECK(by_vmid(*r, 9001).is_template);
}

TEST_CASE("lxc lists with vmid strings: PVE 7.4 and PVE 8 with an empty name") {
  auto r74 =
      parse_guest_list(fixture("nodes-node-lxc.pve74-vmid-string.json"), GuestType::lxc, "node1");
  REQUIRE(r74.ok());
  CHECK(r74->rejected.empty());
  REQUIRE(r74->guests.size() == 3);
  CHECK(by_vmid(*r74, 106).name == "test");
  CHECK(by_vmid(*r74, 106).running());
  CHECK(by_vmid(*r74, 101).is_template);
  CHECK(by_vmid(*r74, 101).type == GuestType::lxc);

  auto r8 =
      parse_guest_list(fixture("nodes-node-lxc.pve8-vmid-string.json"), GuestType::lxc, "pve");
  REQUIRE(r8.ok());
  CHECK(r8->rejected.empty());
  REQUIRE(r8->guests.size() == 4);
  CHECK(by_vmid(*r8, 105).name.empty());
  CHECK(to_record(by_vmid(*r8, 105)).name == "VM-105");
  CHECK(by_vmid(*r8, 102).cpus == 2);
}

TEST_CASE(
    "cluster resources of a 4-node PVE 7.4 cluster: guests only - maxcpu - template and tags") {
  auto r = parse_guest_list(fixture("cluster-resources.pve74-4node.json"), GuestType::qemu, "x");
  CHECK_FALSE((r.ok() && r->rejected.empty()));  // the node API parser refuses mixed resource lists
  auto c = parse_cluster_resources(fixture("cluster-resources.pve74-4node.json"));
  REQUIRE(c.ok());
  CHECK(c->rejected.empty());
  REQUIRE(c->guests.size() == 4);
  const auto& running = by_vmid(*c, 100);
  CHECK(running.node == "node2");
  CHECK(running.cpus == 1);
  CHECK(running.status == "running");
  const auto& tmpl = by_vmid(*c, 101);
  CHECK(tmpl.is_template);
  CHECK(tmpl.cpus == 4);
  CHECK(by_vmid(*c, 102).tags == "go-proxmox+cloud-init");
  CHECK_FALSE(by_vmid(*c, 200).unknown);
}

TEST_CASE("cluster resources: single node with an sdn entry and a 2-node list with pools") {
  auto single = parse_cluster_resources(fixture("cluster-resources.pve8-single-node.json"));
  REQUIRE(single.ok());
  CHECK(single->rejected.empty());
  CHECK(single->guests.size() == 3);
  CHECK(by_vmid(*single, 100).type == GuestType::lxc);
  CHECK(by_vmid(*single, 102).maxdisk == 0);

  auto pools = parse_cluster_resources(fixture("cluster-resources-type-vm.pve8-2node-pools.json"));
  REQUIRE(pools.ok());
  CHECK(pools->rejected.empty());
  CHECK(pools->guests.size() == 6);
  CHECK(by_vmid(*pools, 103).node == "pve2");
  CHECK(by_vmid(*pools, 105).name.empty());
}

TEST_CASE("a guest on an offline node is an unknown skeleton - not a stopped guest") {
  auto r = parse_cluster_resources(fixture("cluster-resources-type-vm.vm-on-offline-node.json"));
  REQUIRE(r.ok());
  REQUIRE(r->guests.size() == 1);
  const auto& g = r->guests[0];
  CHECK(g.unknown);
  CHECK(g.status == "unknown");
  CHECK(g.vmid == 1002);
  CHECK(g.node == "pve2");
  CHECK(g.name.empty());
}

TEST_CASE("cluster status: the local node - online flags and IPs") {
  auto r = parse_cluster_status(fixture("cluster-status.pve74-4node.json"));
  REQUIRE(r.ok());
  CHECK(r->cluster_name == "clustername");
  CHECK(r->nodes.size() == 4);
  REQUIRE(r->local_node() != nullptr);
  CHECK(r->local_node()->name == "node1");
  CHECK(r->local_node()->ip == "192.168.1.1");
  CHECK(
      std::all_of(r->nodes.begin(), r->nodes.end(), [](const ClusterNode& n) { return n.online; }));
}

TEST_CASE("version and ticket") {
  auto v = parse_version(fixture("version.pve74.json"));
  REQUIRE(v.ok());
  CHECK(v->version == "7.4-16");
  CHECK(v->release == "7.4");
  auto t = parse_ticket(fixture("access-ticket-post.pve74.json"));
  REQUIRE(t.ok());
  CHECK(t->ticket.starts_with("PVE:root@pam:64E10CBA::"));
  CHECK(t->csrf_token == "64E10CBA:YDNz71IKnE0sWsm1SbV1PGwz3hAyprvygQ7SBkxHVtE");
  CHECK(t->username == "root@pam");
}

TEST_CASE("every fixture that is a guest list parses without rejects") {
  for (const auto* name :
       {"nodes-node-qemu.pve8.json", "nodes-node-qemu.pve62-legacy-types.json"}) {
    auto r = parse_guest_list(fixture(name), GuestType::qemu, "n");
    REQUIRE_MESSAGE(r.ok(), name);
    CHECK_MESSAGE(r->rejected.empty(), name);
  }
  for (const auto* name :
       {"nodes-node-lxc.pve74-vmid-string.json", "nodes-node-lxc.pve8-vmid-string.json",
        "nodes-node-lxc.pve92-pressure-strings-negative-cpu.json"}) {
    auto r = parse_guest_list(fixture(name), GuestType::lxc, "n");
    REQUIRE_MESSAGE(r.ok(), name);
    CHECK_MESSAGE(r->rejected.empty(), name);
  }
  for (const auto* name :
       {"cluster-resources.pve74-4node.json", "cluster-resources.pve8-single-node.json",
        "cluster-resources-type-vm.pve8-2node-pools.json",
        "cluster-resources-type-vm.vm-on-offline-node.json"}) {
    auto r = parse_cluster_resources(fixture(name));
    REQUIRE_MESSAGE(r.ok(), name);
    CHECK_MESSAGE(r->rejected.empty(), name);
  }
}

TEST_CASE("garbage bodies are errors with a clear message") {
  CHECK(parse_guest_list("<html>502 Bad Gateway</html>", GuestType::qemu, "n").error().message ==
        "the body is not JSON");
  CHECK(parse_guest_list("{\"data\":[{\"vmid\":1", GuestType::qemu, "n").error().message ==
        "the body is not JSON");
  CHECK(parse_guest_list("{\"errors\":{}}", GuestType::qemu, "n").error().message ==
        "the body has no \"data\" member");
  CHECK(parse_guest_list("{\"data\":null}", GuestType::qemu, "n").error().message ==
        "\"data\" is not a list");
  CHECK(parse_guest_list("[1,2]", GuestType::qemu, "n").error().message ==
        "the body has no \"data\" member");
  CHECK_FALSE(parse_cluster_status("{\"data\":{}}").ok());
  CHECK_FALSE(parse_version("{\"data\":[]}").ok());
  CHECK_FALSE(parse_ticket("{\"data\":{\"ticket\":\"\"}}").ok());
}

TEST_CASE("bad entries are rejected by name and the good ones kept") {
  const std::string body = R"({"data":[
    {"vmid":100,"status":"running","name":"ok","cpus":2,"maxmem":1073741824},
    {"vmid":"abc","status":"running"},
    {"status":"running","name":"no vmid"},
    {"vmid":102,"name":"no status"},
    {"vmid":103,"status":"running","maxmem":"lots"},
    {"vmid":104,"status":"running","name":42},
    {"vmid":105,"status":"running","template":7},
    {"vmid":106,"status":"running","cpus":-1},
    {"vmid":100,"status":"stopped","name":"duplicate"},
    "not an object",
    {"vmid":107,"status":"stopped","unknown_field":{"x":1}}
  ]})";
  auto r = parse_guest_list(body, GuestType::qemu, "pve");
  REQUIRE(r.ok());
  REQUIRE(r->guests.size() == 3);
  CHECK(r->guests[0].vmid == 100);
  CHECK(r->guests[0].name == "ok");
  CHECK(r->guests[1].vmid == 106);  // cpus -1: clamped, not rejected
  CHECK(r->guests[1].cpus == 0);
  CHECK(r->guests[2].vmid == 107);
  CHECK(r->rejected.size() == 8);
  // Only the VMIDs that can be read are unknown; the others could be any guest.
  CHECK(r->rejected_vmids == std::set<std::int64_t>{100, 102, 103, 104, 105});
  CHECK(r->unattributed == 3);
  CHECK(r->clamped == std::map<std::string, std::uint64_t>{{"cpus", 1}});
  const auto all = [&] {
    std::string s;
    for (const auto& x : r->rejected) {
      s += x + "\n";
    }
    return s;
  }();
  CHECK(all.find("\"vmid\" is not an integer: \"abc\"") != std::string::npos);
  CHECK(all.find("no valid \"vmid\"") != std::string::npos);
  CHECK(all.find("(vmid 102): no \"status\"") != std::string::npos);
  CHECK(all.find("\"maxmem\" is not an integer: \"lots\"") != std::string::npos);
  CHECK(all.find("\"name\" is not a string: 42") != std::string::npos);
  CHECK(all.find("\"template\" is not 0 or 1") != std::string::npos);
  CHECK(all.find("negative") == std::string::npos);
  CHECK(all.find("vmid 100 is listed twice") != std::string::npos);
  CHECK(all.find("not an object") != std::string::npos);
}

TEST_CASE("an lxc entry with another type in the lxc list is rejected") {
  auto r = parse_guest_list(R"({"data":[{"vmid":1,"status":"running","type":"qemu"}]})",
                            GuestType::lxc, "n");
  REQUIRE(r.ok());
  CHECK(r->guests.empty());
  CHECK(r->rejected.size() == 1);
}

TEST_CASE("guest details: description - guest agent and lxc addresses") {
  auto d = parse_config_description(
      R"({"data":{"cores":2,"description":"customer 42\nrack 7","name":"x"}})");
  REQUIRE(d.ok());
  CHECK(*d == std::optional<std::string>("customer 42\nrack 7"));
  auto none = parse_config_description(R"({"data":{"cores":2}})");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  const std::string agent = R"({"data":{"result":[
    {"name":"lo","ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8},
                                 {"ip-address":"::1","ip-address-type":"ipv6","prefix":128}]},
    {"name":"eth0","hardware-address":"bc:24:11:00:00:01","ip-addresses":[
      {"ip-address":"fe80::1","ip-address-type":"ipv6","prefix":64},
      {"ip-address":"169.254.3.4","ip-address-type":"ipv4","prefix":16},
      {"ip-address":"10.0.0.11","ip-address-type":"ipv4","prefix":24}]},
    {"name":"eth1","ip-addresses":[{"ip-address":"192.168.5.5","ip-address-type":"ipv4","prefix":24}]}]}})";
  auto ip = parse_qemu_agent_ipv4(agent);
  REQUIRE(ip.ok());
  CHECK(*ip == std::optional<std::string>("10.0.0.11"));
  auto only_lo = parse_qemu_agent_ipv4(
      R"({"data":{"result":[{"name":"lo","ip-addresses":[{"ip-address":"127.0.0.1","ip-address-type":"ipv4"}]}]}})");
  REQUIRE(only_lo.ok());
  CHECK_FALSE(only_lo->has_value());

  auto lxc =
      parse_lxc_interfaces_ipv4(R"({"data":[{"name":"lo","inet":"127.0.0.1/8","inet6":"::1/128"},
     {"name":"eth0","inet":"10.1.2.3/24","hwaddr":"bc:24:11:aa:bb:cc"}]})");
  REQUIRE(lxc.ok());
  CHECK(*lxc == std::optional<std::string>("10.1.2.3"));
  auto stopped = parse_lxc_interfaces_ipv4(R"({"data":null})");
  REQUIRE(stopped.ok());
  CHECK_FALSE(stopped->has_value());
  CHECK_FALSE(parse_lxc_interfaces_ipv4("{\"data\":5}").ok());
}

TEST_CASE("is_reportable_ipv4") {
  CHECK(is_reportable_ipv4("10.0.0.1"));
  CHECK(is_reportable_ipv4("203.0.113.9"));
  CHECK_FALSE(is_reportable_ipv4("127.0.0.1"));
  CHECK_FALSE(is_reportable_ipv4("127.255.0.1"));
  CHECK_FALSE(is_reportable_ipv4("169.254.1.1"));
  CHECK_FALSE(is_reportable_ipv4("0.0.0.0"));
  CHECK_FALSE(is_reportable_ipv4("fe80::1"));
  CHECK_FALSE(is_reportable_ipv4("10.0.0"));
}

// Found by fuzz/proxmox_parse (UBSan in to_record: 1e+300 is outside the
// range of long): a finite but absurd core count was accepted and then
// converted to AccountDB's integer cpu_cores.
TEST_CASE("a core count no guest can have rejects the entry by name") {
  auto r = parse_guest_list(
      R"({"data":[{"vmid":101,"status":"running","cpus":1e300},{"vmid":102,"status":"running","cpus":"4e19"},)"
      R"({"vmid":103,"status":"running","cpus":8192}]})",
      GuestType::qemu, "pve");
  REQUIRE(r.ok());
  REQUIRE(r->guests.size() == 1);
  CHECK(to_record(r->guests[0]).cpu_cores == 8192);
  REQUIRE(r->rejected.size() == 2);
  CHECK(r->rejected[0].find("(vmid 101): \"cpus\" is not a core count") != std::string::npos);
  auto cluster = parse_cluster_resources(
      R"({"data":[{"type":"qemu","node":"b","vmid":104,"status":"running","maxcpu":1e300}]})");
  REQUIRE(cluster.ok());
  CHECK(cluster->guests.empty());
  CHECK(cluster->rejected.size() == 1);
}

TEST_CASE("a container list recorded from a PVE 9.2.2 node: both running guests are kept") {
  auto r = parse_guest_list(fixture("nodes-node-lxc.pve92-pressure-strings-negative-cpu.json"),
                            GuestType::lxc, "pve");
  REQUIRE(r.ok());
  CHECK(r->rejected.empty());
  REQUIRE(r->guests.size() == 2);
  CHECK(by_vmid(*r, 101).cpu == 0);  // -5.75291683982414e-05, clamped
  CHECK(by_vmid(*r, 101).running());
  CHECK(by_vmid(*r, 9002).name == "test-lxc-go-9002");
  CHECK(r->clamped == std::map<std::string, std::uint64_t>{{"cpu", 1}});
}

// Issue 32: a container list of a real PVE 9.2.2 node had "cpu": -5.75e-05
// (pve-container's CPU share is a delta of two readings) and the pressure
// values as strings; the entry was rejected, so the guest was never synced.
// The entry below has that shape (written by hand, not a recording).
TEST_CASE("a container whose CPU share dips below zero is kept - clamped and counted") {
  auto r = parse_guest_list(
      R"({"data":[{"vmid":"201","name":"CT201","type":"lxc","status":"running","cpu":-5.75e-05,)"
      R"("cpus":2,"maxmem":2147483648,"mem":104857600,"maxdisk":8589934592,"uptime":5000,)"
      R"("pressurecpusome":"0.00","pressurecpufull":"0.00","pressureiosome":"0.12",)"
      R"("pressureiofull":"0.10","pressurememorysome":"0.00","pressurememoryfull":"0.00"}]})",
      GuestType::lxc, "pve");
  REQUIRE(r.ok());
  CHECK(r->rejected.empty());
  REQUIRE(r->guests.size() == 1);
  CHECK(r->guests[0].cpu == 0);
  CHECK(to_record(r->guests[0]).cpu_usage_percent == 0);
  CHECK(r->clamped == std::map<std::string, std::uint64_t>{{"cpu", 1}});
  // Every negative amount is clamped the same way, in /cluster/resources too.
  auto c = parse_cluster_resources(
      R"({"data":[{"type":"lxc","node":"b","vmid":202,"status":"running","cpu":-0.01,)"
      R"("maxcpu":1,"maxmem":-1,"maxdisk":-2,"uptime":-3}]})");
  REQUIRE(c.ok());
  REQUIRE(c->guests.size() == 1);
  CHECK(c->guests[0].maxmem == 0);
  CHECK(c->clamped == std::map<std::string, std::uint64_t>{
                          {"cpu", 1}, {"maxmem", 1}, {"maxdisk", 1}, {"uptime", 1}});
}
