// The simulated API's endpoints: shapes as in the captured fixtures, agreement
// with the cluster state, typing by version, and the error answers of a real
// pveproxy (501, 500, 595, 400).

#include <set>

#include <doctest/doctest.h>

#include "tests/sim/pve_render.hpp"
#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

namespace {

Guest make_guest(int vmid, const std::string& node, GuestType type, GuestStatus status) {
  Guest g;
  g.vmid = vmid;
  g.node = node;
  g.type = type;
  g.status = status;
  g.name = "guest-" + std::to_string(vmid);
  g.cpus = type == GuestType::lxc ? 1.5 : 2;
  g.maxmem = 2LL << 30;
  g.maxdisk = 16LL << 30;
  if (status != GuestStatus::stopped) {
    g.mem = 1LL << 30;
    g.cpu = 0.25;
    g.net_rate = 100;
    g.disk_rate = 100;
  }
  return g;
}

json find_vmid(const json& list, int vmid) {
  for (const auto& e : list) {
    const auto& v = e.at("vmid");
    if ((v.is_number() && v.get<int>() == vmid) ||
        (v.is_string() && v.get<std::string>() == std::to_string(vmid))) {
      return e;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("GET /version has the release - version and repoid") {
  SimCluster c;
  const auto r = c.get("pve1", "/version");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type") == "application/json;charset=UTF-8");
  const auto d = r.json().at("data");
  CHECK(d.at("release") == "8.4");
  CHECK(d.at("version") == "8.4.14");
  CHECK(d.at("repoid").get<std::string>().size() == 8);

  c.cluster().set_node_version("pve1", "7.4-16");
  CHECK(c.get("pve1", "/version").json()["data"]["release"] == "7.4");
}

TEST_CASE("GET /cluster/status names the local node on each host") {
  SimCluster c({.nodes = {"pve1", "pve2", "pve3"}});
  c.cluster().set_node_online("pve3", false);
  for (const auto& self : {"pve1", "pve2"}) {
    const auto d = c.get(self, "/cluster/status").json().at("data");
    REQUIRE(d.size() == 4);
    int locals = 0;
    for (const auto& e : d) {
      if (e["type"] == "cluster") {
        CHECK(e["nodes"] == 3);
        CHECK(e["quorate"] == 1);
        CHECK(e["name"] == "pve-cluster");
        continue;
      }
      CHECK(e["type"] == "node");
      const auto name = e["name"].get<std::string>();
      CHECK(e["id"] == "node/" + name);
      CHECK(e["online"] == (name == "pve3" ? 0 : 1));
      CHECK(e["ip"] == c.cluster().node(name)->ip);
      CHECK(e.contains("nodeid"));
      CHECK(e["level"] == "");
      if (e["local"] == 1) {
        ++locals;
        CHECK(name == self);
      }
    }
    CHECK(locals == 1);
  }
}

TEST_CASE("the ip of /cluster/status with the first host's port reaches every node") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  const auto port = std::to_string(c.host("pve1").port());
  const auto status_entries = c.get("pve1", "/cluster/status").json()["data"];
  for (const auto& e : status_entries) {
    if (e["type"] != "node") {
      continue;
    }
    Request req = c.request("pve1", "/cluster/status");
    req.url = "https://" + e["ip"].get<std::string>() + ":" + port + "/api2/json/cluster/status";
    const auto r = fetch(req);
    REQUIRE(r.status == 200);
    const auto seen_there = r.json()["data"];
    for (const auto& x : seen_there) {
      if (x["type"] == "node" && x["local"] == 1) {
        CHECK(x["name"] == e["name"]);
      }
    }
  }
}

TEST_CASE("GET /nodes lists online nodes with metrics and offline nodes as skeletons") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().set_node_online("pve2", false);
  const auto d = c.get("pve1", "/nodes").json().at("data");
  REQUIRE(d.size() == 2);
  for (const auto& n : d) {
    CHECK(n["type"] == "node");
    CHECK(n["ssl_fingerprint"] == c.sim.cert(n["node"]).sha256_fingerprint);
    if (n["node"] == "pve1") {
      CHECK(n["status"] == "online");
      CHECK(n["maxcpu"].is_number());
      CHECK(n["uptime"].is_number());
    } else {
      CHECK(n["status"] == "offline");
      CHECK_FALSE(n.contains("maxcpu"));
    }
  }
}

TEST_CASE("GET /nodes/{node}/qemu matches the cluster state field by field") {
  SimCluster c;
  auto running = make_guest(100, "pve1", GuestType::qemu, GuestStatus::running);
  running.tags = "prod;web";
  running.lock = "backup";
  c.cluster().add_guest(running);
  auto stopped = make_guest(101, "pve1", GuestType::qemu, GuestStatus::stopped);
  stopped.name = std::nullopt;
  c.cluster().add_guest(stopped);
  auto tmpl = make_guest(9000, "pve1", GuestType::qemu, GuestStatus::stopped);
  tmpl.template_ = true;
  c.cluster().add_guest(tmpl);
  c.cluster().add_guest(make_guest(102, "pve1", GuestType::qemu, GuestStatus::paused));
  c.cluster().add_guest(make_guest(200, "pve1", GuestType::lxc, GuestStatus::running));

  const auto d = c.get("pve1", "/nodes/pve1/qemu").json().at("data");
  REQUIRE(d.size() == 4);
  const auto r = find_vmid(d, 100);
  CHECK(r["vmid"] == 100);
  CHECK(r["name"] == "guest-100");
  CHECK(r["status"] == "running");
  CHECK(r["cpus"] == 2);
  CHECK(r["maxmem"] == 2LL << 30);
  CHECK(r["mem"] == 1LL << 30);
  CHECK(r["cpu"] == 0.25);
  CHECK(r["pid"].is_number());
  CHECK(r["tags"] == "prod;web");
  CHECK(r["lock"] == "backup");
  CHECK_FALSE(r.contains("template"));
  for (const auto* key :
       {"maxdisk", "disk", "netin", "netout", "diskread", "diskwrite", "uptime"}) {
    CHECK(r[key].is_number());
  }
  const auto s = find_vmid(d, 101);
  CHECK(s["status"] == "stopped");
  CHECK_FALSE(s.contains("pid"));
  CHECK(s["name"] == "VM 101");  // qemu-server's stand-in for a VM without a name
  CHECK_FALSE(s.contains("tags"));
  CHECK_FALSE(s.contains("lock"));
  CHECK(s["uptime"] == 0);
  CHECK(find_vmid(d, 9000)["template"] == 1);
  // The list shows a paused VM as running.
  CHECK(find_vmid(d, 102)["status"] == "running");
}

TEST_CASE("GET /nodes/{node}/lxc has type lxc and fractional cpus") {
  SimCluster c;
  c.cluster().add_guest(make_guest(200, "pve1", GuestType::lxc, GuestStatus::running));
  c.cluster().add_guest(make_guest(201, "pve1", GuestType::lxc, GuestStatus::stopped));
  c.cluster().add_guest(make_guest(100, "pve1", GuestType::qemu, GuestStatus::running));
  const auto d = c.get("pve1", "/nodes/pve1/lxc").json().at("data");
  REQUIRE(d.size() == 2);
  const auto r = find_vmid(d, 200);
  CHECK(r["vmid"] == 200);
  CHECK(r["type"] == "lxc");
  CHECK(r["cpus"] == 1.5);
  CHECK(r["maxswap"].is_number());
  CHECK(r["pid"].is_number());
  CHECK_FALSE(find_vmid(d, 201).contains("pid"));
}

TEST_CASE("legacy typing follows the pve-manager version") {
  SimCluster c;
  c.cluster().add_guest(make_guest(100, "pve1", GuestType::qemu, GuestStatus::running));
  auto tmpl = make_guest(9001, "pve1", GuestType::qemu, GuestStatus::stopped);
  tmpl.template_ = true;
  c.cluster().add_guest(tmpl);
  c.cluster().add_guest(make_guest(200, "pve1", GuestType::lxc, GuestStatus::running));

  SUBCASE("PVE 6: QEMU vmid and pid strings and template \"\"") {
    c.cluster().set_node_version("pve1", "6.4-15");
    const auto q = c.get("pve1", "/nodes/pve1/qemu").json()["data"];
    const auto r = find_vmid(q, 100);
    CHECK(r["vmid"] == "100");
    CHECK(r["pid"].is_string());
    CHECK(r["template"] == "");
    CHECK(find_vmid(q, 9001)["template"] == 1);
    CHECK(find_vmid(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 200)["vmid"] == "200");
  }
  SUBCASE("PVE 7.4: numbers for QEMU and a string vmid for LXC") {
    c.cluster().set_node_version("pve1", "7.4-16");
    const auto r = find_vmid(c.get("pve1", "/nodes/pve1/qemu").json()["data"], 100);
    CHECK(r["vmid"] == 100);
    CHECK(r["pid"].is_number());
    CHECK_FALSE(r.contains("template"));
    CHECK(find_vmid(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 200)["vmid"] == "200");
  }
  SUBCASE("PVE 8.2 and later: numbers everywhere") {
    c.cluster().set_node_version("pve1", "8.2.2");
    CHECK(find_vmid(c.get("pve1", "/nodes/pve1/lxc").json()["data"], 200)["vmid"] == 200);
  }
  // /cluster/resources always has numbers.
  c.cluster().set_node_version("pve1", "6.4-15");
  const auto res = c.get("pve1", "/cluster/resources?type=vm").json()["data"];
  CHECK(find_vmid(res, 100)["vmid"] == 100);
  CHECK(find_vmid(res, 100)["template"] == 0);
}

TEST_CASE("GET /cluster/resources has every guest of the cluster and agrees across hosts") {
  SimCluster c({.nodes = {"pve1", "pve2", "pve3"}, .guests = 60, .seed = 3});
  const auto guests = c.cluster().guests();
  const auto d1 = c.get("pve1", "/cluster/resources?type=vm").json().at("data");
  REQUIRE(d1.size() == guests.size());
  for (const auto& g : guests) {
    const auto e = find_vmid(d1, g.vmid);
    REQUIRE(e.is_object());
    CHECK(e["id"] == to_string(g.type) + "/" + std::to_string(g.vmid));
    CHECK(e["node"] == g.node);
    CHECK(e["type"] == to_string(g.type));
    CHECK(e["maxcpu"].is_number());
    CHECK(e["template"] == (g.template_ ? 1 : 0));
    CHECK(e["name"] == display_name(g));
    const auto status = e["status"].get<std::string>();
    if (g.type == GuestType::qemu) {
      CHECK(status == to_string(g.status));  // the monitor state: paused shows as paused
    }
  }
  for (const auto& other : {"pve2", "pve3"}) {
    const auto d = c.get(other, "/cluster/resources?type=vm").json().at("data");
    CHECK(d.size() == d1.size());
    for (const auto& e : d) {
      CHECK(find_vmid(d1, e["vmid"].get<int>())["node"] == e["node"]);
    }
  }
  // Without a type: nodes, storage and sdn entries too.
  std::set<std::string> types;
  const auto all_resources = c.get("pve1", "/cluster/resources").json()["data"];
  for (const auto& e : all_resources) {
    types.insert(e["type"].get<std::string>());
  }
  CHECK(types == std::set<std::string>{"lxc", "node", "qemu", "sdn", "storage"});
  std::size_t nodes = 0;
  const auto node_resources = c.get("pve1", "/cluster/resources?type=node").json()["data"];
  for (const auto& e : node_resources) {
    CHECK(e["type"] == "node");
    ++nodes;
  }
  CHECK(nodes == 3);
}

TEST_CASE("guests of a node offline for more than 5 simulated minutes become unknown") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(make_guest(100, "pve2", GuestType::qemu, GuestStatus::running));
  c.cluster().add_guest(make_guest(101, "pve1", GuestType::lxc, GuestStatus::running));
  c.cluster().set_node_online("pve2", false);
  auto e = find_vmid(c.get("pve1", "/cluster/resources?type=vm").json()["data"], 100);
  CHECK(e["status"] == "running");  // last known values at first
  CHECK(e["name"] == "guest-100");
  c.cluster().advance(std::chrono::minutes(6));
  const auto d = c.get("pve1", "/cluster/resources?type=vm").json()["data"];
  e = find_vmid(d, 100);
  CHECK(e == json{{"id", "qemu/100"},
                  {"vmid", 100},
                  {"node", "pve2"},
                  {"type", "qemu"},
                  {"status", "unknown"}});
  CHECK(find_vmid(d, 101)["status"] == "running");
  c.cluster().set_node_online("pve2", true);
  CHECK(find_vmid(c.get("pve1", "/cluster/resources?type=vm").json()["data"], 100)["status"] ==
        "running");
}

TEST_CASE("config has the description and status/current the monitor state") {
  SimCluster c;
  auto g = make_guest(100, "pve1", GuestType::qemu, GuestStatus::paused);
  g.agent_configured = true;
  c.cluster().add_guest(g);
  c.cluster().add_guest(make_guest(200, "pve1", GuestType::lxc, GuestStatus::stopped));
  CHECK(c.cluster().set_description(100, "Customer: Acme\nOwner: ops@example.com\n\n"));

  const auto cfg = c.get("pve1", "/nodes/pve1/qemu/100/config").json()["data"];
  CHECK(cfg["description"] == "Customer: Acme\nOwner: ops@example.com");
  CHECK(cfg["name"] == "guest-100");
  CHECK(cfg["agent"] == "1");
  CHECK(cfg["digest"].get<std::string>().size() == 40);
  const auto lxc_cfg = c.get("pve1", "/nodes/pve1/lxc/200/config").json()["data"];
  CHECK(lxc_cfg["hostname"] == "guest-200");
  CHECK(lxc_cfg["cpulimit"] == 1.5);
  CHECK_FALSE(lxc_cfg.contains("description"));

  const auto st = c.get("pve1", "/nodes/pve1/qemu/100/status/current").json()["data"];
  CHECK(st["status"] == "running");
  CHECK(st["qmpstatus"] == "paused");
  CHECK(st["vmid"] == 100);
  const auto lst = c.get("pve1", "/nodes/pve1/lxc/200/status/current").json()["data"];
  CHECK(lst["status"] == "stopped");
  CHECK(lst["type"] == "lxc");
}

TEST_CASE("guest agent interfaces answer only when the agent runs") {
  SimCluster c;
  auto g = make_guest(100, "pve1", GuestType::qemu, GuestStatus::running);
  g.ipv4 = "10.0.0.5/24";
  g.mac = "BC:24:11:AA:BB:CC";
  c.cluster().add_guest(g);
  const std::string path = "/nodes/pve1/qemu/100/agent/network-get-interfaces";

  auto r = c.get("pve1", path);
  CHECK(r.status == 500);
  CHECK(r.reason == "No QEMU guest agent configured");
  c.cluster().set_agent(100, true, false);
  r = c.get("pve1", path);
  CHECK(r.status == 500);
  CHECK(r.reason == "QEMU guest agent is not running");
  c.cluster().set_agent(100, true, true);
  r = c.get("pve1", path);
  REQUIRE(r.status == 200);
  const auto result = r.json()["data"]["result"];
  REQUIRE(result.size() == 2);
  CHECK(result[0]["name"] == "lo");
  CHECK(result[0]["ip-addresses"][0] ==
        json{{"ip-address", "127.0.0.1"}, {"ip-address-type", "ipv4"}, {"prefix", 8}});
  CHECK(result[1]["name"] == "eth0");
  CHECK(result[1]["hardware-address"] == "bc:24:11:aa:bb:cc");
  CHECK(result[1]["ip-addresses"][0]["ip-address"] == "10.0.0.5");
  CHECK(result[1]["ip-addresses"][0]["prefix"] == 24);
  c.cluster().stop(100);
  r = c.get("pve1", path);
  CHECK(r.status == 500);
  CHECK(r.reason == "VM 100 not running");
}

TEST_CASE("LXC interfaces are null while stopped") {
  SimCluster c;
  auto g = make_guest(200, "pve1", GuestType::lxc, GuestStatus::running);
  g.ipv4 = "10.0.0.7/24";
  c.cluster().add_guest(g);
  auto d = c.get("pve1", "/nodes/pve1/lxc/200/interfaces").json()["data"];
  REQUIRE(d.size() == 2);
  CHECK(d[0]["name"] == "lo");
  CHECK(d[0]["inet"] == "127.0.0.1/8");
  CHECK(d[1]["name"] == "eth0");
  CHECK(d[1]["inet"] == "10.0.0.7/24");
  CHECK(d[1]["hwaddr"].is_string());
  c.cluster().stop(200);
  const auto r = c.get("pve1", "/nodes/pve1/lxc/200/interfaces");
  CHECK(r.status == 200);
  CHECK(r.body == "{\"data\":null}");
}

TEST_CASE("unknown paths and methods get 501 and HEAD gets an empty 501") {
  SimCluster c;
  auto r = c.get("pve1", "/nodes/pve1/foo");
  CHECK(r.status == 501);
  CHECK(r.reason == "Method 'GET /nodes/pve1/foo' not implemented");
  CHECK(r.json()["data"].is_null());
  auto post = c.request("pve1", "/version");
  post.method = "POST";
  r = fetch(post);
  CHECK(r.status == 501);
  CHECK(r.reason == "Method 'POST /version' not implemented");
  auto head = c.request("pve1", "/version");
  head.method = "HEAD";
  r = fetch(head);
  CHECK(r.status == 501);
  CHECK(r.reason == "method 'HEAD' not available");
  CHECK_FALSE(r.has_header("content-type"));
}

TEST_CASE("an unknown node or vmid is a 500 with the message in the reason phrase") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(make_guest(100, "pve2", GuestType::qemu, GuestStatus::running));
  auto r = c.get("pve1", "/nodes/nosuch/qemu");
  CHECK(r.status == 500);
  CHECK(r.reason ==
        "hostname lookup 'nosuch' failed - failed to get address info for: nosuch: Name or "
        "service not known");
  r = c.get("pve1", "/nodes/pve1/qemu/999/config");
  CHECK(r.status == 500);
  CHECK(r.reason == "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist");
  // The guest lives on pve2, so pve1 has no such configuration.
  r = c.get("pve1", "/nodes/pve1/qemu/100/config");
  CHECK(r.reason == "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist");
  r = c.get("pve1", "/nodes/pve1/lxc/100/config");
  CHECK(r.reason == "Configuration file 'nodes/pve1/lxc/100.conf' does not exist");
  // Through the proxy to the right node it works.
  CHECK(c.get("pve1", "/nodes/pve2/qemu/100/config").status == 200);
}

TEST_CASE("error bodies carry a message only on new servers") {
  SimCluster c;
  auto r = c.get("pve1", "/nodes/pve1/qemu/999/config");
  CHECK(r.json() == json{{"data", nullptr},
                         {"message",
                          "Configuration file 'nodes/pve1/qemu-server/999.conf' does "
                          "not exist\n"}});
  c.cluster().set_node_version("pve1", "8.2.4");
  r = c.get("pve1", "/nodes/pve1/qemu/999/config");
  CHECK(r.body == "{\"data\":null}");
}

TEST_CASE("parameters are verified like the real API") {
  SimCluster c;
  auto r = c.get("pve1", "/cluster/resources?type=vms");
  CHECK(r.status == 400);
  CHECK(r.reason == "Parameter verification failed.");
  CHECK(r.json()["errors"].contains("type"));
  r = c.get("pve1", "/nodes/pve1/qemu/abc/config");
  CHECK(r.status == 400);
  CHECK(r.json()["errors"]["vmid"] == "type check ('integer') failed - got 'abc'");
  r = c.get("pve1", "/version?foo=1");
  CHECK(r.status == 400);
  CHECK(r.json()["errors"].contains("foo"));
  // The GUI's cache buster and known parameters pass.
  CHECK(c.get("pve1", "/version?_dc=12345").status == 200);
  CHECK(c.get("pve1", "/nodes/pve1/qemu?full=0").status == 200);
}

TEST_CASE("calls for another node are proxied and fail with 595 when it cannot be reached") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(make_guest(100, "pve2", GuestType::qemu, GuestStatus::running));
  auto r = c.get("pve1", "/nodes/pve2/qemu");
  REQUIRE(r.status == 200);
  CHECK(r.json()["data"].size() == 1);
  // The target node received it too.
  CHECK(c.host("pve2").count("GET /api2/json/nodes/pve2/qemu") == 1);
  CHECK(c.host("pve2").requests().back().proxied_from == "pve1");

  c.host("pve2").set_fault({.kind = FaultKind::down});
  r = c.get("pve1", "/nodes/pve2/qemu");
  CHECK(r.status == 595);
  CHECK(r.reason == "Connection refused");
  CHECK(r.body.empty());
  c.host("pve2").clear_fault();
  c.cluster().set_node_online("pve2", false);
  r = c.get("pve1", "/nodes/pve2/qemu");
  CHECK(r.status == 595);
  CHECK(r.reason == "No route to host");
  CHECK(r.body.empty());
  // /cluster/resources needs no proxying.
  CHECK(c.get("pve1", "/cluster/resources?type=vm").status == 200);
}

TEST_CASE("a proxied list has the typing of the node that runs it") {
  SimCluster c({.nodes = {"pve1", "pve2"}});
  c.cluster().add_guest(make_guest(200, "pve2", GuestType::lxc, GuestStatus::running));
  c.cluster().set_node_version("pve2", "7.4-16");
  CHECK(c.get("pve1", "/nodes/pve2/lxc").json()["data"][0]["vmid"] == "200");
  CHECK(c.get("pve1", "/nodes/localhost/lxc").json()["data"].empty());
}

TEST_CASE("bodies over 1 KiB are gzip-compressed when accepted") {
  SimCluster c({.guests = 30});
  auto req = c.request("pve1", "/cluster/resources?type=vm");
  req.raw_gzip = true;
  auto r = fetch(req);
  CHECK(r.header("content-encoding") == "gzip");
  const auto plain = gunzip(r.body);
  CHECK(json::parse(plain)["data"].size() == 30);
  req.raw_gzip = false;
  req.decode_gzip = true;
  r = fetch(req);
  CHECK(r.json()["data"].size() == 30);
  // A small body is never compressed.
  req = c.request("pve1", "/version");
  req.raw_gzip = true;
  CHECK_FALSE(fetch(req).has_header("content-encoding"));
}

TEST_CASE("keep-alive connections close after an error status") {
  SimCluster c;
  Client client;
  CHECK(client.send(c.request("pve1", "/version")).new_connections == 1);
  CHECK(client.send(c.request("pve1", "/version")).new_connections == 0);
  const auto err = client.send(c.request("pve1", "/nodes/pve1/qemu/999/config"));
  CHECK(err.status == 500);
  CHECK(err.header("connection") == "close");
  CHECK(client.send(c.request("pve1", "/version")).new_connections == 1);
}

TEST_CASE("power actions through the API change the cluster state") {
  SimCluster c;
  c.cluster().add_guest(make_guest(100, "pve1", GuestType::qemu, GuestStatus::stopped));
  auto req = c.request("pve1", "/nodes/pve1/qemu/100/status/start");
  req.method = "POST";
  auto r = fetch(req);
  REQUIRE(r.status == 200);
  CHECK(r.json()["data"].get<std::string>().starts_with("UPID:pve1:"));
  CHECK(c.cluster().guest(100)->status == GuestStatus::running);
  r = fetch(req);
  CHECK(r.status == 500);
  CHECK(r.reason == "VM 100 already running");
}

TEST_CASE("--port puts every node on that port - as a real node listens on 8006") {
  int port = 0;
  {
    SimCluster probe({.nodes = {"pve1"}});  // a port that is free now
    port = probe.host("pve1").port();
  }
  SimCluster c({.nodes = {"pve1", "pve2"}, .port = port});
  CHECK(c.host("pve1").port() == port);
  CHECK(c.host("pve2").port() == port);
  CHECK(c.get("pve2", "/version").status == 200);
}
