#pragma once
// The calls of the AccountDB agent protocol (docs/accountdb.md) and the
// faults the AccountDB simulator injects into them. Besides the broken
// answers (errors, hangs, resets) there are well-formed lies: answers of a
// working server, with its status, headers and JSON shape, that tell wrong
// data (no rows, fewer rows, rows of another node, an empty whitelist).

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "tests/sim/adb_reply.hpp"

namespace pha::sim {

// A call of the protocol, by what it is for.
enum class AdbCall {
  none,              // a path that is no call of the protocol
  node_info,         // GET  /proxmox-nodes/agent-node/{node_id}
  heartbeat,         // POST /proxmox-nodes/heartbeat
  whitelist,         // GET  /vm-access/node/{node_id}/whitelist/agent
  whitelist_legacy,  // GET  /proxmox-nodes/agent-whitelist/{node_id} (older servers)
  list_vms,          // GET  /proxmox-nodes/agent-vms/{node_id}
  put_vm,            // PUT  /vms/agent/{id}
};

std::string to_string(AdbCall c);                             // "node_info"; "" for none
std::optional<AdbCall> parse_adb_call(const std::string& s);  // "" is none

enum class AdbFaultKind {
  down,            // refuse connections (the listening socket is closed, open connections drop)
  slow,            // process the request, then answer after `delay` (a client that times out
                   // may still have written)
  hang,            // neither process nor answer, until the fault is cleared or the server stops
  status,          // answer `status` with `body` ("" = the server's JSON body for `status`)
  rate_limit,      // 429 {"detail":"Too many requests"} with Retry-After: `retry_after`
  reset,           // process the request, send the head and half the body, then a TCP RST
  list_vms_fails,  // list_vms answers 500 (like `status` 500 with `call` list_vms)
  // Well-formed lies: the server's own 200 answer with other data (an answer
  // that is not 200, say 401 for a bad key, stays as it is). `call` is
  // implied, as for list_vms_fails.
  list_vms_empty,       // list_vms: {"vms": [], "count": 0, "node_id": N}
  list_vms_drop,        // list_vms without its first `drop` rows, "count" adjusted
  list_vms_other_node,  // list_vms whose rows each say "proxmox_node_id": `other_node_id`
  whitelist_empty,      // whitelist: []; whitelist_legacy: "vmids": []
};

std::string to_string(AdbFaultKind k);
std::optional<AdbFaultKind> parse_adb_fault_kind(const std::string& s);

struct AdbFault {
  AdbFaultKind kind = AdbFaultKind::status;
  // Only requests of that call; none: every request. Not for down.
  AdbCall call = AdbCall::none;
  // Only the next N matching requests, then the fault clears itself (a request
  // already hanging keeps hanging until clear_fault()). Not for down.
  std::optional<std::size_t> count;
  std::chrono::milliseconds delay{2000};  // slow
  int status = 500;                       // status
  std::string body;                       // status: "" = the usual body for `status`
  long long retry_after = 30;             // rate_limit, seconds
  std::size_t drop = 1;                   // list_vms_drop
  long long other_node_id = 0;            // list_vms_other_node; 0: the node's id + 1
};

// Whether `fault` applies to a request of `call`.
bool applies_to(const AdbFault& fault, AdbCall call);

// What a status, rate_limit or list_vms_fails fault answers a request of
// `call`, on a server whose rate limit is `rate_limit`.
AdbReply fault_reply(const AdbFault& fault, AdbCall call, std::size_t rate_limit);

// Whether the fault is one of the well-formed lies.
bool is_lie(AdbFaultKind k);
// What a lie makes of the server's answer `real` to a request of `call`:
// a 200 gets the lie's data in the server's JSON shape, anything else stays.
AdbReply lie_reply(const AdbFault& fault, AdbCall call, AdbReply real);

}  // namespace pha::sim
