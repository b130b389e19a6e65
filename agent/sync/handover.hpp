#pragma once
// Guests that move (docs/sync.md "Guests that move"): when a guest new to
// this node migrated from another node (a finished qmigrate or vzmigrate
// task there), the agent of that node is asked for the guest's row
// (GET /vms/{vmid}), and the row is written with this node's id: the row, and
// its customer, follow the guest. A peer is trusted like a node of the same
// cluster, no more: its answer is used only when it is about the VMID asked,
// agrees with what Proxmox says of the guest here (name and type), and names
// a row that no list_vms of this node shows for another guest.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/accountdb/types.hpp"
#include "agent/core/result.hpp"
#include "agent/proxmox/guest.hpp"

namespace pha {

struct SyncMemory;

// What a peer agent's GET /vms/{vmid} says of a guest.
struct PeerRow {
  std::int64_t vmid = 0;
  std::optional<std::int64_t> row_id;
  std::string name;
  std::optional<std::string> type;  // "qemu" or "lxc"
};
// The answer's body; an error when it is not the shape of docs/http-api.md
// "GET /vms".
Result<PeerRow> parse_peer_row(const nlohmann::json& body);

// Why the peer's answer cannot be used for `guest`, or nullopt when it can.
// `listed`: this cycle's list_vms (every node's rows it shows); `known`:
// the rows this agent knows.
std::optional<std::string> refuse_peer_row(const PeerRow& answer, const Guest& guest,
                                           const std::vector<AccountDbRow>& listed,
                                           const std::map<std::int64_t, AccountDbRow>& known);

// A guest's row taken over from the node it left.
struct Handover {
  std::int64_t row_id = 0;
  std::string from;  // the node it migrated from
  bool operator==(const Handover&) const = default;
};

// A guest that migrated here whose row could not be taken over: created as
// a new row, and said so (the event guest_row_not_handed_over).
struct HandoverFailure {
  std::string from;                    // the node it migrated from
  std::optional<std::int64_t> row_id;  // the row the peer named, if it named one
  std::string why;
  bool operator==(const HandoverFailure&) const = default;
};

}  // namespace pha
