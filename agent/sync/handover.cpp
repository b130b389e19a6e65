#include "agent/sync/handover.hpp"

#include "agent/sync/plan.hpp"

namespace pha {

Result<PeerRow> parse_peer_row(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("vmid") || !body["vmid"].is_number_integer()) {
    return Error{ErrorKind::bad_reply, "the answer has no vmid"};
  }
  PeerRow r;
  r.vmid = body["vmid"].get<std::int64_t>();
  if (const auto name = body.find("name"); name != body.end() && name->is_string()) {
    r.name = name->get<std::string>();
  }
  if (const auto type = body.find("type"); type != body.end() && type->is_string()) {
    r.type = type->get<std::string>();
  }
  const auto account = body.find("accountdb");
  if (account != body.end() && account->is_object()) {
    if (const auto id = account->find("row_id"); id != account->end() && id->is_number_integer()) {
      r.row_id = id->get<std::int64_t>();
    }
  }
  return r;
}

std::optional<std::string> refuse_peer_row(const PeerRow& answer, const Guest& guest,
                                           const std::vector<AccountDbRow>& listed,
                                           const std::map<std::int64_t, AccountDbRow>& known) {
  if (answer.vmid != guest.vmid) {
    return "the peer answered about VMID " + std::to_string(answer.vmid);
  }
  if (!answer.row_id || *answer.row_id <= 0) {
    return "the peer knows no row of it";
  }
  const auto id = *answer.row_id;
  if (answer.name != guest.name) {
    return "the peer's name for it is not the one Proxmox shows here";
  }
  if (answer.type != std::string(to_string(guest.type))) {
    return "the peer's type for it is not the one Proxmox shows here";
  }
  for (const auto& r : listed) {
    if (r.id == id && r.vmid != guest.vmid) {
      return "list_vms shows row " + std::to_string(id) + " for VMID " + std::to_string(r.vmid);
    }
  }
  for (const auto& [vmid, r] : known) {
    if (r.id == id && vmid != guest.vmid) {
      return "row " + std::to_string(id) + " is the row of VMID " + std::to_string(vmid);
    }
  }
  return std::nullopt;
}

// Each decision's name and type, and the type of each known row's guest
// for the cycles after it has left the node.
void name_guests(const PlanInput& in, Plan& plan) {
  for (const auto& g : in.guests) {
    auto& d = plan.decisions[g.vmid];
    d.name = g.name;
    d.type = g.type;
  }
  for (const auto& [vmid, row] : plan.memory.rows) {
    const auto d = plan.decisions.find(vmid);
    if (d != plan.decisions.end() && d->second.type) {
      plan.memory.types[vmid] = *d->second.type;
    } else if (const auto t = in.memory.types.find(vmid); t != in.memory.types.end()) {
      plan.memory.types[vmid] = t->second;
    }
  }
  for (auto& [vmid, d] : plan.decisions) {
    if (d.present) {
      continue;
    }
    if (const auto row = plan.memory.rows.find(vmid); row != plan.memory.rows.end()) {
      d.name = row->second.name;
    }
    if (const auto t = plan.memory.types.find(vmid); t != plan.memory.types.end()) {
      d.type = t->second;
    }
  }
}

}  // namespace pha
