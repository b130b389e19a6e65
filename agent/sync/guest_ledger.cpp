#include "agent/sync/guest_ledger.hpp"

namespace pha {

namespace {

// What a planned request would write: the fields of its body but the key.
std::vector<std::string> body_fields(const PlannedRequest& r) {
  std::vector<std::string> fields;
  for (const auto& [key, value] : r.body.items()) {
    if (key != "vmid") {
      fields.push_back(key);
    }
  }
  return fields;
}

}  // namespace

std::string_view write_result(const WriteOutcome& w) {
  if (!w.ok) {
    return "failed";
  }
  switch (w.kind) {
    case RequestKind::create:
      return "created";
    case RequestKind::update:
      return "updated";
    case RequestKind::mark:
      return "marked_missing";
  }
  return "updated";
}

std::string bounded_text(std::string text, std::size_t max) {
  constexpr std::string_view kEllipsis = "...";
  if (text.size() <= max) {
    return text;
  }
  const bool room = max > kEllipsis.size();
  std::size_t cut = room ? max - kEllipsis.size() : max;
  // Never in the middle of a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  text.resize(cut);
  return room ? text + std::string(kEllipsis) : text;
}

void GuestLedger::planned(const Plan& plan, std::int64_t now) {
  std::map<std::int64_t, const PlannedRequest*> requests;
  for (const auto& r : plan.requests) {
    requests[r.vmid] = &r;
  }
  GuestAccounts next;
  for (const auto& [vmid, decision] : plan.decisions) {
    GuestAccount a;
    if (auto old = guests_.find(vmid); old != guests_.end()) {
      a = std::move(old->second);
    }
    const bool was_absent = !a.decision.present && a.decided_at != 0;
    a.decision = decision;
    a.decided_at = now;
    a.pending_fields.clear();
    if (const auto r = requests.find(vmid); r != requests.end()) {
      a.pending_fields =
          r->second->kind == RequestKind::update ? decision.changed : body_fields(*r->second);
    } else {
      a.retry_pending = false;  // nothing owed any more
    }
    if (decision.present || decision.missing_reads == 0) {
      a.missing_since.reset();
    } else if (!was_absent || !a.missing_since) {
      a.missing_since = now;
    }
    if (decision.present) {
      a.marked_at.reset();
    }
    next.emplace(vmid, std::move(a));
  }
  guests_ = std::move(next);
}

void GuestLedger::written(const PlannedRequest& request, bool ok,
                          std::optional<std::int64_t> row_id, const std::string& error,
                          std::int64_t now) {
  auto& a = guests_[request.vmid];
  a.decision.vmid = request.vmid;
  a.last_write = WriteOutcome{now, request.kind, ok, request.reason,
                              ok ? std::string() : bounded_text(error, kMaxWriteError)};
  a.retry_pending = !ok;
  if (!ok) {
    return;
  }
  a.pending_fields.clear();
  if (row_id) {
    a.decision.row_id = row_id;
  }
  if (request.kind == RequestKind::mark) {
    a.marked_at = now;
    a.decision.row_status = request.body.value("status", std::string());
  } else {
    a.decision.row_status = request.body.value("status", a.decision.row_status);
  }
}

std::shared_ptr<const GuestAccounts> GuestLedger::snapshot() const {
  return std::make_shared<const GuestAccounts>(guests_);
}

}  // namespace pha
