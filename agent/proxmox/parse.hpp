#pragma once
// Parsers of Proxmox VE API response bodies. They take data, not the world:
// pure functions of the body text, tested on captured real responses. They
// accept numbers sent as strings, 0/1 booleans, omitted and unknown fields,
// and reject garbage with a clear error instead of guessing.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.hpp"
#include "agent/proxmox/guest.hpp"

namespace pha {

// A guest list. An entry that cannot be a guest is not guessed at: it is
// named in `rejected`. When its VMID can still be read, only that VMID is
// unknown this read (`rejected_vmids`: it must not look deleted); an entry
// without a readable VMID could be any guest (`unattributed`: the whole read
// is partial). Values real Proxmox produces but that are out of range (a
// container's CPU share is a delta and can dip below zero) are clamped, not
// rejected, and counted per field in `clamped`.
struct GuestList {
  std::vector<Guest> guests;
  std::vector<std::string> rejected;
  std::set<std::int64_t> rejected_vmids;
  std::size_t unattributed = 0;
  std::map<std::string, std::uint64_t> clamped;  // field -> entries clamped
};

// GET /nodes/{node}/qemu or /nodes/{node}/lxc.
Result<GuestList> parse_guest_list(std::string_view body, GuestType type, std::string_view node);
// GET /cluster/resources[?type=vm]: the qemu and lxc entries of every node
// (other resource types are skipped); `unknown` guests are flagged.
Result<GuestList> parse_cluster_resources(std::string_view body);

struct ClusterNode {
  std::string name;
  std::string ip;
  bool online = false;
  bool local = false;
  long long nodeid = 0;
};
struct ClusterStatus {
  std::string cluster_name;  // empty on a standalone node
  std::vector<ClusterNode> nodes;
  const ClusterNode* local_node() const;
};
// GET /cluster/status.
Result<ClusterStatus> parse_cluster_status(std::string_view body);

struct VersionInfo {
  std::string version;
  std::string release;
};
// GET /version.
Result<VersionInfo> parse_version(std::string_view body);

struct Ticket {
  std::string ticket;
  std::string csrf_token;
  std::string username;
};
// POST /access/ticket.
Result<Ticket> parse_ticket(std::string_view body);

// GET /access/permissions (without `path`): the effective privileges of the
// authenticated user or token on each listed ACL path, and whether each
// propagates to the paths below ({"data": {"/vms": {"VM.Audit": 1}}}). A
// path without privileges is not listed. A malformed entry rejects the whole
// answer: a guess could report a privilege as missing that is not.
using PermissionMap = std::map<std::string, std::map<std::string, bool>>;
Result<PermissionMap> parse_permissions(std::string_view body);

// GET /nodes/{node}/{qemu|lxc}/{vmid}/config: the guest's notes.
Result<std::optional<std::string>> parse_config_description(std::string_view body);
// GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces: the first
// non-loopback, non-link-local IPv4 address.
Result<std::optional<std::string>> parse_qemu_agent_ipv4(std::string_view body);
// GET /nodes/{node}/lxc/{vmid}/interfaces ({"data": null} when stopped).
Result<std::optional<std::string>> parse_lxc_interfaces_ipv4(std::string_view body);

// Whether an IPv4 literal is usable as a guest's address (not loopback, not
// link-local, not unspecified).
bool is_reportable_ipv4(std::string_view ip);

}  // namespace pha
