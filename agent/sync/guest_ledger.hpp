#pragma once
// What the agent knows of each guest's place in AccountDB, for the answer to
// "why is VM 123 (not) in AccountDB?" (docs/http-api.md "GET /vms/{vmid}"):
// the last plan's decision for it, the outcome of its last put_vm, whether a
// retry is owed, and since when it is missing. Kept by the sync engine and
// bounded by the plan: only the guests of the last read and the rows absent
// from it (the missing ones) are kept. Not persisted: a restart forgets the
// last writes, and "missing since" starts again at the first read.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/sync/plan.hpp"

namespace pha {

// What the last put_vm for a guest answered.
struct WriteOutcome {
  std::int64_t at = 0;  // unix seconds
  RequestKind kind = RequestKind::update;
  bool ok = false;
  std::string reason;  // the planned request's reason ("new", "changed: name", ...)
  std::string error;   // when it failed: secrets masked, at most kMaxWriteError bytes
  bool operator==(const WriteOutcome&) const = default;
};
// "created", "updated", "marked_missing" or "failed".
std::string_view write_result(const WriteOutcome& w);

inline constexpr std::size_t kMaxWriteError = 300;

struct GuestAccount {
  GuestDecision decision;  // of the last plan
  std::int64_t decided_at = 0;
  std::optional<WriteOutcome> last_write;
  // The last write failed and the guest is planned again by the next cycle.
  bool retry_pending = false;
  // The fields that differ from AccountDB's row and wait to be sent (all of
  // the body's for a create); empty once a write of them succeeded.
  std::vector<std::string> pending_fields;
  std::optional<std::int64_t> missing_since;  // the first complete read it was absent from
  std::optional<std::int64_t> marked_at;      // when this agent marked it deleted or migrated
  bool operator==(const GuestAccount&) const = default;
};

using GuestAccounts = std::map<std::int64_t, GuestAccount>;

// `text` cut to at most `max` bytes at a UTF-8 character boundary, with "..."
// when cut (the "..." counts).
std::string bounded_text(std::string text, std::size_t max);

class GuestLedger {
 public:
  // A cycle's plan (sent or, in a dry run, not): every decision replaces the
  // guest's last one; guests the plan no longer names are forgotten.
  void planned(const Plan& plan, std::int64_t now);
  // One put_vm's outcome; `row_id` from a create's answer when it named one.
  void written(const PlannedRequest& request, bool ok, std::optional<std::int64_t> row_id,
               const std::string& error, std::int64_t now);
  std::shared_ptr<const GuestAccounts> snapshot() const;

 private:
  GuestAccounts guests_;
};

}  // namespace pha
