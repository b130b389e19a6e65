#pragma once
// Proxmox VE's task list, for the simulator: the tasks (workers) a node
// records, the files it keeps them in, and the two answers built from them.
//
// Where each behaviour comes from:
// - The UPID "UPID:node:PID:PSTART:STARTTIME:type:id:user:" with PID, PSTART
//   and STARTTIME as (at least) 8 upper-case hex digits: pve-common
//   src/PVE/UPID.pm encode/decode. PSTART is the worker's start in clock
//   ticks since boot (src/PVE/ProcFSTools.pm read_proc_starttime); user is
//   the caller as authenticated, an API token's full id "user@realm!name"
//   included (pve-access-control src/PVE/AccessControl.pm verify_token,
//   pve-manager PVE/HTTPServer.pm auth_handler).
// - A node keeps running tasks in /var/log/pve/tasks/active and appends each
//   finished one to /var/log/pve/tasks/index as "UPID ENDTIME(8 hex) STATUS";
//   once index passes 50000 bytes it becomes index.1 (the old index.1 is
//   lost): pve-common src/PVE/RESTEnvironment.pm active_workers. STATUS is
//   "OK", "WARNINGS: n" or an error text (src/PVE/UPID.pm read_status).
// - GET /nodes/{node}/tasks (pve-manager PVE/API2/Tasks.pm node_tasks): by
//   default (source=archive) only finished tasks, read backwards from index
//   then index.1 (newest archived first); source=active adds the running
//   ones first, with status "RUNNING" and `saved` "0", and their user not
//   split; filters since/until (on starttime), typefilter (exact), vmid (the
//   id), userfilter (substring, any case), errors, statusfilter; then
//   start/limit (default 50); the result attribute `total` counts every
//   match. Finished entries split a token's user into user and tokenid. A
//   caller sees every task with Sys.Audit on /nodes/{node}, else its own: a
//   user its own and its tokens', a token only its own.
// - GET /cluster/tasks (pve-manager PVE/API2/Cluster.pm tasks): no
//   parameters; every node's list as that node last broadcast it
//   (pve-cluster src/PVE/Cluster.pm get_tasklist, read from pmxcfs at each
//   request since RPCEnvironment init_request runs cfs_update). A node
//   broadcasts its running tasks (in start order, with pid) and the most
//   recent finished ones by starttime, newest first, 25 in all (without pid
//   and pstart, `saved` "1"), cut below 32 KiB of JSON (active_workers,
//   broadcast_tasklist). With Sys.Audit on / every task; else those whose
//   user, token split off, is the caller: a user sees its tokens' tasks, a
//   token none.
// - When a node broadcasts: at the start of every task (fork_worker) and at
//   its end (the SIGCHLD reaper's log_task_result), both in pve-common
//   src/PVE/RESTEnvironment.pm, and every 10 s from pvestatd as a safety net
//   (pve-manager PVE/Service/pvestatd.pm update_status, $updatetime). So the
//   list is as fresh as pmxcfs; the simulator's broadcast lag (default 0)
//   shows it as it was that many seconds ago, the worst case being the 10 s
//   of a task whose end the reaper missed.

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pha::sim {

inline const std::string kRootUser = "root@pam";

struct Task {
  std::string node;
  long long pid = 0;
  long long pstart = 0;  // clock ticks (1/100 s) since the node booted
  long long starttime = 0;
  std::string type;                  // "qmstart", "vzmigrate"...
  std::string id;                    // the vmid, "" for a task not about one guest
  std::string user;                  // as in the UPID: "root@pam", "agent@pve!sync"
  std::optional<long long> endtime;  // nullopt: still running
  std::string status;                // once ended: "OK", "WARNINGS: 2", an error text
};

std::string upid_of(const Task& t);
// nullopt when `upid` is not one (src/PVE/UPID.pm decode); endtime unset.
std::optional<Task> parse_upid(const std::string& upid);

// The task files of every node: active, index and index.1.
class TaskFiles {
 public:
  // A running task goes to active, a finished one to index.
  void add(Task t);
  // Ends a running task; false when no running task has this UPID.
  bool end(const std::string& upid, long long endtime, const std::string& status);
  // Running tasks of a node, in start order.
  std::vector<Task> active(const std::string& node) const;
  // Finished tasks of a node as read backwards from index, then index.1.
  std::vector<Task> archive(const std::string& node) const;
  // Every task of a node still on disk, running or finished.
  std::vector<Task> all(const std::string& node) const;
  std::vector<Task> all() const;

 private:
  struct Files {
    std::vector<Task> active;
    std::vector<Task> index;  // in the order appended
    std::vector<Task> index1;
    std::size_t index_bytes = 0;
  };
  void archive(Files& f, Task t);
  std::map<std::string, Files> nodes_;
};

// Who reads a task list.
struct TaskReader {
  std::string authid;  // "user@realm" or "user@realm!token"
  bool audit = false;  // Sys.Audit on /nodes/{node} (node list) or / (cluster list)
};

// GET /nodes/{node}/tasks parameters.
struct NodeTaskQuery {
  long long start = 0;
  long long limit = 50;
  std::string userfilter;
  std::string typefilter;
  std::string vmid;
  bool errors = false;
  std::string source = "archive";
  std::optional<long long> since;
  std::optional<long long> until;
  std::optional<std::set<std::string>> statusfilter;  // ok, warning, error, unknown
};

// The parameters' errors as the schema reports them ({} when none) and the query.
nlohmann::json node_task_param_errors(const std::map<std::string, std::string>& params);
NodeTaskQuery node_task_query(const std::map<std::string, std::string>& params);

struct NodeTaskList {
  nlohmann::json data = nlohmann::json::array();
  long long total = 0;  // the result attribute `total`
};
NodeTaskList node_tasks_data(const std::vector<Task>& active, const std::vector<Task>& archive,
                             const NodeTaskQuery& q, const TaskReader& who);

// What one node broadcast when its list was as at `as_of` (tasks it had on disk).
nlohmann::json broadcast_list(const std::vector<Task>& tasks, long long as_of);
// GET /cluster/tasks from every node's broadcast list, in node order.
nlohmann::json cluster_tasks_data(const std::vector<nlohmann::json>& broadcasts,
                                  const TaskReader& who);

}  // namespace pha::sim
