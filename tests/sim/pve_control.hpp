#pragma once
// The simulator's control API (plain HTTP on 127.0.0.1), for programs that
// run the simulator as a separate process: the demo and the benchmarks.
//
//   GET    /control/state                   cluster, nodes, guests, hosts
//   GET    /control/hosts/{node}/counts     {"total", "counts": {"GET /api2/json/...": n},
//                                            "requests": [...]}
//   POST   /control/hosts/{node}/counts/reset
//   POST   /control/hosts/{node}/fault      {"kind": "hang", "path_prefix", "count", "delay_ms",
//                                            "status", "reason", "every", "oversized_bytes",
//                                            "drop", "drop_vmids"}; kind also empty_list or
//                                            drop_entries (the guest lists' lies)
//   DELETE /control/hosts/{node}/fault
//   POST   /control/guests                  create: {"vmid", "node", "type", "name",
//                                            "status", ..., "user"}; "silent": true adds
//                                            it without the qmcreate/vzcreate task
//   POST   /control/guests/{vmid}/{action}  start, stop, shutdown, reboot, pause, resume,
//                                            destroy, delete (stops a running one first),
//                                            clone {"newid", "node", "name"},
//                                            migrate {"node"}: each leaves its tasks,
//                                            by {"user"} (default root@pam);
//                                            poweroff (from inside, or a crash: no task);
//                                            rename {"name"}, description {"description"}
//                                            (no task; "async": true a qmconfig task),
//                                            usage {"cpu", "mem"},
//                                            agent {"configured", "running"},
//                                            tags {"tags"}, lock {"lock"},
//                                            pool {"pool"} ("" or null: none)
//   GET    /control/tasks                   {"tasks": [...], "broadcast_lag"}
//   POST   /control/tasks                   a task of one's own: {"type", "id", "node",
//                                            "user", "status" ("OK", "WARNINGS: 1", an
//                                            error), "starttime", "endtime", "running"}
//                                            -> {"upid"}
//   POST   /control/tasks/end               {"upid", "status"}: a running task ends now
//   PUT    /control/tasks/lag               {"seconds"}: how old /cluster/tasks is (0)
//   GET    /control/acls/{subject}          {"subject", "acls": [...] or null (every privilege)}
//   PUT    /control/acls/{subject}          replace: [{"path", "role", "privileges",
//                                            "propagate"}, ...]
//   POST   /control/acls/{subject}          add one entry {"path", "role", ...}
//   DELETE /control/acls/{subject}?path=P   remove the entries on P
//   PUT    /control/roles/{name}            a custom role {"privileges": [...]}
//   DELETE /control/roles/{name}
//   POST   /control/users                   add or replace {"userid", "password", "enabled",
//                                            "totp", "acls"}
//   POST   /control/clock/advance           {"seconds": N}
//   POST   /control/nodes/{node}/online | offline
//
// {subject} is a user ("ops@pve") or token id ("agent@pve!sync"); the ACL
// calls act as PveCluster::set_acls, add_acl and remove_acls do. Answers are
// JSON; errors are {"error": "..."} with 400 or 404.

#include <string>

#include "tests/sim/common/control_server.hpp"

namespace pha::sim {

class PveSim;

class PveControlApi {
 public:
  explicit PveControlApi(PveSim& sim);
  ~PveControlApi();
  PveControlApi(const PveControlApi&) = delete;
  PveControlApi& operator=(const PveControlApi&) = delete;

  void start() { server_.start(); }  // listens on 127.0.0.1, any free port
  void stop() { server_.stop(); }
  int port() const { return server_.port(); }
  std::string url() const { return server_.url(); }

 private:
  PveSim& sim_;
  ControlServer server_;
};

}  // namespace pha::sim
