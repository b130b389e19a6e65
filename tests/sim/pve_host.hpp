#pragma once
// One node's pveproxy: the Proxmox VE API under /api2/json over HTTPS on its
// own port, answering from the shared PveCluster. Calls under
// /nodes/{other node}/ are "proxied" to that node's host (answered from the
// cluster state with that node's typing and counted there too), or fail with
// 595 when it cannot be reached. Faults make it misbehave the way real hosts
// do; every request it receives is counted.
//
// What it promises, as pveproxy does it:
// - Authentication first (pve-manager PVE/HTTPServer.pm auth_handler): a
//   token, or a ticket cookie (with a CSRF token for writes). A partial
//   ticket of a user with two-factor authentication ("PVE:!tfa!...", signed
//   with the user name as extra data) is a bad ticket for every call: 401.
// - Then the permission check of the call on the receiving node, before any
//   proxying (PVE/HTTPServer.pm rest_handler runs check_api2_permissions
//   first): a guest the caller may not audit is 403 on every per-guest call
//   and silently left out of /nodes/{node}/qemu, /nodes/{node}/lxc and
//   /cluster/resources (qemu-server src/PVE/API2/Qemu.pm vmlist, pve-container
//   src/PVE/API2/LXC.pm vmlist, pve-manager PVE/API2/Cluster.pm resources).
// - An unknown {node} is 500 "hostname lookup '<node>' failed - failed to get
//   address info for: <node>: Name or service not known" in the usual error
//   body (PVE/HTTPServer.pm remote_node_ip -> pve-cluster src/PVE/Cluster.pm
//   remote_node_ip -> pve-common src/PVE/Network.pm get_ip_from_hostname and
//   src/PVE/Tools.pm getaddrinfo_all); a known one that cannot be reached 595.
// - The "well-formed lies" empty_list and drop_entries answer a guest list
//   with 200 and the real headers, only fewer guests in it.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/sim/common/fault_slot.hpp"
#include "tests/sim/common/request_log.hpp"
#include "tests/sim/pve_cluster.hpp"
#include "tests/sim/wire_server.hpp"

namespace pha::sim {

enum class FaultKind {
  down,       // refuse connections (the listening socket is closed; open connections drop)
  hang,       // never answer (until the fault is cleared or the host stops)
  slow,       // answer after `delay`
  reset,      // send the head and half the body, then a TCP RST
  truncated,  // announce the full length, send half the body, close
  non_json,   // 200 with an HTML page
  oversized,  // 200 with a valid-looking JSON body of `oversized_bytes` (streamed)
  status,     // `status` with `reason` (500, 501, 595, 596...)
  flap,       // `every` requests answered normally, then `every` with `status`, and so on
  // Well-formed lies, for the guest lists only (GET /nodes/{node}/qemu,
  // /nodes/{node}/lxc, /cluster/resources); other requests do not meet them.
  // A list that would be 200 stays 200, with the real headers:
  empty_list,    // without any guest: {"data":[]} (resources keeps nodes, storage...)
  drop_entries,  // without `drop` of its guests (those of `drop_vmids` when given)
};

std::string to_string(FaultKind k);
std::optional<FaultKind> parse_fault_kind(const std::string& s);

struct Fault {
  FaultKind kind = FaultKind::status;
  // Only requests whose path starts with this ("" = all). A prefix without
  // "/api2/json" is matched against the path below it ("/nodes/pve1/qemu").
  // Not for `down`.
  std::string path_prefix;
  // Only the next N matching requests, then the fault clears itself (a request
  // already hanging keeps hanging until clear_fault()). Not for `down`.
  std::optional<std::size_t> count;
  std::chrono::milliseconds delay{2000};  // slow
  int status = 500;                       // status, flap
  std::string reason;                     // "" = the usual phrase for `status`
  std::size_t every = 1;                  // flap
  std::size_t oversized_bytes = 20u << 20;
  // drop_entries: the guests left out of each list: those of `drop_vmids`
  // that it holds, or when that is empty the `drop` with the lowest vmids.
  std::size_t drop = 1;
  std::set<int> drop_vmids;
};

struct RecordedRequest {
  std::string method;
  std::string path;          // without the query string
  std::string query;         // raw, "" when none
  int status = 0;            // what it was answered with (0: no answer, e.g. hang)
  std::string proxied_from;  // the node whose host forwarded it here, "" when direct
};

struct PveHostOptions {
  std::string bind_address = "127.0.0.1";
  int port = 0;  // 0: any free port
  bool also_ipv6_loopback = false;
  std::string cert_pem_path;  // the node certificate (TestPki::issue)
  std::string key_pem_path;
  std::string fingerprint;  // its SHA-256 fingerprint, shown in GET /nodes
};

class PveHost {
 public:
  PveHost(PveCluster& cluster, std::string node, PveHostOptions options);
  ~PveHost();
  PveHost(const PveHost&) = delete;
  PveHost& operator=(const PveHost&) = delete;

  void start();  // throws when it cannot listen
  void stop();
  const std::string& node() const { return node_; }
  int port() const { return server_.port(); }
  // "https://127.0.0.1:PORT" (IPv6 addresses in brackets).
  std::string url() const;

  // --- faults (one at a time; a new one replaces the old) ---
  void set_fault(const Fault& fault);
  void clear_fault();
  std::optional<Fault> fault() const;
  bool down() const;

  // --- request counting ---
  // "METHOD /api2/json/path" (no query string) -> number of requests received.
  std::map<std::string, std::size_t> counts() const;
  std::size_t count(const std::string& method_and_path) const;
  std::size_t total_requests() const;
  std::vector<RecordedRequest> requests() const;  // in arrival order (the first 100000)
  void reset_counts();

  // How many TCP connections the host has accepted (keep-alive reuse shows here).
  std::size_t connections_accepted() const { return server_.connections_accepted(); }
  // TCP payload bytes from and to clients, TLS included (WireServer).
  std::uint64_t bytes_received() const { return server_.bytes_received(); }
  std::uint64_t bytes_sent() const { return server_.bytes_sent(); }

  // A request that another host of the cluster forwards here.
  void record_proxied(const std::string& method, const std::string& path, const std::string& query,
                      const std::string& from, int status);

 private:
  struct Call;
  struct Identity;

  WireResponse handle(const WireRequest& req);
  WireResponse answered(const WireRequest& req, WireResponse res);  // records it
  // `lie`: an empty_list or drop_entries fault to tell in a guest list.
  WireResponse answer(const WireRequest& req, const Fault* lie = nullptr);
  WireResponse fault_response(const Fault& f, FaultKind action, const WireRequest& req,
                              std::uint64_t epoch);
  void record(RecordedRequest r);

  PveCluster& cluster_;
  std::string node_;
  PveHostOptions options_;
  WireServer server_;
  FaultSlot<Fault> fault_{server_};
  RequestLog<RecordedRequest> log_;  // counted by "METHOD path"
};

}  // namespace pha::sim
