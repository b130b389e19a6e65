#pragma once
// The Proxmox VE API client of this node: authentication (API token, or
// ticket login with renewal), the node's name, the guest lists and the cached
// per-guest details. Quiet neighbour: no full=1, and
// details only for guests that are new, changed status, or whose cached
// details have expired.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/live.hpp"
#include "agent/core/result.hpp"
#include "agent/core/url.hpp"
#include "agent/net/hedge.hpp"
#include "agent/net/http.hpp"
#include "agent/proxmox/guest.hpp"
#include "agent/proxmox/parse.hpp"
#include "agent/proxmox/permissions.hpp"
#include "agent/proxmox/tasks.hpp"

namespace pha {

struct ProxmoxCredentials {
  std::string token_id;  // user@realm!name: token auth when set
  std::string token_secret;
  std::string user;  // user@realm, for ticket login
  std::string password;
  bool uses_token() const { return !token_id.empty(); }
  bool operator==(const ProxmoxCredentials&) const = default;
};

// The client reads its options at each use (Live<ProxmoxClientOptions>): a
// reloaded host, node name, guest types or details setting applies from the
// next request or read on.
struct ProxmoxClientOptions {
  Url host;  // the node's own API (PROXMOX_HOST)
  // Read at each request: credentials from a reloaded configuration (a
  // changed password or token) are used from the next request on; a changed
  // login drops the ticket of the old one.
  Live<ProxmoxCredentials> credentials = ProxmoxCredentials{};
  std::string node_name;  // empty: auto
  bool sync_qemu = true;
  bool sync_lxc = true;
  bool vm_details = true;
  std::chrono::seconds details_ttl{3600};
  bool discover_hosts = true;  // PROXMOX_DISCOVER_HOSTS: a reason to need Sys.Audit
  bool watch_tasks = false;    // CHANGE_POLL_INTERVAL > 0: another one
  // The short host name, the last resort for the node name (injected for tests).
  std::function<std::string()> short_hostname;
};

// How the read of this node's guests fails over (docs/failover.md "Proxmox
// hosts"): the node's own API while it is usable, otherwise
// /cluster/resources from a peer. Unset members: the local API only.
struct ProxmoxFailover {
  std::function<bool()> use_local;                              // read from the node's own API now?
  std::function<bool()> can_fall_back;                          // is there a peer to ask?
  std::function<void(const std::string& reason)> local_failed;  // the local read failed
  // The Proxmox upstream's hedging: the node's lists are hedged with the
  // cluster-wide read of a peer. Null: no hedging.
  HedgePolicy* hedging = nullptr;
};

// Whether an answer is Proxmox saying that it does not know the node a
// /nodes/{node}/ path names: 500 "hostname lookup '<node>' failed - ..."
// (pve-manager PVE/HTTPServer.pm remote_node_ip). That is a wrong node name
// (PROXMOX_NODE_NAME, or a renamed node): the same answer from every host,
// so neither a retry nor a failover helps; the upstream classifies it as a
// client failure (agent/upstream/proxmox_upstream.cpp).
bool is_unknown_node_answer(const HttpOutcome& o);

// Where a read of the node's guests came from: /nodes/{node}/qemu+lxc of the
// node's own API, or /cluster/resources from a peer (the fallback), where a
// guest of an offline node is reported as a skeleton without values.
enum class GuestSource { node, cluster };
std::string_view to_string(GuestSource s);

// A read of this node's guests that Proxmox answered.
struct GuestRead {
  std::string node;
  GuestSource source = GuestSource::node;
  std::vector<Guest> guests;
  // True only when the read shows every guest of the node: each entry was
  // understood, and the user or token may see every guest (VM.Audit on /vms,
  // propagated, by the permission check; Proxmox leaves out what it may not
  // see instead of refusing). Only such a read makes a guest look gone.
  bool complete = true;
  std::string incomplete_reason;  // why not, for the report; "" when complete
  std::vector<std::string> rejected;
  // Entries that were not understood but whose VMID was: those VMIDs are
  // unknown this read (never gone), the rest of the read stands.
  std::set<std::int64_t> rejected_vmids;
  std::string hint;  // e.g. the VM.Audit hint when no guest is visible
  std::uint64_t requests = 0;
  std::uint64_t detail_requests = 0;
  std::chrono::milliseconds elapsed{0};
};

class ProxmoxClient {
 public:
  // `failover` decides where the guests are read from; empty: always this node's own API.
  ProxmoxClient(Live<ProxmoxClientOptions> options, Transport transport, Clock& clock,
                ProxmoxFailover failover = {});

  // This node's name: PROXMOX_NODE_NAME, else the local entry of
  // /cluster/status (of PROXMOX_HOST: learnt again when it changes), else
  // the short host name.
  std::string node_name();
  // Reads this node's guests (the lists of SYNC_GUEST_TYPES, then details).
  Result<GuestRead> read_guests();
  // GET /cluster/resources?type=vm: where every guest of the cluster is (any
  // node answers it from replicated state). Used to tell migrated guests from
  // deleted ones, and as the fallback source when the local API is down.
  // `hedge_of`: a host to leave out (the one a hedged read races against).
  Result<GuestList> read_cluster_guests(const std::string& hedge_of = {});
  // GET /api2/json{path} with authentication; re-logs in once on a 401 with
  // a ticket. The body, or why not.
  Result<std::string> get(const std::string& path);
  // The health check of docs/failover.md "Health checks": GET /version on `host` (a base URL;
  // empty: PROXMOX_HOST), one attempt, outside the retry budget. Safe to
  // call from another thread while a cycle runs (the transport sends one
  // request at a time to each host).
  Status check_health(const std::string& host = {});
  // GET /cluster/status from any host (discovery).
  Result<ClusterStatus> cluster_status();
  // GET /cluster/tasks from any host, one attempt: the cluster's recent
  // tasks (tasks.hpp), asked when a guest is new to the node.
  Result<TaskList> cluster_tasks();
  // What the user or token may do (permissions.hpp), when due: once, again
  // after the credentials changed, and once more after a good read
  // when Proxmox could not be reached for it. GET /version and
  // /access/permissions on the host in use, one attempt each; each missing
  // privilege is logged once (proxmox_privilege_missing), an answer that
  // cannot be read once (proxmox_permissions_unknown). Never fails anything.
  void check_permissions();
  PermissionStatus permissions() const;
  // Whether the user or token may still see guest `vmid` (VM.Audit on
  // /vms/{vmid}, through /vms, a pool or the guest's own ACL): GET
  // /access/permissions?path=/vms/{vmid}, one attempt. Asked before a guest
  // is marked gone: a guest it may not see is hidden, not gone.
  Result<bool> may_see(std::int64_t vmid);
  // Entries whose values were clamped since start (parse.hpp), by field.
  std::map<std::string, std::uint64_t> clamped() const;

  std::uint64_t requests() const { return requests_.load(); }
  // The options in force (read again at each call).
  ProxmoxClientOptions options() const { return options_(); }

 private:
  struct Details {
    std::string status;  // the guest's status when they were read
    Clock::TimePoint read_at;
    std::optional<std::string> notes;
    std::optional<std::string> ip;
  };
  using GuestKey = std::pair<GuestType, std::int64_t>;

  struct CallOptions {
    bool retry = true;          // false: best effort (HttpRequest::retry)
    bool health_check = false;  // HttpRequest::health_check
    bool any_target = false;    // HttpRequest::any_target: cluster-wide state
    std::string host;           // the base URL; empty: PROXMOX_HOST
    std::string hedge_of;       // HttpRequest::hedge_of
  };
  Result<std::string> call(const std::string& method, const std::string& path,
                           const std::string& form_body, const CallOptions& how);
  // `fetched`: the cluster's answer when a hedged read already has it.
  Result<GuestRead> read_from_cluster(GuestRead r, const std::string& local_error,
                                      std::optional<Result<GuestList>> fetched = {});
  // The node's lists, hedged with the cluster-wide read of a peer: the
  // lists' status, and the cluster's answer when the hedge was sent.
  struct RacedLists {
    Status lists;
    std::optional<Result<GuestList>> cluster;
    bool cluster_won = false;
  };
  RacedLists race_lists(GuestRead& read, std::size_t& unattributed);
  // A read of the node's own lists: whether it can show every guest (the
  // permission check), and the guests' details.
  void believe_lists(GuestRead& read, std::size_t unattributed);
  // A best-effort GET (guest details): one attempt, outside the retry budget.
  Result<std::string> get_once(const std::string& path);
  HttpOutcome send(const HttpRequest& request);
  Status login(bool renew);
  Status ensure_ticket();
  // `credentials`: the ones the request was sent with (login() holds ticket_mutex_).
  Error failure(const std::string& method, const std::string& path, const HttpOutcome& outcome,
                const ProxmoxCredentials& credentials) const;
  // The lists of SYNC_GUEST_TYPES from the node's own API, into `read`.
  Status read_lists(GuestRead& read, std::size_t& unattributed);
  void read_details(Guest& guest, GuestRead& read);
  // One guest's notes (its config) and, for a running one, its address; each
  // says whether its answer is final (cached until the guest changes status).
  bool read_notes(const Guest& guest, const std::string& base, Details& details);
  bool read_address(const Guest& guest, const std::string& base, Details& details);
  ProxmoxCredentials credentials() const;  // the ones in use, taken under ticket_mutex_
  // Reads the options' credentials; a change drops the ticket and makes the
  // permission check due.
  ProxmoxCredentials current_credentials();
  // The answers of the permission check, or why there is none (`reached`:
  // whether Proxmox answered at all).
  struct PermissionsRead {
    Result<PermissionMap> granted = Error{ErrorKind::unavailable, "not read"};
    VersionInfo version;
    bool reached = false;
  };
  PermissionsRead read_permissions();
  PermissionNeeds permission_needs() const;
  void record_permissions(const PermissionsRead& read);
  std::string empty_node_hint(const std::string& node) const;
  // Why a read of the node's lists cannot show every guest ("" when it can),
  // from the permission check.
  std::string visibility_gap() const;
  bool lacks_vm_audit() const;  // the last permission answer said so
  void count_clamped(const std::map<std::string, std::uint64_t>& clamped);
  // A read Proxmox answered: a check that could not reach it is due again.
  void answered_read();
  std::string url(const std::string& path, const std::string& host = {}) const;

  Live<ProxmoxClientOptions> options_;
  Transport transport_;
  Clock& clock_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<bool> agent_denied_logged_{false};
  // Guards ticket_ and in_use_. Requests are not
  // serialised here: the transport sends one request at a time to each host
  // (quiet neighbour).
  mutable std::mutex ticket_mutex_;
  std::optional<std::string> node_name_;
  std::string node_name_host_;  // the PROXMOX_HOST that node_name_ was learnt from
  ProxmoxCredentials in_use_;
  std::optional<Ticket> ticket_;
  Clock::TimePoint ticket_at_{};
  std::map<GuestKey, Details> details_;
  // The guests of the last read of the node's own lists; a read with fewer
  // makes the permission check run again before the read is believed.
  std::optional<std::size_t> last_node_read_;
  const ProxmoxFailover failover_;
  mutable std::mutex clamped_mutex_;
  std::map<std::string, std::uint64_t> clamped_;

  // The permission check's state, read by /status from another thread.
  enum class CheckDue { no, now, after_good_read };
  mutable std::mutex permissions_mutex_;
  CheckDue permissions_due_ = CheckDue::now;
  bool unknown_logged_ = false;
  PermissionStatus permissions_;
  Flights flights_;  // last: hedged reads use the members above
};

}  // namespace pha
