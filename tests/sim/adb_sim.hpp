#pragma once
// The AccountDB simulator: the agent protocol of accountdb.md (calls A-F) as
// today's server answers it (tests/fixtures/accountdb/transcript.real-server.json),
// over plain HTTP on 127.0.0.1 with a WireServer. It keeps the server's
// quirks that the agent must live with: a PUT to a row id that does not exist
// inserts a new row (so duplicates of a VMID are possible), a null field never
// overwrites a stored one but a missing `status` is stored as "stopped", the
// rate limit counts per client address and path, and validation errors read
// like pydantic v1. Faults make it misbehave the way a real deployment does.
//
//   pha::sim::AdbSim sim({.nodes = {{.id = 34, .name = "pha-node-34", .api_key = key,
//                                    .owner_id = 2, .whitelist = {101, 102, 205}}}});
//   sim.url();                                 // http://127.0.0.1:PORT
//   sim.set_fault({.kind = pha::sim::AdbFaultKind::status, .call = 'E', .status = 503});
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
// AdbControlApi serves the same controls over HTTP for the adb-sim program.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.hpp"
#include "tests/sim/wire_server.hpp"

namespace httplib {
class Server;
}

namespace pha::sim {

namespace adb_detail {
struct Route;  // which call of the protocol a request is
struct Reply;  // an answer before the common headers are added
}  // namespace adb_detail

// A row of `proxmox_nodes` with its API key.
struct AdbNode {
  long long id = 0;
  std::string name;  // "" = "pha-node-<id>"
  std::string hostname = "127.0.0.1";
  int port = 8006;
  std::string api_key;  // accepted for this node id only
  long long owner_id = 1;
  std::vector<long long> whitelist;
  std::string status = "disconnected";   // A and B make it "connected"
  std::optional<std::string> last_seen;  // set by A and B
  std::string created_at;                // ISO 8601; "" = when it is added
  std::string updated_at;
};

// A row of `vms`. The server does not store uptime_seconds or proxmox_node.
struct AdbRow {
  long long id = 0;  // add_row: 0 = the next serial
  long long vmid = 0;
  std::string name;
  std::string status = "stopped";
  std::optional<long long> cpu_cores;
  std::optional<double> cpu_usage_percent;
  std::optional<long long> memory_mb;
  std::optional<long long> disk_gb;
  std::optional<std::string> ip_address;
  long long proxmox_node_id = 0;
  std::optional<long long> template_id;
  std::optional<std::string> notes;
  long long owner_id = 1;
  std::string created_at;  // ISO 8601; "" = when it is added
  std::string updated_at;
};

enum class AdbFaultKind {
  down,        // refuse connections (the listening socket is closed, open connections drop)
  slow,        // process the request, then answer after `delay` (a client that times out
               // may still have written)
  hang,        // neither process nor answer, until the fault is cleared or the server stops
  status,      // answer `status` with `body` ("" = the server's JSON body for `status`)
  rate_limit,  // 429 {"detail":"Too many requests"} with Retry-After: `retry_after`
  reset,       // process the request, send the head and half the body, then a TCP RST
  e_fails,     // call E answers 500 (like `status` 500 with `call` 'E')
};

std::string to_string(AdbFaultKind k);
std::optional<AdbFaultKind> parse_adb_fault_kind(const std::string& s);

struct AdbFault {
  AdbFaultKind kind = AdbFaultKind::status;
  char call = 0;  // 'A'..'F': only requests of that call; 0: every request. Not for down.
  // Only the next N matching requests, then the fault clears itself (a request
  // already hanging keeps hanging until clear_fault()). Not for down.
  std::optional<std::size_t> count;
  std::chrono::milliseconds delay{2000};  // slow
  int status = 500;                       // status
  std::string body;                       // status: "" = the usual body for `status`
  long long retry_after = 30;             // rate_limit, seconds
};

struct AdbRecordedRequest {
  std::string method;
  std::string path;   // as sent, without the query string
  std::string query;  // as sent, with the api_key value replaced by "***"
  std::string body;
  int status = 0;      // what it was answered with (0: no answer, e.g. hang)
  char call = 0;       // 'A'..'F', 0 for any other path
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
  bool whitelist_endpoint = true;      // false: an older server without C (it answers 404)
  bool reject_float_disk = false;      // true: a newer server (pydantic v2) rejects disk_gb 31.5
  long long created_row_owner_id = 1;  // owner of rows that F creates (today: 1, the admin)
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
  // What E answers for the node, in the order E answers it.
  std::vector<AdbRow> rows_of_node(long long node_id) const;

  // --- server behaviour ---
  void set_whitelist_endpoint(bool present);
  void set_reject_float_disk(bool reject);
  void set_rate_limit(std::size_t limit, std::chrono::seconds window);
  void reset_rate_limits();

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
  struct Window {
    std::size_t count = 0;
    Clock::TimePoint reset_at;
  };
  // One listener. `fault` and `fault_seen` are guarded by fault_mutex_.
  struct Endpoint {
    std::size_t index = 0;
    std::unique_ptr<WireServer> server;
    std::optional<AdbFault> fault;
    std::size_t fault_seen = 0;
    // Bumped by set/clear on this endpoint and by stop(): ends its hangs.
    std::shared_ptr<std::atomic<std::uint64_t>> fault_epoch =
        std::make_shared<std::atomic<std::uint64_t>>(0);
  };
  struct Counts {
    std::map<std::string, std::size_t> by_pattern;
    std::map<std::string, std::size_t> by_path;
    std::size_t total = 0;
  };
  using Route = adb_detail::Route;
  using Reply = adb_detail::Reply;

  std::unique_ptr<Endpoint> make_endpoint(std::size_t index, int listen_port);
  Endpoint& endpoint_at(std::size_t index) const;  // throws std::out_of_range
  WireResponse handle(const WireRequest& req, Endpoint& ep);
  Reply answer(const Route& route, const WireRequest& req);
  Reply call_a(const Route& route, const WireRequest& req);
  Reply call_b(const WireRequest& req);
  Reply call_c(const Route& route, const WireRequest& req);
  Reply call_d(const Route& route, const WireRequest& req);
  Reply call_e(const Route& route, const WireRequest& req);
  Reply call_f(const Route& route, const WireRequest& req);
  Reply fault_reply(const AdbFault& f, char call);
  void record(AdbRecordedRequest r, const std::string& pattern);

  // With mutex_ held.
  Clock::TimePoint now_locked() const;
  std::string stamp_locked();  // a strictly increasing ISO 8601 timestamp
  bool key_valid_locked(long long node_id, const std::string& key) const;
  std::string node_name_locked(long long node_id) const;

  AdbSimOptions options_;
  const Clock* clock_;

  // Endpoints are only added (until the destructor): an Endpoint& stays valid.
  mutable std::mutex endpoints_mutex_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  bool stopped_ = false;

  mutable std::mutex mutex_;
  Clock::Duration offset_{};
  long long last_stamp_us_ = 0;
  std::map<long long, AdbNode> nodes_;
  std::map<long long, AdbRow> rows_;
  std::map<long long, unsigned long long> row_writes_;  // id -> write sequence (E's order)
  unsigned long long write_seq_ = 0;
  long long next_row_id_ = 1;
  std::map<std::string, Window> windows_;  // by "client:path"
  Clock::TimePoint last_cleanup_{};
  std::mt19937_64 rng_;

  mutable std::mutex fault_mutex_;  // the faults of every endpoint

  mutable std::mutex log_mutex_;
  Counts all_counts_;
  std::map<std::size_t, Counts> endpoint_counts_;  // by endpoint index
  std::vector<AdbRecordedRequest> log_;
};

// The simulator's control API (plain HTTP on 127.0.0.1, any free port), for
// programs that run it as a separate process: the demo and the benchmarks.
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
//                                        ..., "endpoint"}]}
//   POST   /control/fault               {"kind", "call", "count", "delay_ms", "status", "body",
//                                        "retry_after", "endpoint"}
//   GET    /control/fault | DELETE /control/fault
//   GET    /control/nodes | POST /control/nodes {"id", "api_key", "name", "owner_id", "whitelist"}
//   PUT    /control/nodes/{id}/whitelist  a JSON array of VMIDs
//   POST   /control/nodes/{id}/rotate-key {"api_key": optional} -> {"api_key"}
//   POST   /control/settings            {"whitelist_endpoint", "reject_float_disk",
//                                        "rate_limit", "rate_window"}
//   POST   /control/rate-limits/reset
//   POST   /control/clock/advance       {"seconds": N}
//
// The fault calls act on endpoint 0 unless an "endpoint" index is given: in
// the JSON body, or as ?endpoint=N (GET and DELETE). Answers are JSON; errors
// are {"error": "..."} with 400 or 404 (404: an unknown endpoint too).
class AdbControlApi {
 public:
  explicit AdbControlApi(AdbSim& sim);
  ~AdbControlApi();
  AdbControlApi(const AdbControlApi&) = delete;
  AdbControlApi& operator=(const AdbControlApi&) = delete;

  void start();  // listens on 127.0.0.1, any free port; throws when it cannot
  void stop();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  AdbSim& sim_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace pha::sim
