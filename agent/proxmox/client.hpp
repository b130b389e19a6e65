#pragma once
// The Proxmox VE API client of this node: authentication (API token, or
// ticket login with renewal), the node's name, the guest lists and the cached
// per-guest details. Quiet neighbour: one request at a time, no full=1, and
// details only for guests that are new, changed status, or whose cached
// details have expired.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"
#include "agent/core/url.hpp"
#include "agent/net/http.hpp"
#include "agent/proxmox/guest.hpp"
#include "agent/proxmox/parse.hpp"

namespace pha {

struct ProxmoxCredentials {
  std::string token_id;  // user@realm!name: token auth when set
  std::string token_secret;
  std::string user;  // user@realm, for ticket login
  std::string password;
  bool uses_token() const { return !token_id.empty(); }
};

struct ProxmoxClientOptions {
  Url host;  // the node's own API (PROXMOX_HOST)
  ProxmoxCredentials credentials;
  std::string node_name;  // empty: auto
  bool sync_qemu = true;
  bool sync_lxc = true;
  bool vm_details = true;
  std::chrono::seconds details_ttl{3600};
  // The short host name, the last resort for the node name (injected for tests).
  std::function<std::string()> short_hostname;
};

// Sends one request, with whatever retry policy the caller wires in.
using Transport = std::function<HttpOutcome(const HttpRequest&)>;

// The outcome of one API call, with a message for operators.
struct ApiResult {
  FailureKind kind = FailureKind::network;
  int status = 0;
  std::string body;
  std::string message;  // empty on success
  bool ok() const { return kind == FailureKind::ok; }
};

struct GuestRead {
  bool ok = false;
  FailureKind kind = FailureKind::ok;
  std::string error;  // why the read failed, for an operator
  std::string node;
  std::string source;  // "node": /nodes/{node}/qemu+lxc of the node's own API
  std::vector<Guest> guests;
  // False when some entries could not be understood: such a read must not
  // make a guest look deleted.
  bool complete = true;
  std::vector<std::string> rejected;
  std::string hint;  // e.g. the VM.Audit hint when no guest is visible
  std::uint64_t requests = 0;
  std::uint64_t detail_requests = 0;
  std::chrono::milliseconds elapsed{0};
};

class ProxmoxClient {
 public:
  ProxmoxClient(ProxmoxClientOptions options, Transport transport, Clock& clock);

  // This node's name: PROXMOX_NODE_NAME, else the local entry of
  // /cluster/status, else the short host name.
  std::string node_name();
  // Reads this node's guests (the lists of SYNC_GUEST_TYPES, then details).
  GuestRead read_guests();
  // GET /cluster/resources?type=vm: where every guest of the cluster is (any
  // node answers it from replicated state). Used to tell migrated guests from
  // deleted ones, and as the fallback source when the local API is down.
  struct ClusterRead {
    bool ok = false;
    FailureKind kind = FailureKind::ok;
    std::string error;
    GuestList list;
  };
  ClusterRead read_cluster_guests();
  // GET /api2/json{path} with authentication; re-logs in once on a 401 with a ticket.
  ApiResult get(const std::string& path);
  // The health check of resilience.md: GET /version, one attempt, outside
  // the retry budget. Safe to call from another thread while a cycle runs
  // (calls are serialised: one request at a time).
  ApiResult check_health();

  std::uint64_t requests() const { return requests_.load(); }
  const ProxmoxClientOptions& options() const { return options_; }

 private:
  struct Details {
    std::string status;  // the guest's status when they were read
    Clock::TimePoint read_at;
    std::optional<std::string> notes;
    std::optional<std::string> ip;
  };
  using GuestKey = std::pair<GuestType, std::int64_t>;

  ApiResult call(const std::string& method, const std::string& path, const std::string& form_body,
                 bool retry = true, bool health_check = false);
  // A best-effort GET (guest details): one attempt, outside the retry budget.
  ApiResult get_once(const std::string& path);
  HttpOutcome send(HttpRequest request);
  ApiResult login(bool renew);
  bool ensure_ticket(ApiResult& failure);
  ApiResult failure(const std::string& method, const std::string& path,
                    const HttpOutcome& outcome) const;
  void read_details(Guest& guest, GuestRead& read);
  std::string url(const std::string& path) const;

  ProxmoxClientOptions options_;
  Transport transport_;
  Clock& clock_;
  std::atomic<std::uint64_t> requests_{0};
  std::mutex call_mutex_;  // one request at a time; guards ticket_
  std::optional<std::string> node_name_;
  std::optional<Ticket> ticket_;
  Clock::TimePoint ticket_at_{};
  std::map<GuestKey, Details> details_;
};

}  // namespace pha
