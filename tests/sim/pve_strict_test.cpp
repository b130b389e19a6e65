// The simulator is as strict as a real node: guest names are never absent or
// empty, a container's CPU share may be slightly negative, PVE 9's pressure
// averages are text for containers, LXC interfaces gain ip-addresses on 8.4,
// permissions are checked before a call is proxied, an unknown node is the
// real 500, and the answers have the shape of recorded real ones
// (tests/fixtures/proxmox/).

#include <fstream>
#include <map>
#include <set>

#include <doctest/doctest.h>

#include "tests/sim/pve_render.hpp"
#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

namespace {

Guest running(int vmid, GuestType type, std::optional<std::string> name = std::nullopt) {
  return {.vmid = vmid,
          .node = "pve1",
          .type = type,
          .name = std::move(name),
          .status = GuestStatus::running,
          .mem = 1LL << 28,
          .cpu = 0.25,
          .net_rate = 100,
          .disk_rate = 100};
}

json entry_of(const json& list, int vmid) {
  for (const auto& e : list) {
    if (e.at("vmid") == vmid || e.at("vmid") == std::to_string(vmid)) {
      return e;
    }
  }
  return nullptr;
}

// The type of each member, numbers as one type whether integral or not.
std::map<std::string, std::string> shape(const json& entry) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : entry.items()) {
    out[k] = v.is_number() ? "number" : v.type_name();
  }
  return out;
}

json fixture(const std::string& name) {
  std::ifstream in(std::string(PHA_FIXTURES_DIR) + "/proxmox/" + name);
  REQUIRE_MESSAGE(in.good(), name);
  return json::parse(in);
}

}  // namespace

TEST_CASE("every guest has a name: VM <vmid> and CT<vmid> for those without one") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(running(100, GuestType::qemu));
  c.cluster().add_guest(running(101, GuestType::qemu, ""));
  c.cluster().add_guest(running(200, GuestType::lxc));
  c.cluster().add_guest(running(201, GuestType::lxc, ""));
  c.cluster().add_guest(running(202, GuestType::lxc, "my host"));
  c.cluster().add_guest({.vmid = 203, .node = "pve1", .type = GuestType::lxc});  // stopped
  const std::map<int, std::string> expected = {{100, "VM 100"}, {101, "VM 101"}, {200, "CT200"},
                                               {201, "CT201"},  {202, "myhost"}, {203, "CT203"}};

  const auto qemu = c.get("pve1", "/nodes/pve1/qemu").json()["data"];
  const auto lxc = c.get("pve1", "/nodes/pve1/lxc").json()["data"];
  const auto resources = c.get("pve2", "/cluster/resources?type=vm").json()["data"];
  for (const auto& [vmid, name] : expected) {
    const auto& list = vmid < 200 ? qemu : lxc;
    CHECK_MESSAGE(entry_of(list, vmid)["name"] == name, vmid);
    CHECK_MESSAGE(entry_of(resources, vmid)["name"] == name, vmid);
    const auto type = vmid < 200 ? "qemu" : "lxc";
    const auto status = c.get("pve1", "/nodes/pve1/" + std::string(type) + "/" +
                                          std::to_string(vmid) + "/status/current");
    CHECK_MESSAGE(status.json()["data"]["name"] == name, vmid);
  }
  // The stand-in is no configuration: config has no name or hostname.
  CHECK_FALSE(c.get("pve1", "/nodes/pve1/qemu/100/config").json()["data"].contains("name"));
  CHECK_FALSE(c.get("pve1", "/nodes/pve1/lxc/200/config").json()["data"].contains("hostname"));
  // The skeleton of a guest on a node gone for long has none.
  c.cluster().migrate(100, "pve2");
  c.cluster().set_node_online("pve2", false);
  c.cluster().advance(std::chrono::minutes(6));
  CHECK_FALSE(
      entry_of(c.get("pve1", "/cluster/resources?type=vm").json()["data"], 100).contains("name"));
}

TEST_CASE("a running container's cpu may be slightly negative - and every default world has one") {
  // The integration tests' world (two nodes, 24 guests, seed 5) and the
  // simulator's defaults for the demo (pve-sim: 3 nodes, 100 guests, seed 42).
  for (const auto& [nodes, guests, seed] :
       {std::tuple<std::vector<std::string>, std::size_t, std::uint64_t>{{"pve1", "pve2"}, 24, 5},
        {{"pve1", "pve2", "pve3"}, 100, 42}}) {
    SimCluster c({.nodes = nodes, .guests = guests, .seed = seed});
    for (const auto& node : nodes) {
      int negative = 0;
      const auto lxc = c.get(node, "/nodes/" + node + "/lxc").json()["data"];
      for (const auto& e : lxc) {
        const auto cpu = e["cpu"].get<double>();
        if (cpu < 0) {
          ++negative;
          CHECK(e["status"] == "running");
          CHECK(cpu > -1e-4);
          const auto vmid = e["vmid"].get<int>();
          CHECK(c.cluster().guest(vmid)->cpu == cpu);
          // The same value in status/current and /cluster/resources.
          CHECK(c.get(node, "/nodes/" + node + "/lxc/" + std::to_string(vmid) + "/status/current")
                    .json()["data"]["cpu"] == cpu);
          CHECK(entry_of(c.get(node, "/cluster/resources?type=vm").json()["data"], vmid)["cpu"] ==
                cpu);
        }
      }
      CHECK_MESSAGE(negative == 1, node, " seed ", seed);
      const auto qemu = c.get(node, "/nodes/" + node + "/qemu").json()["data"];
      for (const auto& e : qemu) {
        CHECK(e["cpu"].get<double>() >= 0);
      }
    }
  }
  // The same seed, the same value; another seed, another one.
  PveCluster a({"pve1"});
  PveCluster b({"pve1"});
  PveCluster other({"pve1"});
  a.generate(40, 5);
  b.generate(40, 5);
  other.generate(40, 6);
  const auto negative = [](const PveCluster& c) {
    for (const auto& g : c.guests()) {
      if (g.cpu < 0) {
        return g.cpu;
      }
    }
    return 0.0;
  };
  CHECK(negative(a) < 0);
  CHECK(negative(a) == negative(b));
  CHECK(negative(a) != negative(other));
  // set_usage lets a container go slightly below zero, never a VM.
  SimCluster c;
  c.cluster().add_guest(running(100, GuestType::qemu));
  c.cluster().add_guest(running(200, GuestType::lxc));
  CHECK(c.cluster().set_usage(100, -5.75e-05, std::nullopt));
  CHECK(c.cluster().set_usage(200, -5.75e-05, std::nullopt));
  CHECK(c.cluster().guest(100)->cpu == 0);
  CHECK(c.cluster().guest(200)->cpu == -5.75e-05);
  CHECK(c.get("pve1", "/nodes/pve1/lxc").body.find("\"cpu\":-5.75e-05") != std::string::npos);
}

TEST_CASE("PVE 9 pressure averages: text for a container - numbers for a VM - only while running") {
  SimCluster c({.version = "9.0.10"});
  c.cluster().add_guest(running(100, GuestType::qemu, "vm"));
  c.cluster().add_guest(running(200, GuestType::lxc, "ct"));
  c.cluster().add_guest({.vmid = 201, .node = "pve1", .type = GuestType::lxc});
  const std::vector<std::string> keys = {"pressurecpusome",    "pressurecpufull",
                                         "pressureiosome",     "pressureiofull",
                                         "pressurememorysome", "pressurememoryfull"};
  const auto ct = entry_of(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 200);
  const auto ct_status = c.get("pve1", "/nodes/pve1/lxc/200/status/current").json()["data"];
  const auto vm = entry_of(c.get("pve1", "/nodes/pve1/qemu").json()["data"], 100);
  const auto vm_status = c.get("pve1", "/nodes/pve1/qemu/100/status/current").json()["data"];
  const auto stopped = entry_of(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 201);
  const auto resources = c.get("pve1", "/cluster/resources?type=vm").json()["data"];
  for (const auto& k : keys) {
    CHECK_MESSAGE(ct[k].is_string(), k);
    CHECK_MESSAGE(ct_status[k].is_string(), k);
    CHECK(ct[k].get<std::string>().size() == 4);  // "0.37": two decimals, as the kernel prints
    CHECK_MESSAGE(vm[k].is_number(), k);
    CHECK_MESSAGE(vm_status[k].is_number(), k);
    CHECK_FALSE(stopped.contains(k));
    for (const auto& e : resources) {
      CHECK_FALSE(e.contains(k));
    }
  }
  // PVE 8 has none.
  c.cluster().set_node_version("pve1", "8.4.14");
  const auto old = entry_of(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 200);
  for (const auto& k : keys) {
    CHECK_FALSE(old.contains(k));
  }
}

TEST_CASE("LXC interfaces have ip-addresses and hardware-address from PVE 8.4 on") {
  SimCluster c;
  auto g = running(200, GuestType::lxc, "ct");
  g.ipv4 = "10.0.0.7/24";
  g.mac = "BC:24:11:AA:BB:CC";
  c.cluster().add_guest(g);
  auto d = c.get("pve1", "/nodes/pve1/lxc/200/interfaces").json()["data"];
  REQUIRE(d.size() == 2);
  CHECK(d[1]["hardware-address"] == "bc:24:11:aa:bb:cc");
  CHECK(d[1]["hwaddr"] == "bc:24:11:aa:bb:cc");
  CHECK(d[1]["inet"] == "10.0.0.7/24");
  REQUIRE(d[1]["ip-addresses"].size() == 2);
  // The families as `ip --json a` names them, not QEMU's ipv4/ipv6.
  CHECK(d[1]["ip-addresses"][0] ==
        json{{"ip-address", "10.0.0.7"}, {"ip-address-type", "inet"}, {"prefix", 24}});
  CHECK(d[1]["ip-addresses"][1]["ip-address-type"] == "inet6");
  CHECK(d[0]["ip-addresses"][0]["ip-address"] == "127.0.0.1");
  CHECK(d[0]["hardware-address"] == "00:00:00:00:00:00");

  c.cluster().set_node_version("pve1", "8.3.5");
  d = c.get("pve1", "/nodes/pve1/lxc/200/interfaces").json()["data"];
  CHECK(d[1]["inet"] == "10.0.0.7/24");
  CHECK_FALSE(d[1].contains("ip-addresses"));
  CHECK_FALSE(d[1].contains("hardware-address"));
}

TEST_CASE("an unknown node is a 500 hostname lookup failure in the usual error body") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  const std::string message =
      "hostname lookup 'nosuch' failed - failed to get address info for: nosuch: Name or "
      "service not known";
  auto r = c.get("pve1", "/nodes/nosuch/qemu");
  CHECK(r.status == 500);
  CHECK(r.reason == message);
  CHECK(r.header("content-type") == "application/json;charset=UTF-8");
  CHECK(r.json() == json{{"data", nullptr}, {"message", message + "\n"}});
  r = c.get("pve1", "/nodes/nosuch/lxc/100/status/current");
  CHECK(r.status == 500);
  CHECK(r.reason == message);
  c.cluster().set_node_version("pve1", "8.2.4");
  CHECK(c.get("pve1", "/nodes/nosuch/qemu").body == "{\"data\":null}");
  // Before 8.4 and after: the receiving node decides the body, not a target.
  c.cluster().set_node_version("pve1", "9.1.2");
  CHECK(c.get("pve1", "/nodes/nosuch/qemu").json().contains("message"));
}

TEST_CASE("the permission check comes before proxying: 403 for a node that does not exist") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(running(100, GuestType::qemu, "vm"));
  c.cluster().add_token({.id = "mon@pve!none", .secret = "s", .privsep = true, .privileges = {}});
  const std::vector<std::string> none = {"Authorization: PVEAPIToken=mon@pve!none=s"};
  auto r = c.get("pve1", "/nodes/nosuch/qemu/100/status/current", none);
  CHECK(r.status == 403);
  CHECK(r.reason == "Permission check failed (/vms/100, VM.Audit)");
  // and for a node that cannot be reached
  c.host("pve2").set_fault({.kind = FaultKind::down});
  CHECK(c.get("pve1", "/nodes/pve2/qemu/100/status/current", none).status == 403);
  CHECK(c.get("pve1", "/nodes/pve2/status", none).reason ==
        "Permission check failed (/nodes/pve2, Sys.Audit)");
  // A list checks nothing first: it filters, so the lookup fails.
  CHECK(c.get("pve1", "/nodes/nosuch/qemu", none).status == 500);
  CHECK(c.get("pve1", "/nodes/pve2/qemu", none).status == 595);
}

TEST_CASE("a PVE 9.2 container list has the shape of the recorded one") {
  const auto recorded = fixture("nodes-node-lxc.pve92-pressure-strings-negative-cpu.json")["data"];
  REQUIRE(recorded.size() == 2);
  SimCluster c({.version = "9.2.2"});
  c.cluster().add_guest(running(9002, GuestType::lxc, "test-lxc-go-9002"));
  auto back = running(101, GuestType::lxc, "back");
  back.cpu = -5.75291683982414e-05;
  c.cluster().add_guest(back);
  const auto answer = c.get("pve1", "/nodes/pve1/lxc").json()["data"];
  for (const int vmid : {9002, 101}) {
    const auto sim = entry_of(answer, vmid);
    const auto real = entry_of(recorded, vmid);
    REQUIRE(real.is_object());
    CHECK(shape(sim) == shape(real));
  }
  CHECK(entry_of(answer, 101)["cpu"] == entry_of(recorded, 101)["cpu"]);
}

TEST_CASE("older container and VM lists have the shape of the recorded ones") {
  SimCluster c({.version = "8.1.4"});
  c.cluster().add_guest(running(100, GuestType::qemu, "pxe.home.arpa"));
  c.cluster().add_guest({.vmid = 101, .node = "pve1", .name = "test1"});
  c.cluster().add_guest(running(102, GuestType::lxc, "test-lxc.home.arpa"));
  c.cluster().add_guest({.vmid = 103, .node = "pve1", .type = GuestType::lxc, .name = "t"});
  const auto qemu = c.get("pve1", "/nodes/pve1/qemu").json()["data"];
  const auto lxc = c.get("pve1", "/nodes/pve1/lxc").json()["data"];
  const auto recorded_qemu = fixture("nodes-node-qemu.pve8.json")["data"];
  const auto recorded_lxc = fixture("nodes-node-lxc.pve8-vmid-string.json")["data"];
  CHECK(shape(entry_of(qemu, 100)) == shape(entry_of(recorded_qemu, 100)));
  CHECK(shape(entry_of(qemu, 101)) == shape(entry_of(recorded_qemu, 101)));
  CHECK(shape(entry_of(lxc, 102)) == shape(entry_of(recorded_lxc, 102)));
  CHECK(shape(entry_of(lxc, 103)) == shape(entry_of(recorded_lxc, 103)));
}
