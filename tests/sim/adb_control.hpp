#pragma once
// The AccountDB simulator's control API (plain HTTP on 127.0.0.1, any free
// port), for programs that run it as a separate process: the demo, the
// benchmarks and the package test.
//
//   GET    /control/state               nodes (with keys), rows, faults, settings, endpoints
//   GET    /control/rows                {"rows": [...], "count": n}
//   POST   /control/rows                add {"vmid", "name", "proxmox_node_id", ...} -> the row
//   PUT    /control/rows/{id}           edit the given fields -> the row
//   DELETE /control/rows/{id}
//   GET    /control/counts              {"total", "counts": {"PUT /vms/agent/{id}": n},
//                                        "paths": {...}, "endpoints": [total of each]}
//   POST   /control/counts/reset
//   GET    /control/requests            {"total", "requests": [{"method", "path", "query",
//                                        ..., "call", "endpoint"}]}
//   POST   /control/fault               {"kind", "call", "count", "delay_ms", "status", "body",
//                                        "retry_after", "drop", "other_node_id", "endpoint"};
//                                        kind as AdbFaultKind names it: also the lies
//                                        list_vms_empty, list_vms_drop, list_vms_other_node,
//                                        whitelist_empty
//   GET    /control/fault | DELETE /control/fault
//   GET    /control/nodes | POST /control/nodes {"id", "api_key", "name", "owner_id", "whitelist"}
//   PUT    /control/nodes/{id}/whitelist  a JSON array of VMIDs
//   POST   /control/nodes/{id}/rotate-key {"api_key": optional} -> {"api_key"}
//   POST   /control/settings            {"whitelist_endpoint", "reject_float_disk",
//                                        "rate_limit", "rate_window"}
//   POST   /control/rate-limits/reset
//   POST   /control/clock/advance       {"seconds": N}
//
// A call is named as AdbCall is ("list_vms"; "" for every request). The
// fault calls act on endpoint 0 unless an "endpoint" index is given: in the
// JSON body, or as ?endpoint=N (GET and DELETE). Answers are JSON; errors are
// {"error": "..."} with 400 or 404 (404: an unknown endpoint too).

#include <string>

#include "tests/sim/adb_sim.hpp"
#include "tests/sim/common/control_server.hpp"

namespace pha::sim {

class AdbControlApi {
 public:
  explicit AdbControlApi(AdbSim& sim);
  AdbControlApi(const AdbControlApi&) = delete;
  AdbControlApi& operator=(const AdbControlApi&) = delete;

  void start() { server_.start(); }  // throws when it cannot listen
  void stop() { server_.stop(); }
  int port() const { return server_.port(); }
  std::string url() const { return server_.url(); }

 private:
  void add_row_routes();
  void add_count_routes();
  void add_fault_routes();
  void add_node_routes();
  void add_setting_routes();

  AdbSim& sim_;
  ControlServer server_;
};

}  // namespace pha::sim
