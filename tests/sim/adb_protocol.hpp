#pragma once
// The AccountDB agent protocol (docs/accountdb.md) as today's server answers
// it: which call a request is, and each call's handler over the AdbStore.

#include <string>

#include "tests/sim/adb_fault.hpp"
#include "tests/sim/adb_reply.hpp"
#include "tests/sim/adb_store.hpp"
#include "tests/sim/wire_server.hpp"

namespace pha::sim {

// Which call of the protocol a request is.
struct AdbRoute {
  AdbCall call = AdbCall::none;
  std::string path;     // the request's path, percent-decoded
  std::string pattern;  // "METHOD /path/{param}" (for a path of no call: "METHOD path")
  std::string param;    // the path parameter, decoded
  bool method_ok = true;
};

AdbRoute route_of(const WireRequest& req);

class AdbProtocol {
 public:
  explicit AdbProtocol(AdbStore& store) : store_(store) {}

  // The answer to a request that passed the rate limit and met no fault.
  AdbReply answer(const AdbRoute& route, const WireRequest& req);

 private:
  AdbReply node_info(const AdbRoute& route, const WireRequest& req);
  AdbReply heartbeat(const WireRequest& req);
  AdbReply whitelist(const AdbRoute& route, const WireRequest& req);
  AdbReply whitelist_legacy(const AdbRoute& route, const WireRequest& req);
  AdbReply list_vms(const AdbRoute& route, const WireRequest& req);
  AdbReply put_vm(const AdbRoute& route, const WireRequest& req);

  AdbStore& store_;
};

}  // namespace pha::sim
