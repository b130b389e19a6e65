#pragma once
// The AccountDB simulator: the agent protocol of docs/accountdb.md as
// today's server answers it (tests/fixtures/accountdb/transcript.real-server.json),
// over plain HTTP on 127.0.0.1 with a WireServer. It keeps the server's
// quirks that the agent must live with: a PUT to a row id that does not exist
// inserts a new row (so duplicates of a VMID are possible), a null field never
// overwrites a stored one but a missing `status` is stored as "stopped", the
// rate limit counts per client address and path, and validation errors read
// like pydantic v1. Faults make it misbehave the way a real deployment does,
// or answer with well-formed lies (adb_fault.hpp): list_vms with no rows, fewer
// rows or another node's rows, an empty whitelist, each with the server's own
// status, headers and JSON shape.
//
//   pha::sim::AdbSim sim({.nodes = {{.id = 34, .name = "pha-node-34", .api_key = key,
//                                    .owner_id = 2, .whitelist = {101, 102, 205}}}});
//   sim.url();                                 // http://127.0.0.1:PORT
//   sim.set_fault({.kind = pha::sim::AdbFaultKind::status,
//                  .call = pha::sim::AdbCall::list_vms, .status = 503});
//   sim.add_row({.vmid = 101, .name = "web", .proxmox_node_id = 34});
//   sim.advance(std::chrono::seconds(60));     // the rate limit window passes
//   sim.count("PUT /vms/agent/{id}");          // by pattern, or by exact path:
//   sim.count("PUT /vms/agent/-101");
//
// A production AccountDB runs several API servers in front of one database:
// add_endpoint() starts one more listener over the same state (nodes, rows,
// rate limit, clock). Each endpoint has its own fault and its own request
// counts; the calls without an endpoint argument act on endpoint 0 (faults)
// or on all endpoints together (counts).
//
//   const auto second = sim.add_endpoint();   // 1
//   sim.set_fault({.kind = pha::sim::AdbFaultKind::down}, 0);
//   sim.url(second);                           // still answers
//   sim.count("PUT /vms/agent/{id}", second);
//
// AdbControlApi (adb_control.hpp) serves the same controls over HTTP for the
// adb-sim program.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"
#include "tests/sim/adb_fault.hpp"
#include "tests/sim/adb_protocol.hpp"
#include "tests/sim/adb_rate_limit.hpp"
#include "tests/sim/adb_store.hpp"
#include "tests/sim/common/fault_slot.hpp"
#include "tests/sim/common/request_log.hpp"
#include "tests/sim/wire_server.hpp"

namespace pha::sim {

struct AdbRecordedRequest {
  std::string method;
  std::string path;   // as sent, without the query string
  std::string query;  // as sent, with the api_key value replaced by "***"
  std::string body;
  int status = 0;  // what it was answered with (0: no answer, e.g. hang)
  AdbCall call = AdbCall::none;
  std::string client;  // the client's address, without the port
  std::string request_id;
  std::size_t endpoint = 0;  // the index of the endpoint that received it
};

struct AdbSimOptions {
  std::vector<AdbNode> nodes;
  std::vector<AdbRow> rows;
  // Requests per window per (client address, path without query); 0: no limit.
  std::size_t rate_limit = 100;
  std::chrono::seconds rate_window{60};
  bool whitelist_endpoint = true;      // false: an older server without whitelist (404)
  bool reject_float_disk = false;      // true: a newer server (pydantic v2) rejects disk_gb 31.5
  long long created_row_owner_id = 1;  // owner of rows put_vm creates (today: 1, the admin)
  const Clock* clock = nullptr;        // time source (not owned); nullptr: the system clock
  std::string bind_address = "127.0.0.1";
  int port = 0;  // 0: any free port
};

class AdbSim {
 public:
  // Seeds the state and starts listening; throws when it cannot.
  explicit AdbSim(AdbSimOptions options = {});
  ~AdbSim();
  AdbSim(const AdbSim&) = delete;
  AdbSim& operator=(const AdbSim&) = delete;

  void stop();  // stops every endpoint; also done by the destructor

  // --- endpoints: listeners over the same state ---
  // Starts one more listener on the same bind address, any free port, and
  // returns its index (the first listener is endpoint 0). Throws
  // std::runtime_error when it cannot listen, std::logic_error after stop().
  std::size_t add_endpoint();
  std::size_t endpoints() const;
  // Of an endpoint; throw std::out_of_range for an unknown one.
  int port(std::size_t endpoint) const;
  std::string url(std::size_t endpoint) const;  // "http://127.0.0.1:PORT"
  int port() const { return port(0); }
  std::string url() const { return url(0); }

  // --- time: the rate limit windows and the timestamps follow the clock plus
  // everything advanced here ---
  void advance(Clock::Duration d);

  // --- nodes ---
  // Throws std::invalid_argument when the id exists or is not positive.
  void add_node(AdbNode node);
  std::optional<AdbNode> node(long long id) const;
  std::vector<AdbNode> nodes() const;
  bool set_whitelist(long long node_id, std::vector<long long> vmids);  // false: no such node
  // The node's new key (`new_key`, or a generated 43-character one when
  // empty); the old key stops working. Throws std::out_of_range for an unknown node.
  std::string rotate_key(long long node_id, std::string new_key = "");

  // --- rows, as an operator or another agent would change them ---
  AdbRow add_row(AdbRow row);  // returns the stored row; throws when the id exists
  bool edit_row(long long id, const std::function<void(AdbRow&)>& edit);  // false: no such row
  bool delete_row(long long id);
  std::optional<AdbRow> row(long long id) const;
  std::vector<AdbRow> rows() const;  // by id
  // What list_vms answers for the node, in its order.
  std::vector<AdbRow> rows_of_node(long long node_id) const;

  // --- server behaviour ---
  void set_whitelist_endpoint(bool present);
  void set_reject_float_disk(bool reject);
  void set_rate_limit(std::size_t limit, std::chrono::seconds window);
  void reset_rate_limits();
  AdbSettings settings() const;

  // --- faults (one at a time per endpoint; a new one replaces the old) ---
  // The versions without an endpoint act on endpoint 0 only. A down endpoint
  // refuses connections while the others keep serving; a hang on one endpoint
  // holds only that endpoint's requests. Unknown endpoints: std::out_of_range.
  void set_fault(const AdbFault& fault) { set_fault(fault, 0); }
  void clear_fault() { clear_fault(0); }
  std::optional<AdbFault> fault() const { return fault(0); }
  void set_fault(const AdbFault& fault, std::size_t endpoint);
  void clear_fault(std::size_t endpoint);
  std::optional<AdbFault> fault(std::size_t endpoint) const;

  // --- requests received (including faulted and rate-limited ones) ---
  // The calls without an endpoint count every endpoint together.
  // "METHOD pattern" -> n, e.g. "PUT /vms/agent/{id}", "GET /proxmox-nodes/agent-vms/{node_id}";
  // a path that is no call of the protocol counts under itself.
  std::map<std::string, std::size_t> counts() const;
  // "METHOD path" -> n, e.g. "PUT /vms/agent/-101".
  std::map<std::string, std::size_t> path_counts() const;
  std::size_t count(const std::string& pattern_or_path) const;
  std::size_t total_requests() const;
  // Of one endpoint; throw std::out_of_range for an unknown one.
  std::size_t count(const std::string& pattern_or_path, std::size_t endpoint) const;
  std::size_t total_requests(std::size_t endpoint) const;
  std::vector<AdbRecordedRequest> requests() const;  // in arrival order (the first 100000)
  // TCP payload bytes from and to clients, every endpoint together; and
  // connections accepted (keep-alive reuse shows here).
  std::uint64_t bytes_received() const;
  std::uint64_t bytes_sent() const;
  std::size_t connections_accepted() const;
  void reset_counts();

  // Everything as JSON (nodes with their keys, rows, fault of endpoint 0,
  // settings, and "endpoints": [{"url", "fault", "total_requests"}]), for
  // the control API and for debugging.
  std::string state_json() const;

 private:
  // One listener, with its own fault and its own counts.
  struct Endpoint {
    Endpoint(std::size_t i, WireServerOptions options, AdbSim& sim)
        : index(i),
          server(std::move(options),
                 [this, &sim](const WireRequest& req) { return sim.handle(req, *this); }),
          fault(server),
          tally(2) {}
    std::size_t index = 0;
    WireServer server;
    FaultSlot<AdbFault> fault;
    RequestTally tally;  // by pattern (0) and by path (1)
  };

  std::unique_ptr<Endpoint> make_endpoint(std::size_t index, int listen_port);
  Endpoint& endpoint_at(std::size_t index) const;  // throws std::out_of_range
  WireResponse handle(const WireRequest& req, Endpoint& ep);
  AdbReply rate_limited_answer(const AdbRoute& route, const WireRequest& req,
                               const std::string& client);
  static WireResponse to_wire(AdbReply reply, const std::string& request_id,
                              std::chrono::steady_clock::time_point started);
  void record(Endpoint& ep, AdbRecordedRequest r, const std::string& pattern);
  template <typename Of>
  auto sum_over(Of of) const;  // of every endpoint

  std::string bind_address_;
  AdbStore store_;
  AdbProtocol protocol_{store_};
  AdbRateLimit rate_limit_;

  // Endpoints are only added (until the destructor): an Endpoint& stays valid.
  mutable std::mutex endpoints_mutex_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  bool stopped_ = false;

  RequestLog<AdbRecordedRequest> log_{2};  // every endpoint: by pattern (0) and by path (1)
};

}  // namespace pha::sim
