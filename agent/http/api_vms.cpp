// GET /vms and GET /vms/{vmid}: the guests of the last Proxmox read, and for
// each its place in AccountDB (docs/http-api.md "GET /vms"): whether it is
// whitelisted, which rule keeps it out, its row, its last write, a pending
// retry, its missing mark, and the fields waiting to be sent.

#include <algorithm>
#include <charconv>

#include "agent/http/api.hpp"

namespace pha {

namespace {

using http::Response;
using nlohmann::json;

json or_null(const std::optional<std::int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

json or_null(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

bool in_accountdb(const GuestDecision& d) {
  return d.row_id.has_value();
}

std::string row_text(const GuestDecision& d) {
  if (!d.row_id) {
    return "not in AccountDB";
  }
  return "in AccountDB (row " + std::to_string(*d.row_id) +
         (d.row_listed ? ")" : ", known to the agent though list_vms left it out)");
}

// Why a guest is kept out, for a person.
std::string kept_out_text(const GuestDecision& d) {
  switch (d.kept_out_by) {
    case KeptOutBy::stopped:
      return "it is not running, and stopped guests are only created with "
             "CREATE_STOPPED_VMS=true";
    case KeptOutBy::template_guest:
      return "it is a template, and templates are only created with CREATE_STOPPED_VMS=true";
    case KeptOutBy::not_whitelisted:
      return d.row_id ? "its VMID is not in the node's whitelist, so its row is not updated"
                      : "its VMID is not in the node's whitelist (an empty whitelist allows no "
                        "create)";
    case KeptOutBy::whitelist_unknown:
      return "the whitelist is unknown (no usable copy), so only guests AccountDB has are "
             "updated and none is created";
    case KeptOutBy::none:
      break;
  }
  return "";
}

// One sentence: in AccountDB or not, and why.
std::string summary(const GuestAccount& a) {
  const auto& d = a.decision;
  const auto where = row_text(d);
  if (a.retry_pending && a.last_write) {
    return where + "; the last write failed, the next cycle retries it";
  }
  switch (d.kind) {
    case GuestDecisionKind::kept_out:
      return where + ": " + kept_out_text(d);
    case GuestDecisionKind::no_values:
      return where + "; its values are unknown this cycle (" +
             (d.reason.empty() ? std::string("fallback read") : d.reason) + "), nothing is sent";
    case GuestDecisionKind::held:
      return where + "; " + d.reason;
    case GuestDecisionKind::hidden:
      return where + "; gone from the read, but " + d.reason;
    case GuestDecisionKind::absent:
      return where + "; not in the last read of this node (" + std::to_string(d.missing_reads) +
             " complete read(s) without it)";
    case GuestDecisionKind::marked:
    case GuestDecisionKind::mark:
      return where + "; marked " + (d.row_status.empty() ? "missing" : d.row_status);
    case GuestDecisionKind::create:
    case GuestDecisionKind::update:
      return a.last_write ? where + "; written (" + d.reason + ")"
                          : where + "; to be written (" + d.reason + ")";
    case GuestDecisionKind::unchanged:
      break;
  }
  return where + "; up to date";
}

json last_write_json(const std::optional<WriteOutcome>& w) {
  if (!w) {
    return nullptr;
  }
  return {{"at", w->at},
          {"kind", to_string(w->kind)},
          {"result", write_result(*w)},
          {"reason", w->reason},
          {"error", w->ok ? json(nullptr) : json(w->error)}};
}

// The whole answer for one guest. `next_cycle`: when the retry runs (0: unknown).
json account_json(const GuestAccount& a, std::int64_t next_cycle) {
  const auto& d = a.decision;
  const bool marked = d.row_status == "deleted" || d.row_status == "migrated";
  return {
      {"in_accountdb", in_accountdb(d)},
      {"row_id", or_null(d.row_id)},
      {"row_status", or_null(d.row_status)},
      {"whitelisted", d.whitelisted ? json(*d.whitelisted) : json(nullptr)},
      {"row_listed", d.row_id ? json(d.row_listed) : json(nullptr)},
      {"decision", to_string(d.kind)},
      {"kept_out_by", or_null(std::string(to_string(d.kept_out_by)))},
      {"reason", or_null(d.reason)},
      {"summary", summary(a)},
      {"held", d.kind == GuestDecisionKind::held ? json{{"cycles", d.held_cycles}} : json(nullptr)},
      {"decided_at", a.decided_at},
      {"last_write", last_write_json(a.last_write)},
      {"retry",
       {{"pending", a.retry_pending},
        {"at", a.retry_pending && next_cycle != 0 ? json(next_cycle) : json(nullptr)}}},
      {"missing",
       {{"reads", d.missing_reads},
        {"since", or_null(a.missing_since)},
        {"marked", marked ? json(d.row_status) : json(nullptr)},
        {"marked_at", or_null(a.marked_at)}}},
      {"pending_fields", a.pending_fields},
  };
}

// The short form of /vms: enough for a list with the reason.
json account_brief(const GuestAccount& a) {
  const auto& d = a.decision;
  return {{"in_accountdb", in_accountdb(d)},
          {"row_id", or_null(d.row_id)},
          {"whitelisted", d.whitelisted ? json(*d.whitelisted) : json(nullptr)},
          {"decision", to_string(d.kind)},
          {"kept_out_by", or_null(std::string(to_string(d.kept_out_by)))},
          {"last_result", a.last_write ? json(write_result(*a.last_write)) : json(nullptr)},
          {"retry_pending", a.retry_pending}};
}

const GuestAccount* account_of(const VmsSnapshot& v, std::int64_t vmid) {
  if (!v.accounts) {
    return nullptr;
  }
  const auto it = v.accounts->find(vmid);
  return it == v.accounts->end() ? nullptr : &it->second;
}

std::optional<std::int64_t> parse_vmid(const std::string& id) {
  std::int64_t vmid = 0;
  if (id.empty() || id.size() > 12 ||
      !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::from_chars(id.data(), id.data() + id.size(), vmid);
  return vmid;
}

Response json_answer(const json& body) {
  Response r;
  r.status = 200;
  r.body = body.dump();
  return r;
}

}  // namespace

Response Api::vms() const {
  const auto v = ctx_.store->vms();
  if (!v) {
    return json_answer({{"vms", json::array()}, {"count", 0}, {"as_of", nullptr}});
  }
  auto list = guests_json(v->guests);
  for (auto& g : list) {
    const auto* a = account_of(*v, g["vmid"].get<std::int64_t>());
    g["accountdb"] = a != nullptr ? account_brief(*a) : json(nullptr);
  }
  return json_answer({{"vms", std::move(list)}, {"count", v->guests.size()}, {"as_of", v->as_of}});
}

Response Api::vm(const std::string& id) const {
  const auto vmid = parse_vmid(id);
  if (!vmid) {
    return http::error_response(404, "not_found", "no guest with VMID " + id);
  }
  const auto v = ctx_.store->vms();
  if (!v) {
    return http::error_response(404, "not_found",
                                "no guest with VMID " + id + ": no Proxmox read yet");
  }
  const auto* account = account_of(*v, *vmid);
  const auto next_cycle = ctx_.loop ? ctx_.loop().next_sync_time : 0;
  const auto found = std::find_if(v->guests.begin(), v->guests.end(),
                                  [&](const Guest& g) { return g.vmid == *vmid; });
  if (found == v->guests.end() && account == nullptr) {
    return http::error_response(
        404, "not_found",
        "no guest with VMID " + id + " in the last Proxmox read nor in AccountDB");
  }
  // A missing guest has no Proxmox values any more: only its VMID and its row's story.
  json body = found != v->guests.end() ? guests_json({*found}).at(0) : json{{"vmid", *vmid}};
  if (found == v->guests.end()) {
    // What the agent last knew of it: the row's name, the type last read
    // (for the agent of the node it moved to: docs/sync.md "Guests that move").
    body["name"] = account->decision.name;
    body["type"] =
        account->decision.type ? json(to_string(*account->decision.type)) : json(nullptr);
  }
  body["as_of"] = v->as_of;
  body["in_proxmox"] = found != v->guests.end();
  body["node"] = v->node;
  body["accountdb"] = account != nullptr ? account_json(*account, next_cycle) : json(nullptr);
  return json_answer(body);
}

}  // namespace pha
