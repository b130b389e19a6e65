// PveCluster's guest operations and the tasks they leave (pve_cluster.hpp
// lists them). The task types and the node that records them, from the
// workers the API forks (pve-common src/PVE/RESTEnvironment.pm fork_worker,
// node = the node that runs the call, id = the vmid):
// - qemu-server src/PVE/API2/Qemu.pm: vm_start qmstart, vm_stop qmstop,
//   vm_shutdown qmshutdown, vm_reboot qmreboot, vm_suspend qmpause
//   (qmsuspend to disk), vm_resume qmresume, create_vm qmcreate (qmrestore
//   from a backup; with start=1 a qmstart follows), clone_vm qmclone with
//   the SOURCE vmid on the source's node, destroy_vm qmdestroy, migrate_vm
//   qmigrate on the source node, update_vm_async (POST .../config) qmconfig
//   while update_vm (PUT .../config, `qm set`) forks no worker. HA-managed
//   guests get hastart/hastop/hamigrate instead, then pve-ha-manager's LRM
//   runs the real qmstart/qmigrate... as root@pam (src/PVE/HA/Resources/
//   PVEVM.pm); the simulator has no HA.
// - pve-container src/PVE/API2/LXC.pm and LXC/Status.pm: vzstart, vzstop,
//   vzshutdown, vzreboot (stop and start inside the one task, src/PVE/LXC.pm
//   vm_reboot), vzsuspend, vzresume, vzcreate (vzrestore), vzclone (source
//   vmid), vzdestroy, vzmigrate; PUT .../config is synchronous, no task.
// - A QEMU reboot: vm_reboot leaves a reboot request and shuts the guest
//   down; qmeventd then runs `qm cleanup`, which starts it again through
//   vm_start from the CLI, a qmstart by root@pam (qemu-server
//   src/PVE/QemuServer.pm vm_reboot, src/PVE/CLI/qm.pm cleanup).
// - A guest that powers itself off or crashes: qmeventd runs `qm cleanup`
//   (src/qmeventd/qmeventd.c), a plain CLI call that forks no worker: the
//   status changes, no task.
// - A migration of a running guest starts it on the target through `qm
//   start --migratedfrom` / `pct start` over SSH (qemu-server
//   src/PVE/QemuMigrate.pm, pve-container src/PVE/LXC/Migrate.pm), a CLI
//   worker by root@pam: a qmstart/vzstart on the TARGET node too.

#include <algorithm>
#include <stdexcept>

#include "tests/sim/pve_cluster.hpp"

namespace pha::sim {

namespace {

std::string prefix(const Guest& g) {
  return g.type == GuestType::qemu ? "qm" : "vz";
}

}  // namespace

std::string PveCluster::add_task_locked(Task task) {
  const auto t = now_locked();
  const auto n = std::find_if(nodes_.begin(), nodes_.end(),
                              [&](const Node& x) { return x.name == task.node; });
  if (n == nodes_.end()) {
    throw std::invalid_argument("no such node: " + task.node);
  }
  if (task.starttime == 0) {
    task.starttime = t;
  }
  // Each worker is a process of its own; pstart is its start in clock ticks
  // since boot (pve-common src/PVE/ProcFSTools.pm read_proc_starttime).
  next_pid_ += 3;
  task.pid = next_pid_;
  task.pstart = std::max(0LL, task.starttime - n->booted_at) * 100 + next_pid_ % 100;
  auto upid = upid_of(task);
  tasks_.add(std::move(task));
  return upid;
}

std::string PveCluster::task_locked(const std::string& node, const std::string& type, int vmid,
                                    const std::string& user) {
  Task t;
  t.node = node;
  t.type = type;
  t.id = vmid == 0 ? "" : std::to_string(vmid);
  t.user = user;
  t.endtime = now_locked();
  t.status = "OK";
  return add_task_locked(std::move(t));
}

std::string PveCluster::add_task(Task task) {
  std::lock_guard lock(mutex_);
  return add_task_locked(std::move(task));
}

bool PveCluster::end_task(const std::string& upid, const std::string& status) {
  std::lock_guard lock(mutex_);
  return tasks_.end(upid, now_locked(), status);
}

std::vector<Task> PveCluster::tasks() const {
  std::lock_guard lock(mutex_);
  return tasks_.all();
}

std::vector<Task> PveCluster::active_tasks(const std::string& node) const {
  std::lock_guard lock(mutex_);
  return tasks_.active(node);
}

std::vector<Task> PveCluster::archived_tasks(const std::string& node) const {
  std::lock_guard lock(mutex_);
  return tasks_.archive(node);
}

std::vector<nlohmann::json> PveCluster::task_broadcasts() const {
  std::lock_guard lock(mutex_);
  const auto as_of = now_locked() - task_lag_.count();
  std::vector<nlohmann::json> out;
  for (const auto& n : nodes_) {
    out.push_back(broadcast_list(tasks_.all(n.name), as_of));
  }
  return out;
}

void PveCluster::set_task_broadcast_lag(std::chrono::seconds lag) {
  std::lock_guard lock(mutex_);
  task_lag_ = lag;
}

std::chrono::seconds PveCluster::task_broadcast_lag() const {
  std::lock_guard lock(mutex_);
  return task_lag_;
}

void PveCluster::stop_locked(Guest& g) {
  g.status = GuestStatus::stopped;
  g.pid = 0;
  g.mem = 0;
  g.cpu = 0;
  if (g.type == GuestType::lxc) {
    g.disk = 0;
  }
  g.agent_running = false;
}

bool PveCluster::start(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr || g->template_) {
    return false;
  }
  if (g->status == GuestStatus::stopped) {
    start_locked(*g);
  } else {
    g->status = GuestStatus::running;
  }
  task_locked(g->node, prefix(*g) + "start", vmid, user);
  return true;
}

bool PveCluster::stop_with_task(int vmid, const std::string& action, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr) {
    return false;
  }
  stop_locked(*g);
  task_locked(g->node, prefix(*g) + action, vmid, user);
  return true;
}

bool PveCluster::stop(int vmid, const std::string& user) {
  return stop_with_task(vmid, "stop", user);
}

bool PveCluster::shutdown(int vmid, const std::string& user) {
  return stop_with_task(vmid, "shutdown", user);
}

bool PveCluster::reboot(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr || g->status != GuestStatus::running) {
    return false;
  }
  task_locked(g->node, prefix(*g) + "reboot", vmid, user);
  stop_locked(*g);
  start_locked(*g);
  if (g->type == GuestType::qemu) {
    task_locked(g->node, "qmstart", vmid, kRootUser);
  }
  return true;
}

bool PveCluster::pause(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr || g->status != GuestStatus::running) {
    return false;
  }
  g->status = GuestStatus::paused;
  g->cpu = 0;
  task_locked(g->node, g->type == GuestType::qemu ? "qmpause" : "vzsuspend", vmid, user);
  return true;
}

bool PveCluster::resume(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr || g->status != GuestStatus::paused) {
    return false;
  }
  g->status = GuestStatus::running;
  task_locked(g->node, prefix(*g) + "resume", vmid, user);
  return true;
}

bool PveCluster::power_off(int vmid) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr) {
    return false;
  }
  stop_locked(*g);
  return true;
}

void PveCluster::create(Guest guest, const std::string& user) {
  std::lock_guard lock(mutex_);
  const int vmid = guest.vmid;
  add_guest_locked(std::move(guest));
  const auto& g = guests_.at(vmid);
  task_locked(g.node, prefix(g) + "create", vmid, user);
  if (g.status != GuestStatus::stopped) {
    task_locked(g.node, prefix(g) + "start", vmid, user);
  }
}

bool PveCluster::clone(int vmid, int newid, const std::string& node,
                       std::optional<std::string> name, const std::string& user) {
  std::lock_guard lock(mutex_);
  const auto* source = find(vmid);
  const auto target = node.empty() && source != nullptr ? source->node : node;
  if (source == nullptr || guests_.count(newid) != 0 ||
      std::none_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.name == target; })) {
    return false;
  }
  Guest copy = *source;
  copy.vmid = newid;
  copy.node = target;
  copy.template_ = false;
  copy.lock.clear();
  copy.pool.clear();
  copy.mac.clear();
  copy.ipv4.clear();
  if (name) {
    copy.name = std::move(name);
  } else if (copy.type == GuestType::qemu) {
    copy.name = "Copy-of-VM-" + source->name.value_or(std::to_string(vmid));
  }
  stop_locked(copy);
  copy.started_at = 0;
  const auto source_node = source->node;
  const auto type = prefix(*source) + "clone";
  add_guest_locked(std::move(copy));
  task_locked(source_node, type, vmid, user);
  return true;
}

bool PveCluster::destroy(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  const auto* g = find(vmid);
  if (g == nullptr || g->status != GuestStatus::stopped) {
    return false;
  }
  task_locked(g->node, prefix(*g) + "destroy", vmid, user);
  guests_.erase(vmid);
  return true;
}

bool PveCluster::config_task(int vmid, const std::string& user) {
  std::lock_guard lock(mutex_);
  const auto* g = find(vmid);
  if (g == nullptr || g->type != GuestType::qemu) {
    return false;
  }
  task_locked(g->node, "qmconfig", vmid, user);
  return true;
}

bool PveCluster::migrate(int vmid, const std::string& node, const std::string& user) {
  std::lock_guard lock(mutex_);
  auto* g = find(vmid);
  if (g == nullptr ||
      std::none_of(nodes_.begin(), nodes_.end(), [&](const Node& n) { return n.name == node; })) {
    return false;
  }
  if (g->node == node) {
    return true;
  }
  const auto source = g->node;
  task_locked(source, g->type == GuestType::qemu ? "qmigrate" : "vzmigrate", vmid, user);
  g->node = node;
  g->lock.clear();
  if (g->status != GuestStatus::stopped) {
    next_pid_ += 17;
    g->pid = next_pid_;  // a new process on the target node
    task_locked(node, prefix(*g) + "start", vmid, kRootUser);
  }
  return true;
}

}  // namespace pha::sim
