// Host faults as a client sees them, their path and count limits, flapping,
// clearing, the guest lists' well-formed lies, and the request counts.

#include <set>

#include <doctest/doctest.h>

#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("down refuses connections and clearing brings the host back on its port") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  const auto url = c.host("pve1").url();
  c.host("pve1").set_fault({.kind = FaultKind::down});
  CHECK(c.host("pve1").down());
  CHECK(c.get("pve1", "/version").code == CURLE_COULDNT_CONNECT);
  CHECK(c.get("pve2", "/version").status == 200);
  // The node itself is still a cluster member: only its API is down.
  const auto status_entries = c.get("pve2", "/cluster/status").json()["data"];
  for (const auto& e : status_entries) {
    if (e.value("name", "") == "pve1") {
      CHECK(e["online"] == 1);
    }
  }
  c.host("pve1").clear_fault();
  CHECK(c.host("pve1").url() == url);
  CHECK(c.get("pve1", "/version").status == 200);
}

TEST_CASE("hang never answers until the fault is cleared") {
  SimCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::hang});
  auto req = c.request("pve1", "/version");
  req.timeout = 200ms;
  auto r = fetch(req);
  CHECK(r.code == CURLE_OPERATION_TIMEDOUT);
  CHECK(c.host("pve1").count("GET /api2/json/version") == 1);
  CHECK(c.host("pve1").requests().back().status == 0);

  req.timeout = 10s;
  std::thread clearer([&] {
    eventually([&] { return c.host("pve1").count("GET /api2/json/version") == 2; });
    c.host("pve1").clear_fault();
  });
  r = fetch(req);
  clearer.join();
  CHECK(r.code == CURLE_GOT_NOTHING);
  CHECK(c.get("pve1", "/version").status == 200);
}

TEST_CASE("slow answers after the delay") {
  SimCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::slow, .delay = 300ms});
  auto req = c.request("pve1", "/version");
  req.timeout = 100ms;
  CHECK(fetch(req).code == CURLE_OPERATION_TIMEDOUT);
  req.timeout = 5s;
  const auto r = fetch(req);
  CHECK(r.status == 200);
  CHECK(r.elapsed >= 300ms);
}

TEST_CASE("reset and truncated bodies are transfer errors") {
  SimCluster c({.guests = 20});
  c.host("pve1").set_fault({.kind = FaultKind::reset});
  auto r = c.get("pve1", "/cluster/resources?type=vm");
  CHECK(r.code == CURLE_RECV_ERROR);
  c.host("pve1").set_fault({.kind = FaultKind::truncated});
  r = c.get("pve1", "/cluster/resources?type=vm");
  CHECK(r.code == CURLE_PARTIAL_FILE);
  CHECK_FALSE(r.body.empty());
  CHECK_THROWS(json::parse(r.body));
}

TEST_CASE("non_json answers 200 with an HTML page") {
  SimCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::non_json});
  const auto r = c.get("pve1", "/nodes/pve1/qemu");
  CHECK(r.status == 200);
  CHECK(r.header("content-type").starts_with("text/html"));
  CHECK(r.body.starts_with("<!DOCTYPE html>"));
  CHECK_THROWS(json::parse(r.body));
}

TEST_CASE("oversized sends a valid-looking JSON body larger than any sane limit") {
  SimCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::oversized});
  auto req = c.request("pve1", "/nodes/pve1/qemu");
  req.max_body = 16u << 20;
  auto r = fetch(req);
  CHECK(r.status == 200);
  CHECK(r.header("content-length") == std::to_string(20u << 20));
  CHECK(r.code == CURLE_WRITE_ERROR);  // the client's limit stopped it
  // A smaller one parses, so the shape is real JSON.
  c.host("pve1").set_fault({.kind = FaultKind::oversized, .oversized_bytes = 100000});
  req.max_body.reset();
  r = fetch(req);
  REQUIRE(r.transfer_ok());
  CHECK(r.body.size() == 100000);
  CHECK(json::parse(r.body)["data"].size() > 100);
}

TEST_CASE("status answers with the status and reason and Proxmox's bodies") {
  SimCluster c;
  c.host("pve1").set_fault(
      {.kind = FaultKind::status, .status = 596, .reason = "Connection timed out"});
  auto r = c.get("pve1", "/cluster/resources?type=vm");
  CHECK(r.status == 596);
  CHECK(r.reason == "Connection timed out");
  CHECK(r.body.empty());
  c.host("pve1").set_fault({.kind = FaultKind::status, .status = 500});
  r = c.get("pve1", "/version");
  CHECK(r.status == 500);
  CHECK(r.reason == "Internal Server Error");
  CHECK(r.json()["data"].is_null());
}

TEST_CASE("a fault limited by path prefix and count clears itself") {
  SimCluster c;
  c.host("pve1").set_fault(
      {.kind = FaultKind::status, .path_prefix = "/nodes/", .count = 2, .status = 595});
  CHECK(c.get("pve1", "/version").status == 200);
  CHECK(c.get("pve1", "/nodes/pve1/qemu").status == 595);
  CHECK(c.get("pve1", "/nodes/pve1/lxc").status == 595);
  CHECK(c.get("pve1", "/nodes/pve1/qemu").status == 200);
  CHECK_FALSE(c.host("pve1").fault().has_value());
  // A full path prefix works too.
  c.host("pve1").set_fault({.kind = FaultKind::status, .path_prefix = "/api2/json/version"});
  CHECK(c.get("pve1", "/version").status == 500);
  CHECK(c.get("pve1", "/nodes/pve1/qemu").status == 200);
}

TEST_CASE("flap alternates normal and failed answers every N requests") {
  SimCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::flap, .status = 503, .every = 2});
  std::vector<long> seen;
  for (int i = 0; i < 8; ++i) {
    seen.push_back(c.get("pve1", "/version").status);
  }
  CHECK(seen == std::vector<long>{200, 200, 503, 503, 200, 200, 503, 503});
}

TEST_CASE("requests are counted per method and path with the query kept separately") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  auto& h = c.host("pve1");
  c.get("pve1", "/cluster/resources?type=vm");
  c.get("pve1", "/cluster/resources?type=vm");
  c.get("pve1", "/nodes/pve1/qemu");
  c.get("pve1", "/nodes/pve2/qemu");
  auto head = c.request("pve1", "/version");
  head.method = "HEAD";
  fetch(head);
  CHECK(h.count("GET /api2/json/cluster/resources") == 2);
  CHECK(h.count("GET /api2/json/nodes/pve1/qemu") == 1);
  CHECK(h.count("GET /api2/json/nodes/pve2/qemu") == 1);
  CHECK(h.count("HEAD /api2/json/version") == 1);
  CHECK(h.total_requests() == 5);
  const auto log = h.requests();
  REQUIRE(log.size() == 5);
  CHECK(log[0].query == "type=vm");
  CHECK(log[0].status == 200);
  CHECK(log[4].status == 501);
  CHECK(c.host("pve2").count("GET /api2/json/nodes/pve2/qemu") == 1);
  h.reset_counts();
  CHECK(h.total_requests() == 0);
  CHECK(h.counts().empty());
  CHECK(h.requests().empty());
}

namespace {

std::set<int> vmids_of(const json& list) {
  std::set<int> out;
  for (const auto& e : list) {
    if (e.contains("vmid")) {
      out.insert(e["vmid"].get<int>());
    }
  }
  return out;
}

// pve1 with VMs 100-103 and CTs 200-201, all running.
struct LyingCluster : SimCluster {
  LyingCluster() : SimCluster({.nodes = {"pve1", "pve2"}}) {
    for (const int vmid : {100, 101, 102, 103, 200, 201}) {
      cluster().add_guest({.vmid = vmid,
                           .node = "pve1",
                           .type = vmid >= 200 ? GuestType::lxc : GuestType::qemu,
                           .name = "g" + std::to_string(vmid),
                           .status = GuestStatus::running});
    }
  }
};

}  // namespace

TEST_CASE("empty_list answers the guest lists 200 with no guests and the real headers") {
  LyingCluster c;
  const auto honest = c.get("pve1", "/nodes/pve1/qemu");
  c.host("pve1").set_fault({.kind = FaultKind::empty_list});
  for (const auto* path :
       {"/nodes/pve1/qemu", "/nodes/pve1/lxc", "/cluster/resources?type=vm", "/nodes/pve2/qemu"}) {
    const auto r = c.get("pve1", path);
    CHECK(r.status == 200);
    CHECK(r.reason == "OK");
    CHECK(r.body == "{\"data\":[]}");
    CHECK(r.header("content-type") == honest.header("content-type"));
    CHECK(r.header("server") == honest.header("server"));
  }
  // Without a type the nodes, storage and sdn entries stay.
  const auto all = c.get("pve1", "/cluster/resources").json()["data"];
  CHECK(vmids_of(all).empty());
  CHECK(all.size() == 2 + 4 + 2);
  // Other calls do not meet it, and a denied list stays denied.
  CHECK(c.get("pve1", "/version").status == 200);
  CHECK(c.get("pve1", "/nodes/pve1/qemu/100/status/current").json()["data"]["status"] == "running");
  CHECK(c.get("pve1", "/nodes/pve1/qemu", {"Authorization: PVEAPIToken=x@pve!y=z"}).status == 401);
  // Another host tells the truth.
  CHECK(c.get("pve2", "/nodes/pve1/qemu").json()["data"].size() == 4);
  c.host("pve1").clear_fault();
  CHECK(vmids_of(c.get("pve1", "/nodes/pve1/qemu").json()["data"]) ==
        std::set<int>{100, 101, 102, 103});
}

TEST_CASE("empty_list keeps to its path prefix and count like every fault") {
  LyingCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::empty_list, .path_prefix = "/nodes/", .count = 2});
  // /version and /cluster/resources neither match nor count.
  CHECK(c.get("pve1", "/version").status == 200);
  CHECK(c.get("pve1", "/cluster/resources?type=vm").json()["data"].size() == 6);
  CHECK(c.get("pve1", "/nodes/pve1/qemu/100/config").status == 200);
  CHECK(c.get("pve1", "/nodes/pve1/qemu").json()["data"].empty());
  CHECK(c.get("pve1", "/nodes/pve1/lxc").json()["data"].empty());
  CHECK_FALSE(c.host("pve1").fault().has_value());
  CHECK(c.get("pve1", "/nodes/pve1/lxc").json()["data"].size() == 2);
}

TEST_CASE("drop_entries leaves out the lowest vmids of each list or the ones given") {
  LyingCluster c;
  c.host("pve1").set_fault({.kind = FaultKind::drop_entries, .drop = 2});
  auto r = c.get("pve1", "/nodes/pve1/qemu");
  CHECK(r.status == 200);
  CHECK(vmids_of(r.json()["data"]) == std::set<int>{102, 103});
  CHECK(vmids_of(c.get("pve1", "/nodes/pve1/lxc").json()["data"]).empty());
  CHECK(vmids_of(c.get("pve1", "/cluster/resources?type=vm").json()["data"]) ==
        std::set<int>{102, 103, 200, 201});
  // Every remaining entry is whole.
  const auto remaining = r.json()["data"];
  for (const auto& e : remaining) {
    CHECK(e["name"] == "g" + std::to_string(e["vmid"].get<int>()));
    CHECK(e["pid"].is_number());
  }
  c.host("pve1").set_fault({.kind = FaultKind::drop_entries, .drop_vmids = {101, 200, 999}});
  CHECK(vmids_of(c.get("pve1", "/nodes/pve1/qemu").json()["data"]) == std::set<int>{100, 102, 103});
  CHECK(vmids_of(c.get("pve1", "/nodes/pve1/lxc").json()["data"]) == std::set<int>{201});
  CHECK(vmids_of(c.get("pve1", "/cluster/resources").json()["data"]) ==
        std::set<int>{100, 102, 103, 201});
  c.host("pve1").clear_fault();
  CHECK(c.get("pve1", "/cluster/resources?type=vm").json()["data"].size() == 6);
  CHECK(to_string(FaultKind::drop_entries) == "drop_entries");
  CHECK(parse_fault_kind("empty_list") == FaultKind::empty_list);
}
