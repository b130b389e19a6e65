// ProxmoxClient's reads of this node's guests (docs/proxmox.md, docs/failover.md
// "Proxmox hosts"): the lists of the node's own API with the guests' details,
// or the cluster-wide fallback from a peer. The calls, authentication and the
// permission check are in client.cpp.

#include <algorithm>
#include <set>
#include <utility>

#include "agent/core/text.hpp"
#include "agent/platform/logging.hpp"
#include "agent/proxmox/client.hpp"

namespace pha {

namespace {

std::string type_path(GuestType t) {
  return std::string(to_string(t));
}

// The two sides of a hedged read of the node's guests.
struct NodeLists {
  Status status;
  GuestRead read;
  std::size_t unattributed = 0;
};
struct Either {
  std::optional<NodeLists> lists;
  std::optional<Result<GuestList>> cluster;
};

}  // namespace

std::string_view to_string(GuestSource s) {
  return s == GuestSource::node ? "node" : "cluster";
}

std::string ProxmoxClient::empty_node_hint(const std::string& node) const {
  std::optional<bool> lacks_audit;
  {
    std::lock_guard lock(permissions_mutex_);
    if (permissions_.checked) {
      lacks_audit = std::any_of(permissions_.missing.begin(), permissions_.missing.end(),
                                [](const auto& m) { return m.privilege == "VM.Audit"; });
    }
  }
  const std::string none = "Proxmox shows no guests on node " + node;
  if (lacks_audit.has_value()) {
    // Known: either the node has no guests, or the privilege is missing.
    return *lacks_audit ? none +
                              ": the API user or token lacks VM.Audit on /vms "
                              "(proxmox_privilege_missing says how to grant it)"
                        : "";
  }
  if (!credentials().uses_token()) {
    return "";
  }
  return none +
         "; if it has some, the API token may lack VM.Audit (a privilege-separated token needs "
         "its own permissions, e.g. the PVEAuditor role on /vms)";
}

bool ProxmoxClient::read_notes(const Guest& g, const std::string& base, Details& d) {
  auto conf = get_once(base + "/config");
  if (!conf.ok()) {
    log::debug("proxmox_details", "config not read",
               {{"vmid", g.vmid}, {"error", conf.error().message}});
    return false;
  }
  auto notes = parse_config_description(*conf);
  if (!notes) {
    log::debug("proxmox_details", "config not understood",
               {{"vmid", g.vmid}, {"error", notes.error().message}});
    return false;
  }
  d.notes = *notes;
  return true;
}

bool ProxmoxClient::read_address(const Guest& g, const std::string& base, Details& d) {
  const bool qemu = g.type == GuestType::qemu;
  auto ifs = get_once(base + (qemu ? "/agent/network-get-interfaces" : "/interfaces"));
  if (ifs.ok()) {
    auto ip = qemu ? parse_qemu_agent_ipv4(*ifs) : parse_lxc_interfaces_ipv4(*ifs);
    if (ip) {
      d.ip = *ip;
    }
    return true;
  }
  const auto& e = ifs.error();
  if (qemu && e.status == 403) {
    // The guest agent call needs VM.GuestAgent.Audit (PVE 9, in
    // PVEAuditor) or VM.Monitor (PVE 8, not in PVEAuditor): a permanent
    // answer, cached, so that each running VM does not cost a refused call
    // every cycle. Said once per run, unless the permission check did.
    if (!agent_denied_logged_.exchange(true)) {
      log::warn("proxmox_agent_denied",
                "the QEMU guest agent call is not permitted: guest IP addresses stay empty "
                "(the reason names the privilege it needs)",
                {{"vmid", g.vmid}, {"reason", e.message}});
    }
    return true;
  }
  // A 500 from the guest agent call means no agent runs: that is an
  // answer, cached like any other. Anything else is tried again.
  return qemu && e.kind == ErrorKind::server && e.status == 500;
}

void ProxmoxClient::read_details(Guest& g, GuestRead& read) {
  const GuestKey key{g.type, g.vmid};
  const auto now = clock_.now();
  const auto it = details_.find(key);
  if (it != details_.end() && it->second.status == g.status &&
      now - it->second.read_at < options().details_ttl) {
    g.notes = it->second.notes;
    g.ip_address = it->second.ip;
    return;
  }
  const auto before = requests_.load();
  const std::string base =
      "/nodes/" + g.node + "/" + type_path(g.type) + "/" + std::to_string(g.vmid);
  Details d{g.status, now, std::nullopt, std::nullopt};
  const bool notes_read = read_notes(g, base, d);
  const bool complete = (!g.running() || read_address(g, base, d)) && notes_read;
  read.detail_requests += requests_ - before;
  if (!complete && it != details_.end()) {
    // Keep what we knew rather than forgetting it on a passing failure.
    d.notes = d.notes ? d.notes : it->second.notes;
    d.ip = d.ip ? d.ip : it->second.ip;
  }
  g.notes = d.notes;
  g.ip_address = d.ip;
  if (complete) {
    details_[key] = std::move(d);
  }
}

Result<GuestList> ProxmoxClient::read_cluster_guests(const std::string& hedge_of) {
  auto res =
      call("GET", "/cluster/resources?type=vm", "", {.any_target = true, .hedge_of = hedge_of});
  if (!res.ok()) {
    return res.error();
  }
  auto list = parse_cluster_resources(*res);
  if (!list) {
    const auto host = options().host.str();
    return Error{ErrorKind::bad_reply,
                 "GET /cluster/resources on " + host +
                     ": the answer is not understood: " + list.error().message,
                 "GET", host + "/cluster/resources"};
  }
  return list;
}

Result<GuestRead> ProxmoxClient::read_from_cluster(GuestRead r, const std::string& local_error,
                                                   std::optional<Result<GuestList>> fetched) {
  const auto opts = options();
  auto cluster = fetched ? std::move(*fetched) : read_cluster_guests();
  if (!cluster.ok()) {
    auto e = cluster.error();
    if (!local_error.empty()) {
      e.message = local_error + "; the cluster-wide fallback failed too: " + e.message;
    }
    return e;
  }
  count_clamped(cluster->clamped);
  r.source = GuestSource::cluster;
  r.guests.clear();
  r.rejected = cluster->rejected;
  r.rejected_vmids = cluster->rejected_vmids;
  for (auto& g : cluster->guests) {
    if (g.node != r.node || (g.type == GuestType::qemu && !opts.sync_qemu) ||
        (g.type == GuestType::lxc && !opts.sync_lxc)) {
      continue;
    }
    // A guest in state `unknown` (its node is offline for the cluster) is
    // reported as the skeleton it is: no values are known now, so none are
    // sent (plan.hpp), and it is neither stopped nor gone.
    if (!g.unknown) {
      // Details are node-local calls: keep the cached ones.
      if (const auto d = details_.find({g.type, g.vmid}); d != details_.end()) {
        g.notes = d->second.notes;
        g.ip_address = d->second.ip;
      }
    }
    r.guests.push_back(std::move(g));
  }
  // A fallback read never makes a guest look gone (plan.hpp), whatever it holds.
  r.complete = false;
  r.incomplete_reason = "read from /cluster/resources of a peer, not from the node's own API";
  answered_read();
  return r;
}

void ProxmoxClient::count_clamped(const std::map<std::string, std::uint64_t>& clamped) {
  if (clamped.empty()) {
    return;
  }
  std::lock_guard lock(clamped_mutex_);
  for (const auto& [field, n] : clamped) {
    clamped_[field] += n;
  }
}

std::map<std::string, std::uint64_t> ProxmoxClient::clamped() const {
  std::lock_guard lock(clamped_mutex_);
  return clamped_;
}

bool ProxmoxClient::lacks_vm_audit() const {
  std::lock_guard lock(permissions_mutex_);
  return permissions_.checked &&
         std::any_of(permissions_.missing.begin(), permissions_.missing.end(),
                     [](const MissingPrivilege& m) { return m.privilege == "VM.Audit"; });
}

std::string ProxmoxClient::visibility_gap() const {
  std::lock_guard lock(permissions_mutex_);
  if (!permissions_.checked) {
    return "the privileges of the Proxmox user or token are not known (" +
           permissions_.error.value_or("not read yet") +
           "): a guest it may not see would be missing from the lists";
  }
  for (const auto& m : permissions_.missing) {
    if (m.privilege == "VM.Audit") {
      return "the Proxmox user or token lacks VM.Audit on /vms (propagated): the lists show only "
             "the guests it may see";
    }
  }
  return "";
}

Result<bool> ProxmoxClient::may_see(std::int64_t vmid) {
  const std::string path = "/vms/" + std::to_string(vmid);
  auto r = call("GET", "/access/permissions?path=" + url_encode(path), "",
                {.retry = false, .any_target = true});
  if (!r.ok()) {
    return r.error();
  }
  auto granted = parse_permissions(*r);
  if (!granted) {
    return Error{ErrorKind::bad_reply,
                 "GET /access/permissions?path=" + path +
                     ": the answer is not understood: " + granted.error().message};
  }
  // The answer names the path asked for; privileges elsewhere say nothing about it.
  const auto at = granted->find(path);
  return at != granted->end() && at->second.contains("VM.Audit");
}

Status ProxmoxClient::read_lists(GuestRead& r, std::size_t& unattributed) {
  const auto opts = options();
  std::vector<GuestType> types;
  if (opts.sync_qemu) {
    types.push_back(GuestType::qemu);
  }
  if (opts.sync_lxc) {
    types.push_back(GuestType::lxc);
  }
  for (auto type : types) {
    const std::string path = "/nodes/" + r.node + "/" + type_path(type);
    auto res = get(path);
    if (!res) {
      return res.error();
    }
    auto list = parse_guest_list(*res, type, r.node);
    if (!list) {
      return Error{ErrorKind::bad_reply,
                   "GET " + path + " on " + opts.host.str() +
                       ": the answer is not understood: " + list.error().message,
                   "GET", opts.host.str() + path};
    }
    for (const auto& rejected : list->rejected) {
      r.rejected.push_back(std::string(to_string(type)) + " " + rejected);
    }
    r.rejected_vmids.insert(list->rejected_vmids.begin(), list->rejected_vmids.end());
    unattributed += list->unattributed;
    count_clamped(list->clamped);
    r.guests.insert(r.guests.end(), list->guests.begin(), list->guests.end());
  }
  return {};
}

ProxmoxClient::RacedLists ProxmoxClient::race_lists(GuestRead& read, std::size_t& unattributed) {
  auto* hedging = failover_.hedging;
  const auto host = options().host.str();
  const std::string kind = "GET node lists";
  const bool may = hedging != nullptr && failover_.can_fall_back && failover_.can_fall_back();
  const auto delay = may ? hedging->delay(host, kind) : std::nullopt;
  if (!delay) {
    return {read_lists(read, unattributed), {}};
  }
  auto raced = race<Either>(
      flights_, clock_, *delay, [hedging] { return hedging->take(); },
      [this, node = read.node, hedging, host, kind] {
        NodeLists l;
        l.read.node = node;
        const auto t0 = clock_.now();
        l.status = read_lists(l.read, l.unattributed);
        if (l.status.ok()) {
          hedging->answered(
              host, kind, std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - t0));
        }
        return Either{std::move(l), std::nullopt};
      },
      [this, host] {
        return Either{std::nullopt, read_cluster_guests(host)};
      },
      [](const Either& e) {
        if (e.lists) {
          return e.lists->status.ok() || !is_host_failure(e.lists->status.error().kind);
        }
        return e.cluster->ok();
      });
  RacedLists out;
  if (raced.second) {
    out.cluster = std::move(raced.second->cluster);
  }
  if (raced.winner == 1) {
    hedging->won();
    out.cluster_won = true;
    if (failover_.local_failed) {
      // As good as a timeout: the node's API is not answering while a peer does.
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(raced.first_ran);
      failover_.local_failed("timeout: no answer from the node's own API within " +
                             std::to_string(ms.count()) +
                             " ms, while a peer answered the hedged cluster-wide read");
    }
    return out;
  }
  auto& lists = *raced.first->lists;
  read.guests = std::move(lists.read.guests);
  read.rejected = std::move(lists.read.rejected);
  read.rejected_vmids = std::move(lists.read.rejected_vmids);
  unattributed = lists.unattributed;
  out.lists = std::move(lists.status);
  return out;
}

void ProxmoxClient::believe_lists(GuestRead& r, std::size_t unattributed) {
  // A list shorter than the last one may be a lost privilege, not gone
  // guests (Proxmox filters lists by VM.Audit and answers 200): ask what the
  // user or token may do before believing it. While VM.Audit is known to be
  // missing, every read asks, so that its return counts at once. And a read
  // before any check (--list-guests) asks, now that the credentials worked.
  if ((last_node_read_ && r.guests.size() < *last_node_read_) || lacks_vm_audit()) {
    std::lock_guard lock(permissions_mutex_);
    permissions_due_ = CheckDue::now;
  }
  check_permissions();  // only when due
  last_node_read_ = r.guests.size();
  r.incomplete_reason = visibility_gap();
  if (r.incomplete_reason.empty() && unattributed > 0) {
    r.incomplete_reason = std::to_string(unattributed) +
                          " list entries were not understood and name no VMID: any guest could "
                          "be among them";
  }
  r.complete = r.incomplete_reason.empty();
  if (options().vm_details) {
    std::set<GuestKey> present;
    for (auto& g : r.guests) {
      present.insert({g.type, g.vmid});
      read_details(g, r);
    }
    std::erase_if(details_, [&](const auto& entry) { return !present.contains(entry.first); });
  }
  if (r.guests.empty()) {
    r.hint = empty_node_hint(r.node);
  }
}

Result<GuestRead> ProxmoxClient::read_guests() {
  GuestRead r;
  const auto start = clock_.now();
  const auto before = requests_.load();
  const auto& failover = failover_;
  r.node = node_name();
  auto finish = [&](Result<GuestRead> out) -> Result<GuestRead> {
    if (out) {
      out->requests = requests_ - before;
      out->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - start);
    }
    return out;
  };
  if (failover.use_local && !failover.use_local()) {
    return finish(read_from_cluster(std::move(r), ""));
  }
  std::size_t unattributed = 0;
  auto raced = race_lists(r, unattributed);
  if (raced.cluster_won) {
    return finish(read_from_cluster(std::move(r), "", std::move(raced.cluster)));
  }
  if (const auto& listed = raced.lists; !listed) {
    const auto& e = listed.error();
    if (is_host_failure(e.kind) && failover.can_fall_back && failover.can_fall_back()) {
      failover.local_failed(std::string(to_string(e.kind)) + ": " + e.message);
      return finish(read_from_cluster(std::move(r), e.message, std::move(raced.cluster)));
    }
    return e;
  }
  believe_lists(r, unattributed);
  answered_read();
  return finish(std::move(r));
}

}  // namespace pha
