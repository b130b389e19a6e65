// The task list: which task each guest operation leaves on which node,
// GET /nodes/{node}/tasks with its filters, GET /cluster/tasks with its
// broadcast lag, and who sees which task (pve_tasks.hpp).

#include <doctest/doctest.h>

#include "tests/sim/pve_auth.hpp"
#include "tests/sim/sim_fixture.hpp"

using namespace pha;
using namespace pha::sim;
using namespace pha::simtest;
using nlohmann::json;

namespace {

PveSimOptions two_nodes() {
  PveSimOptions o;
  o.nodes = {"pve1", "pve2"};
  return o;
}

// "type:id:user" of each entry, newest first.
std::vector<std::string> shown(const json& data) {
  std::vector<std::string> out;
  for (const auto& e : data) {
    out.push_back(e["type"].get<std::string>() + ":" + e["id"].get<std::string>() + ":" +
                  e["user"].get<std::string>());
  }
  return out;
}

json node_tasks(SimCluster& c, const std::string& node, const std::string& query = "",
                std::vector<std::string> headers = {kTokenHeader}) {
  const auto r = c.get(node, "/nodes/" + node + "/tasks" + query, std::move(headers));
  REQUIRE(r.status == 200);
  return r.json();
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("tasks: each VM operation leaves its task on the node a real one records") {
  SimCluster c(two_nodes());
  auto& s = c.cluster();
  s.add_guest({.vmid = 100, .node = "pve1", .name = "web"});
  CHECK(node_tasks(c, "pve1")["data"].empty());  // a seeded guest has no history
  REQUIRE(s.start(100));
  REQUIRE(s.shutdown(100, "ops@pve"));
  REQUIRE(s.start(100));
  REQUIRE(s.pause(100));
  REQUIRE(s.resume(100));
  REQUIRE(s.reboot(100, "ops@pve"));
  REQUIRE(s.stop(100));
  CHECK(shown(node_tasks(c, "pve1")["data"]) ==
        V{"qmstop:100:root@pam", "qmstart:100:root@pam", "qmreboot:100:ops@pve",
          "qmresume:100:root@pam", "qmpause:100:root@pam", "qmstart:100:root@pam",
          "qmshutdown:100:ops@pve", "qmstart:100:root@pam"});
  // Migration: on the source node; a running VM also starts on the target.
  REQUIRE(s.start(100));
  REQUIRE(s.migrate(100, "pve2", "ops@pve"));
  CHECK(shown(node_tasks(c, "pve1", "?limit=2")["data"]) ==
        V{"qmigrate:100:ops@pve", "qmstart:100:root@pam"});
  CHECK(shown(node_tasks(c, "pve2")["data"]) == V{"qmstart:100:root@pam"});
  // Clone: on the source's node, with the source's vmid; the copy is stopped.
  REQUIRE(s.clone(100, 105, "pve1"));
  CHECK(s.guest(105)->node == "pve1");
  CHECK(s.guest(105)->name == "Copy-of-VM-web");
  CHECK(s.guest(105)->status == GuestStatus::stopped);
  CHECK(node_tasks(c, "pve2", "?limit=1")["data"][0]["type"] == "qmclone");
  CHECK(node_tasks(c, "pve2", "?limit=1")["data"][0]["id"] == "100");
  // Destroy: not while running; create: on its node, with a start when running.
  CHECK_FALSE(s.destroy(100));
  REQUIRE(s.destroy(105));
  s.create({.vmid = 106, .node = "pve1", .status = GuestStatus::running}, "ops@pve");
  CHECK(shown(node_tasks(c, "pve1", "?limit=3")["data"]) ==
        V{"qmstart:106:ops@pve", "qmcreate:106:ops@pve", "qmdestroy:105:root@pam"});
}

TEST_CASE("tasks: container operations leave vz tasks") {
  SimCluster c(two_nodes());
  auto& s = c.cluster();
  s.add_guest({.vmid = 200, .node = "pve1", .type = GuestType::lxc, .name = "ct"});
  REQUIRE(s.start(200));
  REQUIRE(s.pause(200));
  REQUIRE(s.resume(200));
  REQUIRE(s.reboot(200));
  REQUIRE(s.migrate(200, "pve2"));  // a restart migration: started again on the target
  REQUIRE(s.clone(200, 201));
  REQUIRE(s.stop(201));
  REQUIRE(s.destroy(201));
  s.create({.vmid = 202, .node = "pve1", .type = GuestType::lxc});
  CHECK(shown(node_tasks(c, "pve1")["data"]) ==
        V{"vzcreate:202:root@pam", "vzmigrate:200:root@pam", "vzreboot:200:root@pam",
          "vzresume:200:root@pam", "vzsuspend:200:root@pam", "vzstart:200:root@pam"});
  CHECK(shown(node_tasks(c, "pve2")["data"]) == V{"vzdestroy:201:root@pam", "vzstop:201:root@pam",
                                                  "vzclone:200:root@pam", "vzstart:200:root@pam"});
  CHECK(s.guest(201) == std::nullopt);
}

TEST_CASE("tasks: power-off from inside and config edits leave no task but the async POST does") {
  SimCluster c;
  auto& s = c.cluster();
  s.add_guest({.vmid = 100, .node = "pve1", .status = GuestStatus::running});
  s.add_guest({.vmid = 200, .node = "pve1", .type = GuestType::lxc});
  REQUIRE(s.power_off(100));
  CHECK(s.guest(100)->status == GuestStatus::stopped);
  REQUIRE(s.rename(100, "renamed"));
  REQUIRE(s.set_description(100, "text"));
  CHECK(node_tasks(c, "pve1")["data"].empty());
  REQUIRE(s.config_task(100, "ops@pve"));
  CHECK_FALSE(s.config_task(200));  // a container's config has no asynchronous call
  CHECK(shown(node_tasks(c, "pve1")["data"]) == V{"qmconfig:100:ops@pve"});
}

TEST_CASE("tasks: an entry has the fields and UPID of a real one") {
  SimCluster c;
  c.cluster().add_guest({.vmid = 100, .node = "pve1"});
  auto post = c.request("pve1", "/nodes/pve1/qemu/100/status/start");
  post.method = "POST";
  const auto started = fetch(post);
  REQUIRE(started.status == 200);
  const auto upid = started.json()["data"].get<std::string>();
  const auto e = node_tasks(c, "pve1")["data"][0];
  CHECK(e["upid"] == upid);
  const auto t = parse_upid(upid);
  REQUIRE(t);
  CHECK(t->user == kTokenId);  // the UPID holds the token's full id
  CHECK(upid.substr(0, 10) == "UPID:pve1:");
  CHECK(e["node"] == "pve1");
  CHECK(e["pid"] == t->pid);
  CHECK(e["pstart"] == t->pstart);
  CHECK(e["starttime"] == t->starttime);
  CHECK(e["starttime"].get<long long>() >= c.cluster().now() - 5);
  CHECK(e["endtime"].get<long long>() >= e["starttime"].get<long long>());
  CHECK(e["type"] == "qmstart");
  CHECK(e["id"] == "100");  // a string
  CHECK(e["user"] == "agent@pve");
  CHECK(e["tokenid"] == "sync");
  CHECK(e["status"] == "OK");
  CHECK_FALSE(e.contains("saved"));
  // The next task is a new process: another pid, so another UPID.
  REQUIRE(c.cluster().stop(100));
  const auto next = node_tasks(c, "pve1")["data"][0];
  CHECK(next["pid"] != e["pid"]);
  CHECK(next["starttime"].get<long long>() >= e["starttime"].get<long long>());
}

TEST_CASE("tasks: since limit start vmid typefilter and statusfilter filter a node's list") {
  SimCluster c;
  auto& s = c.cluster();
  s.add_guest({.vmid = 100, .node = "pve1"});
  s.add_guest({.vmid = 101, .node = "pve1"});
  REQUIRE(s.start(100));
  const auto t0 = s.now();
  s.advance(std::chrono::seconds(60));
  REQUIRE(s.start(101));
  REQUIRE(s.stop(100));
  s.add_task({.node = "pve1",
              .type = "qmigrate",
              .id = "101",
              .user = "root@pam",
              .endtime = s.now(),
              .status = "migration aborted"});
  s.add_task({.node = "pve1",
              .type = "vzdump",
              .id = "",
              .user = "root@pam",
              .endtime = s.now(),
              .status = "WARNINGS: 2"});
  CHECK(node_tasks(c, "pve1")["total"] == 5);
  CHECK(node_tasks(c, "pve1", "?since=" + std::to_string(t0 + 1))["data"].size() == 4);
  CHECK(shown(node_tasks(c, "pve1", "?until=" + std::to_string(t0))["data"]) ==
        V{"qmstart:100:root@pam"});
  const auto page = node_tasks(c, "pve1", "?start=1&limit=2");
  CHECK(shown(page["data"]) == V{"qmigrate:101:root@pam", "qmstop:100:root@pam"});
  CHECK(page["total"] == 5);
  CHECK(shown(node_tasks(c, "pve1", "?vmid=100")["data"]) ==
        V{"qmstop:100:root@pam", "qmstart:100:root@pam"});
  CHECK(node_tasks(c, "pve1", "?typefilter=qmstart")["data"].size() == 2);
  CHECK(node_tasks(c, "pve1", "?typefilter=qm")["data"].empty());  // exact, not a prefix
  CHECK(shown(node_tasks(c, "pve1", "?errors=1")["data"]) ==
        V{"vzdump::root@pam", "qmigrate:101:root@pam"});
  CHECK(node_tasks(c, "pve1", "?statusfilter=error")["data"].size() == 1);
  CHECK(node_tasks(c, "pve1", "?limit=0")["data"].empty());
  CHECK(node_tasks(c, "pve1", "?limit=0")["total"] == 5);
  CHECK(node_tasks(c, "pve1", "?userfilter=ROOT")["data"].size() == 5);
  for (const auto* bad : {"?limit=-1", "?source=bogus", "?vmid=5", "?since=x", "?bogus=1"}) {
    CHECK(c.get("pve1", std::string("/nodes/pve1/tasks") + bad).status == 400);
  }
}

TEST_CASE("tasks: running tasks show with source active and once ended in the archive") {
  SimCluster c(two_nodes());
  auto& s = c.cluster();
  const auto upid = s.add_task({.node = "pve2", .type = "qmigrate", .id = "100", .user = kTokenId});
  CHECK(node_tasks(c, "pve2")["data"].empty());
  const auto active = node_tasks(c, "pve2", "?source=active")["data"];
  REQUIRE(active.size() == 1);
  CHECK(active[0]["upid"] == upid);
  CHECK(active[0]["status"] == "RUNNING");
  CHECK(active[0]["saved"] == "0");
  CHECK(active[0]["user"] == kTokenId);  // not split, as Tasks.pm leaves it
  CHECK_FALSE(active[0].contains("endtime"));
  // Asked on pve1, answered by pve2.
  CHECK(c.get("pve1", "/nodes/pve2/tasks?source=all").json()["data"].size() == 1);
  s.advance(std::chrono::seconds(30));
  REQUIRE(s.end_task(upid, "migration problems"));
  CHECK_FALSE(s.end_task(upid));
  CHECK(node_tasks(c, "pve2", "?source=active")["data"].empty());
  const auto done = node_tasks(c, "pve2")["data"];
  REQUIRE(done.size() == 1);
  CHECK(done[0]["status"] == "migration problems");
  CHECK(done[0]["endtime"].get<long long>() - done[0]["starttime"].get<long long>() >= 30);
}

TEST_CASE("tasks: who sees which task on a node and in the cluster list") {
  SimCluster c;
  auto& s = c.cluster();
  s.add_user(
      {.userid = "ops@pve", .acls = std::vector<Acl>{{.path = "/vms", .role = "PVEVMAdmin"}}});
  s.add_token({.id = "ops@pve!t", .secret = "t-secret"});
  s.add_guest({.vmid = 100, .node = "pve1"});
  REQUIRE(s.start(100, "ops@pve"));
  s.advance(std::chrono::seconds(1));  // the cluster list orders by starttime
  REQUIRE(s.stop(100, "ops@pve!t"));
  REQUIRE(s.start(100, "root@pam"));
  const std::vector<std::string> user = {"Cookie: PVEAuthCookie=" +
                                         make_ticket(s.ticket_key(), "ops@pve", s.now())};
  const std::vector<std::string> token = {"Authorization: PVEAPIToken=ops@pve!t=t-secret"};
  // The node list: its own and its tokens' for a user, its own for a token,
  // every one with Sys.Audit on /nodes/pve1.
  CHECK(shown(node_tasks(c, "pve1", "", user)["data"]) ==
        V{"qmstop:100:ops@pve", "qmstart:100:ops@pve"});
  CHECK(shown(node_tasks(c, "pve1", "", token)["data"]) == V{"qmstop:100:ops@pve"});
  CHECK(node_tasks(c, "pve1")["data"].size() == 3);
  // The cluster list: by user only (a token sees none), every one with Sys.Audit on /.
  const auto cluster = [&](std::vector<std::string> h) {
    return c.get("pve1", "/cluster/tasks", std::move(h)).json()["data"];
  };
  CHECK(shown(cluster(user)) == V{"qmstop:100:ops@pve", "qmstart:100:ops@pve"});
  CHECK(cluster(token).empty());
  CHECK(cluster({kTokenHeader}).size() == 3);
  s.add_acl("ops@pve", {.path = "/nodes/pve1", .role = "PVEAuditor"});
  CHECK(node_tasks(c, "pve1", "", token)["data"].size() == 3);
  CHECK(cluster(token).empty());
  s.add_acl("ops@pve", {.path = "/", .role = "PVEAuditor"});
  CHECK(cluster(token).size() == 3);
}

TEST_CASE("tasks: the cluster list is each node's broadcast as old as the lag") {
  SimCluster c(two_nodes());
  auto& s = c.cluster();
  CHECK(s.task_broadcast_lag() == std::chrono::seconds(0));
  s.add_guest({.vmid = 100, .node = "pve1"});
  REQUIRE(s.start(100));
  const auto list = [&] { return c.get("pve2", "/cluster/tasks").json()["data"]; };
  REQUIRE(list().size() == 1);
  const auto e = list()[0];
  CHECK(e["type"] == "qmstart");
  CHECK(e["node"] == "pve1");
  CHECK(e["saved"] == "1");
  CHECK(e["status"] == "OK");
  CHECK_FALSE(e.contains("pid"));  // finished: no pid or pstart
  CHECK_FALSE(e.contains("pstart"));
  CHECK(c.get("pve1", "/cluster/tasks?limit=1").status == 400);  // no parameters

  s.advance(std::chrono::seconds(10));
  s.set_task_broadcast_lag(std::chrono::seconds(10));
  REQUIRE(s.migrate(100, "pve2"));
  const auto running = s.add_task({.node = "pve2", .type = "vzdump", .user = "root@pam"});
  CHECK(list().size() == 1);  // not broadcast yet
  s.advance(std::chrono::seconds(10));
  CHECK(shown(list()) == V{"qmigrate:100:root@pam", "qmstart:100:root@pam", "vzdump::root@pam",
                           "qmstart:100:root@pam"});
  REQUIRE(s.end_task(running));
  const auto still = list();
  CHECK(still[2]["saved"] == "0");  // its end not broadcast yet: running, with its pid
  CHECK(still[2].contains("pid"));
  CHECK_FALSE(still[2].contains("endtime"));
  s.advance(std::chrono::seconds(10));
  for (const auto& entry : list()) {
    CHECK(entry["status"] == "OK");
  }
}

TEST_CASE("tasks: a node broadcasts 25 tasks and keeps about a thousand on disk") {
  SimCluster c;
  auto& s = c.cluster();
  s.add_guest({.vmid = 100, .node = "pve1"});
  for (int i = 0; i < 30; ++i) {
    s.advance(std::chrono::seconds(1));
    REQUIRE((i % 2 == 0 ? s.start(100) : s.stop(100)));
  }
  const auto broadcast = c.get("pve1", "/cluster/tasks").json()["data"];
  CHECK(broadcast.size() == 25);
  CHECK(broadcast[0]["type"] == "qmstop");  // newest first
  CHECK(broadcast[0]["starttime"].get<long long>() > broadcast[24]["starttime"].get<long long>());
  CHECK(node_tasks(c, "pve1")["data"].size() == 30);
  CHECK(node_tasks(c, "pve1", "?limit=100")["total"] == 30);
  for (int i = 0; i < 2000; ++i) {
    s.add_task({.node = "pve1",
                .type = "qmstart",
                .id = "100",
                .user = "root@pam",
                .endtime = s.now(),
                .status = "OK"});
  }
  // index rotates to index.1 past 50000 bytes: what is left is index.1 and index.
  const auto total = node_tasks(c, "pve1", "?limit=0")["total"].get<long long>();
  CHECK(total > 700);
  CHECK(total < 1700);
}
