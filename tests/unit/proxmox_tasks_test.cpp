// The task list of Proxmox VE (agent/proxmox/tasks.hpp): the shapes of
// /cluster/tasks and /nodes/{node}/tasks, odd entries skipped, and the
// migration that brought a guest to a node.

#include <doctest/doctest.h>

#include "agent/proxmox/tasks.hpp"

using namespace pha;

namespace {

// As pve-manager PVE/API2/Cluster.pm tasks answers: finished entries with
// saved "1", endtime and status; a running one with pid and no status.
const char* kClusterTasks = R"({"data":[
 {"upid":"UPID:pve1:0001A2B3:00C0FFEE:6752A1F0:qmigrate:101:root@pam:","node":"pve1","type":"qmigrate",
  "id":"101","user":"root@pam","starttime":1733468656,"endtime":1733468670,"status":"OK","saved":"1"},
 {"upid":"UPID:pve2:0001A2B4:00C0FFEF:6752A1FE:qmstart:101:root@pam:","node":"pve2","type":"qmstart",
  "id":"101","user":"root@pam","starttime":1733468670,"endtime":1733468671,"status":"OK","saved":"1"},
 {"upid":"UPID:pve3:0001A2B5:00C0FFF0:6752A200:vzmigrate:205:agent@pve!sync:","node":"pve3",
  "type":"vzmigrate","id":"205","user":"agent@pve!sync","starttime":1733468672,"pid":106677,"saved":"0"},
 {"upid":"UPID:pve3:0001A2B6:00C0FFF1:6752A210:vzdump::root@pam:","node":"pve3","type":"vzdump",
  "id":"","user":"root@pam","starttime":1733468688,"endtime":1733468700,"status":"job errors","saved":"1"},
 {"node":"pve1","type":"qmstart"},
 "not a task",
 {"upid":"UPID:x","node":"pve1","type":"qmstop","id":{"a":1},"starttime":1}
]})";

}  // namespace

TEST_CASE(
    "parse_task_list reads each task - running ones unfinished - and skips what is not a task") {
  auto list = parse_task_list(kClusterTasks);
  REQUIRE(list.ok());
  REQUIRE(list->tasks.size() == 4);
  CHECK(list->skipped == 3);
  const auto& m = list->tasks[0];
  CHECK(m.node == "pve1");
  CHECK(m.is_migration());
  CHECK(m.finished_ok());
  CHECK(m.vmid() == 101);
  CHECK(m.endtime == 1733468670);
  const auto& running = list->tasks[2];
  CHECK(running.is_migration());
  CHECK_FALSE(running.finished_ok());
  CHECK(running.status.empty());
  CHECK_FALSE(list->tasks[3].vmid().has_value());  // a backup job of no one guest
  CHECK_FALSE(list->tasks[3].finished_ok());

  // /nodes/{node}/tasks?source=active marks a running task "RUNNING"; an id
  // that is not text is no task of this list's shape.
  list = parse_task_list(R"({"data":[
   {"upid":"U1","node":"pve1","type":"qmigrate","id":300,"starttime":5,"status":"OK","endtime":9},
   {"upid":"U2","node":"pve1","type":"qmigrate","id":"301","starttime":5,"status":"RUNNING"}]})");
  REQUIRE(list.ok());
  REQUIRE(list->tasks.size() == 1);
  CHECK(list->skipped == 1);
  CHECK(list->tasks[0].vmid() == 301);
  CHECK_FALSE(list->tasks[0].finished_ok());
  CHECK_FALSE(list->tasks[0].endtime.has_value());
  CHECK(list->tasks[0].status.empty());

  CHECK_FALSE(parse_task_list("{\"data\": {}}").ok());
  CHECK_FALSE(parse_task_list("<html>").ok());
}

TEST_CASE("migrated_from names the node of the newest finished migration of the guest elsewhere") {
  auto list = parse_task_list(kClusterTasks);
  REQUIRE(list.ok());
  CHECK(migrated_from(list->tasks, 101, "pve2") == "pve1");
  CHECK_FALSE(migrated_from(list->tasks, 101, "pve1").has_value());  // it left here
  CHECK(migrated_from(list->tasks, 205, "pve1") == "pve3");  // still running: it shows here already
  auto failed = list->tasks;
  failed[0].status = "migration aborted";
  CHECK_FALSE(migrated_from(failed, 101, "pve2").has_value());
  CHECK_FALSE(migrated_from(list->tasks, 999, "pve2").has_value());

  // Back and forth: the newest migration counts.
  std::vector<ProxmoxTask> moves = list->tasks;
  auto back = moves[0];
  back.node = "pve2";
  back.starttime += 100;
  *back.endtime += 100;
  moves.push_back(back);
  CHECK(migrated_from(moves, 101, "pve1") == "pve2");
  CHECK(migrated_from(moves, 101, "pve3") == "pve2");
}
