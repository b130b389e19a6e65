#pragma once
// The node's VMID whitelist as the sync uses it (docs/failover.md "Whitelist
// cache", docs/sync.md "Whitelist filter"): fetched at most every WHITELIST_TTL, an error never
// read as "empty", the last good copy used while younger than WHITELIST_MAX_STALE (flagged stale),
// persisted atomically in the state directory so that a restart while AccountDB is down still
// filters correctly, and "unknown" when nothing usable exists.

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/core/live.hpp"
#include "agent/sync/plan.hpp"

namespace pha {

struct WhitelistCopy {
  std::set<std::int64_t> vmids;
  std::int64_t fetched_at = 0;  // unix seconds
  std::string source;           // "accountdb" (whitelist) or "accountdb-legacy" (whitelist_legacy)
};

// What /status and the cycle report say about the whitelist.
struct WhitelistStatus {
  bool known = false;
  bool stale = false;
  std::size_t count = 0;
  bool enabled = false;           // known and non-empty: it filters
  std::int64_t last_updated = 0;  // 0 when never
  std::string source = "none";    // accountdb, accountdb-legacy, state-file, none
};

class WhitelistCache {
 public:
  // `state_file` empty: nothing is persisted. `node_id` guards against a
  // state file written for another node.
  // The limits are read when they decide (a reload changes them).
  WhitelistCache(Live<std::int64_t> ttl_seconds, Live<std::int64_t> max_stale_seconds,
                 std::string state_file, std::int64_t node_id);

  // Reads the persisted copy, if any (at start). Returns a note for the log.
  std::string load();

  // Whether a fetch is due (no copy, or the copy is older than the TTL).
  bool needs_fetch(std::int64_t now) const;
  // A successful fetch: the new copy, kept and persisted. Returns an error
  // text when persisting failed (the copy is still used).
  std::optional<std::string> store(std::set<std::int64_t> vmids, std::string source,
                                   std::int64_t now);
  // A failed fetch: from now on the copy (if any) is stale.
  void fetch_failed();

  // The whitelist to filter with now.
  WhitelistView view(std::int64_t now) const;
  WhitelistStatus status(std::int64_t now) const;

 private:
  bool usable(std::int64_t now) const;

  Live<std::int64_t> ttl_;
  Live<std::int64_t> max_stale_;
  std::string state_file_;
  std::int64_t node_id_;
  std::optional<WhitelistCopy> copy_;
  bool from_state_file_ = false;
  bool last_fetch_failed_ = false;
};

}  // namespace pha
