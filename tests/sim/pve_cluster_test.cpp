// PveCluster: the generated guest mix, the simulated clock and the mutations,
// each seen through the API.

#include <set>

#include <doctest/doctest.h>

#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

TEST_CASE("the same seed generates the same guests") {
  PveCluster a({"pve1", "pve2", "pve3"});
  PveCluster b({"pve1", "pve2", "pve3"});
  a.generate(200, 7);
  b.generate(200, 7);
  const auto ga = a.guests();
  const auto gb = b.guests();
  REQUIRE(ga.size() == 200);
  REQUIRE(gb.size() == 200);
  for (std::size_t i = 0; i < ga.size(); ++i) {
    CHECK(ga[i].vmid == gb[i].vmid);
    CHECK(ga[i].node == gb[i].node);
    CHECK(ga[i].name == gb[i].name);
    CHECK(ga[i].status == gb[i].status);
  }
  PveCluster other({"pve1", "pve2", "pve3"});
  other.generate(200, 8);
  CHECK(other.guests()[5].name != ga[5].name);
}

TEST_CASE("generated guests are a realistic mix") {
  PveCluster c({"pve1", "pve2", "pve3"});
  c.generate(1000, 42);
  std::set<std::string> nodes;
  int qemu = 0, lxc = 0, running = 0, stopped = 0, paused = 0, templates = 0, tagged = 0;
  int unnamed = 0, empty_name = 0, fractional = 0, described = 0, agents = 0;
  for (const auto& g : c.guests()) {
    nodes.insert(g.node);
    (g.type == GuestType::qemu ? qemu : lxc)++;
    running += g.status == GuestStatus::running;
    stopped += g.status == GuestStatus::stopped;
    paused += g.status == GuestStatus::paused;
    templates += g.template_;
    tagged += !g.tags.empty();
    unnamed += !g.name.has_value();
    empty_name += g.name && g.name->empty();
    fractional += g.cpus != static_cast<double>(static_cast<int>(g.cpus));
    described += g.description.has_value();
    agents += g.agent_running;
    if (g.template_) {
      CHECK(g.status == GuestStatus::stopped);
    }
    CHECK((g.pid != 0) == (g.status != GuestStatus::stopped));
    CHECK(g.vmid >= 100);
  }
  CHECK(nodes.size() == 3);
  CHECK(qemu > 500);
  CHECK(lxc > 200);
  CHECK(running > 500);
  CHECK(stopped > 150);
  CHECK(paused > 5);
  CHECK(templates > 10);
  CHECK(tagged > 200);
  CHECK(unnamed > 10);
  CHECK(empty_name > 0);
  CHECK(fractional > 10);
  CHECK(described > 300);
  CHECK(agents > 200);
}

TEST_CASE("start stop pause and usage changes show in the lists") {
  SimCluster c;
  c.cluster().add_guest({.vmid = 100, .node = "pve1", .name = "web"});
  const auto entry = [&] { return c.get("pve1", "/nodes/pve1/qemu").json()["data"][0]; };
  CHECK(entry()["status"] == "stopped");
  REQUIRE(c.cluster().start(100));
  auto e = entry();
  CHECK(e["status"] == "running");
  CHECK(e["pid"].is_number());
  const auto pid = e["pid"].get<long long>();
  c.cluster().advance(std::chrono::seconds(100));
  CHECK(entry()["uptime"].get<long long>() >= 100);
  CHECK(c.cluster().set_usage(100, 0.5, 123456789));
  e = entry();
  CHECK(e["cpu"] == 0.5);
  CHECK(e["mem"] == 123456789);
  CHECK(c.cluster().pause(100));
  CHECK(c.get("pve1", "/cluster/resources?type=vm").json()["data"][0]["status"] == "paused");
  CHECK(c.cluster().resume(100));
  CHECK(c.cluster().stop(100));
  e = entry();
  CHECK(e["status"] == "stopped");
  CHECK_FALSE(e.contains("pid"));
  CHECK(c.cluster().start(100));
  CHECK(entry()["pid"].get<long long>() != pid);
}

TEST_CASE("rename migrate and delete show in the lists") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(
      {.vmid = 100, .node = "pve1", .name = "web", .status = GuestStatus::running});
  CHECK(c.cluster().rename(100, "web-renamed"));
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"][0]["name"] == "web-renamed");
  CHECK(c.cluster().rename(100, std::nullopt));
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"][0]["name"] == "VM 100");
  CHECK(c.cluster().set_tags(100, "a;b"));
  CHECK(c.cluster().set_lock(100, "backup"));
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"][0]["lock"] == "backup");

  CHECK(c.cluster().migrate(100, "pve2"));
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"].empty());
  CHECK(c.get("pve2", "/nodes/pve2/qemu").json()["data"].size() == 1);
  CHECK(c.get("pve1", "/nodes/pve1/qemu/100/config").status == 500);
  CHECK(c.get("pve2", "/nodes/pve2/qemu/100/config").json()["data"]["tags"] == "a;b");
  CHECK_FALSE(c.cluster().migrate(100, "nosuch"));

  CHECK(c.cluster().remove_guest(100));
  CHECK(c.get("pve2", "/nodes/pve2/qemu").json()["data"].empty());
  CHECK_FALSE(c.cluster().start(100));
  CHECK_THROWS_AS(c.cluster().add_guest({.vmid = 101, .node = "nosuch"}), std::invalid_argument);
  c.cluster().add_guest({.vmid = 101, .node = "pve1"});
  CHECK_THROWS_AS(c.cluster().add_guest({.vmid = 101, .node = "pve1"}), std::invalid_argument);
}

TEST_CASE("the simulated clock starts at real time and advances on request") {
  PveCluster c;
  const auto real = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  CHECK(c.now() >= real);
  CHECK(c.now() <= real + 5);
  c.advance(std::chrono::hours(3));
  CHECK(c.now() >= real + 3 * 3600);
}

TEST_CASE("a standalone node has no cluster entry and nodeid 0") {
  SimCluster c;
  const auto d = c.get("pve1", "/cluster/status").json()["data"];
  REQUIRE(d.size() == 1);
  CHECK(d[0]["type"] == "node");
  CHECK(d[0]["local"] == 1);
  CHECK(d[0]["nodeid"] == 0);
}
