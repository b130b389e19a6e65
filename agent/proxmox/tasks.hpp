#pragma once
// Proxmox VE's task list: GET /cluster/tasks (every node's recent tasks, from
// the cluster file system: no disk read on the node) and GET
// /nodes/{node}/tasks. Each guest operation a node runs as a worker leaves a
// task there: a migration is a `qmigrate` or `vzmigrate` task on the node
// the guest left, whose `id` is the VMID (qemu-server PVE/API2/Qemu.pm
// migrate_vm, pve-container src/PVE/API2/LXC.pm migrate_vm; the list:
// pve-manager PVE/API2/Cluster.pm tasks). A token sees the cluster's list
// only with Sys.Audit on / (PVEAuditor has it).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.hpp"

namespace pha {

struct ProxmoxTask {
  std::string upid;
  std::string node;  // the node that ran it
  std::string type;  // qmstart, qmigrate, vzmigrate, qmdestroy, ...
  std::string id;    // the VMID for a guest's task, as text; "" for others
  std::string user;
  std::string status;  // "OK", an error, "WARNINGS: n"; "" while it runs
  std::int64_t starttime = 0;
  std::optional<std::int64_t> endtime;
  // The VMID the task is about, when `id` is one.
  std::optional<std::int64_t> vmid() const;
  bool finished_ok() const { return endtime.has_value() && status == "OK"; }
  bool is_migration() const { return type == "qmigrate" || type == "vzmigrate"; }
  bool operator==(const ProxmoxTask&) const = default;
};

// GET /cluster/tasks or /nodes/{node}/tasks. An entry that is not a task
// (no upid, node or type) is skipped, never guessed at; `skipped` counts them.
struct TaskList {
  std::vector<ProxmoxTask> tasks;
  std::size_t skipped = 0;
};
Result<TaskList> parse_task_list(std::string_view body);

// The node guest `vmid` migrated from to reach `here`: the newest migration
// of it on another node that finished OK or still runs (the guest shows on
// the target before the task ends). nullopt when the list shows none.
std::optional<std::string> migrated_from(const std::vector<ProxmoxTask>& tasks, std::int64_t vmid,
                                         std::string_view here);

}  // namespace pha
