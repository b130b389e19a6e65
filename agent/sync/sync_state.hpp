#pragma once
// The sync state file (STATE_DIR/sync-state.json, docs/sync.md "State
// files"): what the agent remembers between cycles and across restarts,
// as JSON. A file of an older version lacks the newer parts: they start
// empty.

#include <nlohmann/json.hpp>

#include "agent/sync/plan.hpp"

namespace pha {

nlohmann::json memory_json(const SyncMemory& m);
// False (and `m` empty) when `j` is not such a state.
bool memory_from_json(const nlohmann::json& j, SyncMemory& m);

}  // namespace pha
