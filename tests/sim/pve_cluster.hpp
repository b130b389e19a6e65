#pragma once
// The shared state of a simulated Proxmox VE cluster: its nodes, guests,
// users and API tokens, and a simulated clock. Every PveHost of the cluster
// answers from this one state, so /cluster/status and /cluster/resources agree
// across hosts the way pmxcfs makes them agree on a real cluster.
//
// Thread-safe: every member function takes the cluster's lock; accessors
// return copies.
//
// What the state promises to the tests: the generated guests are the same for
// the same seed, and every node that runs a container has one whose CPU share
// is slightly negative (see Guest::cpu); a guest belongs to at most one pool;
// users, tokens, ACL entries, custom roles and pool membership can change at
// any time and the next request sees the change (a privilege lost mid-run).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/sim/pve_tasks.hpp"

namespace pha::sim {

class PveHost;

enum class GuestType { qemu, lxc };
// paused: the QEMU monitor state; /nodes/{node}/qemu shows such a guest as
// "running", /cluster/resources as "paused".
enum class GuestStatus { running, stopped, paused };

std::string to_string(GuestType t);
std::string to_string(GuestStatus s);
std::optional<GuestType> parse_guest_type(const std::string& s);
std::optional<GuestStatus> parse_guest_status(const std::string& s);

struct Guest {
  int vmid = 100;
  std::string node;
  GuestType type = GuestType::qemu;
  // The name of its configuration (QEMU `name`, LXC `hostname`); nullopt: none
  // set. The lists and status calls then show "VM <vmid>" or "CT<vmid>"
  // (pve_render.hpp), never an absent or empty name.
  std::optional<std::string> name;
  GuestStatus status = GuestStatus::stopped;
  double cpus = 1;  // LXC may be fractional (cpulimit 1.5)
  long long maxmem = 1LL << 30;
  long long maxdisk = 32LL << 30;
  long long maxswap = 512LL << 20;  // LXC
  long long mem = 0;                // used while running
  long long disk = 0;               // QEMU reports 0
  // Share of its cpus while running, 0..1. A container's may be slightly
  // negative (-5.75e-05): pve-container computes it as the difference of two
  // cgroup readings (src/PVE/LXC.pm vmstatus, keyed by vmid), which goes
  // backwards when the cgroup's counters restart; QEMU's never is.
  double cpu = 0;
  bool template_ = false;    // templates are never running
  std::string tags;          // "a;b", "" = none
  std::string lock;          // "backup", "migrate"... "" = none
  std::string pool;          // "" = none
  long long pid = 0;         // while running
  long long started_at = 0;  // sim unix time of the last start
  long long net_rate = 0;    // bytes/s in; out is a third of it (netin/netout grow with uptime)
  long long disk_rate = 0;   // bytes/s read; write is half of it
  std::optional<std::string> description;  // config `description`
  // QEMU guest agent: configured in the VM config (agent: 1), and running in the guest.
  bool agent_configured = false;
  bool agent_running = false;
  std::string ipv4;  // "10.1.2.3/24" of eth0; "" = no address
  std::string mac;   // "BC:24:11:12:34:56"
};

struct Node {
  std::string name;
  std::string ip = "127.0.0.1";  // the address its pveproxy listens on
  int nodeid = 1;
  bool online = true;
  long long offline_since = 0;  // sim unix time when it went offline
  // pve-manager version; decides the legacy typing of its answers (PVE 6:
  // QEMU vmid/pid strings, template ""; before 8.2: LXC vmid strings), the
  // `message` member of error bodies (8.4 on) and the unified auth failure
  // reason (9.1.5 on).
  std::string version = "8.4.14";
  std::string ssl_fingerprint;  // of its pveproxy certificate, set by PveHost
  int maxcpu = 16;
  long long maxmem = 64LL << 30;
  long long maxdisk = 100LL << 30;
  long long booted_at = 0;  // sim unix time
};

// One ACL entry of a user or token (`pveum acl modify PATH --roles ...`): a
// built-in role and/or a custom role's privileges on a path, propagated to
// the paths below it or not. Privileges the answering node's version does
// not know (VM.Monitor on PVE 9, VM.GuestAgent.* before it) are ignored, as
// Proxmox ignores them in user.cfg. pve_access.hpp computes what they give.
struct Acl {
  std::string path = "/";
  std::string role;                  // "PVEAuditor", "Administrator", "NoAccess"; "" = none
  std::set<std::string> privileges;  // a custom role's privileges
  bool propagate = true;
};

struct ApiToken {
  std::string id;      // "user@realm!name"
  std::string secret;  // usually a UUID
  // Privilege-separated: only its own ACLs apply (`privileges` on / and
  // `acls`), intersected with its user's; otherwise the user's. The default
  // names the guest agent's privilege of both models, so that it reads
  // addresses on PVE 8 and 9 alike.
  bool privsep = false;
  std::set<std::string> privileges = {"VM.Audit", "Sys.Audit", "VM.Monitor", "VM.GuestAgent.Audit",
                                      "VM.PowerMgmt"};
  bool user_enabled = true;
  bool expired = false;
  std::vector<Acl> acls;  // more ACL entries of a privilege-separated token
};

struct User {
  std::string userid;    // "root@pam"
  std::string password;  // "" = no password login
  bool enabled = true;
  // nullopt: every privilege (like root@pam, always); otherwise these ACL
  // entries. A token of a user the cluster does not list has every privilege.
  std::optional<std::vector<Acl>> acls;
  // Two-factor authentication: a TOTP entry whose current code is this
  // (nullopt: no second factor). A password login then gets a partial
  // ticket with NeedTFA (pve_auth.hpp) that only the second step accepts.
  std::optional<std::string> totp;
};

// How generate() mixes guests; the defaults give a realistic cluster.
struct GuestMix {
  double lxc_share = 0.35;
  double stopped_share = 0.25;
  double paused_share = 0.03;  // QEMU only
  double template_share = 0.04;
  double tagged_share = 0.3;
  double unnamed_share = 0.04;     // no name field
  double empty_name_share = 0.02;  // name "" (LXC)
  double locked_share = 0.02;
  double described_share = 0.5;
  double agent_share = 0.7;  // QEMU guests with the agent configured (most of them running it)
};

// Version helpers: "8.4.14", "7.4-16", "6.2-4" -> {8,4,14}...
struct PveVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  static PveVersion parse(const std::string& v);
  bool at_least(int ma, int mi, int pa = 0) const;
};

class PveCluster {
 public:
  // Nodes "pve1".."pveN" (or the given names), all online, ip 127.0.0.1.
  explicit PveCluster(std::vector<std::string> node_names = {"pve1"},
                      std::string cluster_name = "pve-cluster");

  std::string name() const;

  // --- simulated clock (starts at real time) ---
  long long now() const;  // unix seconds
  void advance(std::chrono::seconds d);

  // --- nodes ---
  void add_node(Node node);
  std::vector<Node> nodes() const;
  std::optional<Node> node(const std::string& name) const;
  void set_node_online(const std::string& name, bool online);
  void set_node_ip(const std::string& name, const std::string& ip);
  void set_node_version(const std::string& name, const std::string& version);
  void set_all_versions(const std::string& version);
  void set_node_fingerprint(const std::string& name, const std::string& fingerprint);

  // --- guests ---
  // Adds `count` guests spread over the nodes from a seed (same seed, same guests).
  // vmids from `first_vmid` upwards, with occasional gaps. On every node the
  // running container with the lowest vmid gets a slightly negative CPU share
  // (a few 1e-5, from the seed), so that every test meets one.
  void generate(std::size_t count, std::uint64_t seed, int first_vmid = 100, GuestMix mix = {});
  // Throws std::invalid_argument when the vmid exists or the node is unknown.
  void add_guest(Guest guest);
  bool remove_guest(int vmid);
  std::optional<Guest> guest(int vmid) const;
  std::vector<Guest> guests() const;  // ordered by vmid
  std::vector<Guest> guests_on(const std::string& node) const;
  // Runs `change` on the guest under the lock; false when there is no such guest.
  bool update_guest(int vmid, const std::function<void(Guest&)>& change);

  // Power and configuration changes, as Proxmox would make them.
  // Each returns false when there is no such guest (or the change is impossible).
  //
  // The guest operations (pve_cluster_ops.cpp) also leave the tasks a real
  // node records (pve_tasks.hpp), started by `user` (the UPID's user: a user
  // or an API token's full id), on the node named below, with id = the
  // vmid, ended at once with status "OK"; qm*/vz* for a VM or a container:
  //   start -> qmstart/vzstart, stop -> qmstop/vzstop, shutdown ->
  //   qmshutdown/vzshutdown, pause -> qmpause/vzsuspend, resume ->
  //   qmresume/vzresume (on the guest's node);
  //   reboot -> qmreboot, then qmstart by root@pam (qmeventd restarts it);
  //   a container's vzreboot alone;
  //   create -> qmcreate/vzcreate on its node (and a start task by the same
  //   user when created running);
  //   clone -> qmclone/vzclone on the SOURCE's node with the source's vmid;
  //   migrate -> qmigrate/vzmigrate on the SOURCE node, and when the guest
  //   runs a qmstart/vzstart by root@pam on the target;
  //   destroy -> qmdestroy/vzdestroy;
  //   config_task -> qmconfig (the asynchronous POST .../qemu/{vmid}/config).
  // No task: power_off (the guest powers itself off or crashes), rename,
  // set_description, tags, lock, pool, usage and agent changes (the
  // synchronous PUT .../config, as `qm set` and `pct set`), add_guest and
  // remove_guest (the state as it was before the simulated history).
  bool start(int vmid, const std::string& user = kRootUser);  // stopped/paused -> running
  bool stop(int vmid, const std::string& user = kRootUser);   // -> stopped, usage zero
  bool shutdown(int vmid, const std::string& user = kRootUser);
  bool reboot(int vmid, const std::string& user = kRootUser);  // running only; new pid
  bool pause(int vmid, const std::string& user = kRootUser);   // running -> paused
  bool resume(int vmid, const std::string& user = kRootUser);  // paused -> running
  // -> stopped without a task (qemu-server src/qmeventd runs `qm cleanup`,
  // which is no worker: src/PVE/CLI/qm.pm cleanup).
  bool power_off(int vmid);
  // Adds the guest as add_guest does (throws the same) and records its creation.
  void create(Guest guest, const std::string& user = kRootUser);
  // A stopped copy as `newid` on `node` ("" = the source's), named `name`
  // (nullopt: "Copy-of-VM-<name or vmid>" for a VM, the same hostname for a
  // container); false when newid exists or the node is unknown.
  bool clone(int vmid, int newid, const std::string& node = "",
             std::optional<std::string> name = std::nullopt, const std::string& user = kRootUser);
  // A running guest cannot be destroyed (false), as a real node refuses.
  bool destroy(int vmid, const std::string& user = kRootUser);
  // The qmconfig task of an asynchronous configuration change; false for a container.
  bool config_task(int vmid, const std::string& user = kRootUser);
  bool rename(int vmid, std::optional<std::string> name);
  // cpu is kept within 0..1, or -0.01..1 for a container (see Guest::cpu).
  bool set_usage(int vmid, std::optional<double> cpu, std::optional<long long> mem);
  // To its own node (which a real node refuses): nothing changes, no task.
  bool migrate(int vmid, const std::string& node, const std::string& user = kRootUser);
  bool set_agent(int vmid, bool configured, bool running);
  bool set_description(int vmid, std::optional<std::string> description);
  bool set_tags(int vmid, const std::string& tags);
  bool set_lock(int vmid, const std::string& lock);
  // Moves the guest into `pool` ("" = out of any pool), as `pvesh set
  // /pools/{pool} --vms` does; the ACL entries on /pool/{pool} then apply to it.
  bool set_pool(int vmid, const std::string& pool);
  // The pool of a guest; nullopt when it is in none or does not exist.
  std::optional<std::string> pool_of(int vmid) const;
  int next_vmid() const;

  // --- tasks (pve_tasks.hpp) ---
  // A task of its own (a failed migration, a backup...): `node` must exist;
  // starttime 0 means now; without endtime it runs until end_task. pid and
  // pstart are filled in. Returns its UPID; throws std::invalid_argument for
  // an unknown node.
  std::string add_task(Task task);
  // Ends a running task now; false when none has this UPID.
  bool end_task(const std::string& upid, const std::string& status = "OK");
  std::vector<Task> tasks() const;  // every task of every node
  std::vector<Task> active_tasks(const std::string& node) const;
  std::vector<Task> archived_tasks(const std::string& node) const;
  // The list each node broadcast, as GET /cluster/tasks reads it: as it was
  // `task_broadcast_lag` seconds ago (default 0, see pve_tasks.hpp).
  std::vector<nlohmann::json> task_broadcasts() const;
  void set_task_broadcast_lag(std::chrono::seconds lag);
  std::chrono::seconds task_broadcast_lag() const;

  // --- users and tokens ---
  void add_user(User user);
  void add_token(ApiToken token);
  // Revokes a token (as `pveum user token remove`); false when there is no such token.
  bool remove_token(const std::string& id);
  // The ACL entries of a user or token, replaced, added or removed at run
  // time (`pveum acl modify|delete`). For a user they replace its default of
  // every privilege (a user the cluster does not list is added without a
  // password); for a token they are its own entries (its `privileges` on /
  // included: set_acls clears them), which count when it is
  // privilege-separated. False when a token id names no token.
  bool set_acls(const std::string& authid, std::vector<Acl> acls);
  bool add_acl(const std::string& authid, Acl acl);
  // Removes every entry on `path`; false when there was none (or no such token).
  bool remove_acls(const std::string& authid, const std::string& path);
  // Custom roles (`pveum role add|modify NAME --privs ...`): an ACL entry
  // whose role names one holds its privileges as they are at each request.
  void set_role(const std::string& name, std::set<std::string> privileges);
  bool remove_role(const std::string& name);
  std::map<std::string, std::set<std::string>> roles() const;
  std::optional<User> user(const std::string& userid) const;
  std::optional<ApiToken> token(const std::string& id) const;
  std::vector<User> users() const;
  std::vector<ApiToken> tokens() const;
  // Failed authentication is answered after this delay (Proxmox: 3 s).
  void set_auth_failure_delay(std::chrono::milliseconds d);
  std::chrono::milliseconds auth_failure_delay() const;
  // The key that signs tickets and CSRF tokens (random per cluster).
  std::string ticket_key() const;

  // --- hosts (PveHost registers itself while it runs) ---
  void attach_host(const std::string& node, PveHost* host);
  void detach_host(const std::string& node, PveHost* host);
  PveHost* host(const std::string& node) const;

  // Everything as JSON, for the control API and for debugging.
  std::string snapshot_json() const;

 private:
  Guest* find(int vmid);
  void add_guest_locked(Guest guest);
  long long now_locked() const;
  void start_locked(Guest& g);
  void stop_locked(Guest& g);
  // stop and shutdown: the guest stopped, and the task ("stop", "shutdown") left.
  bool stop_with_task(int vmid, const std::string& action, const std::string& user);
  // Records a finished task of `type` about `vmid` (0: none) on `node`.
  std::string task_locked(const std::string& node, const std::string& type, int vmid,
                          const std::string& user);
  std::string add_task_locked(Task task);

  mutable std::mutex mutex_;
  std::string name_;
  std::chrono::seconds offset_{0};
  std::vector<Node> nodes_;
  std::map<int, Guest> guests_;
  std::map<std::string, User> users_;
  std::map<std::string, ApiToken> tokens_;
  std::map<std::string, std::set<std::string>> roles_;
  std::chrono::milliseconds auth_delay_{3000};
  std::string ticket_key_;
  std::map<std::string, PveHost*> hosts_;
  long long next_pid_ = 0;
  TaskFiles tasks_;
  std::chrono::seconds task_lag_{0};
};

}  // namespace pha::sim
