#pragma once
// How this agent asks the agent of another node of the cluster for a
// guest's row (docs/sync.md "Guests that move"): GET /vms/{vmid} with the
// read token the fleet's agents share, one attempt within PEER_TIMEOUT.

#include "agent/config/live_settings.hpp"
#include "agent/sync/engine.hpp"

namespace pha {

// Reads the settings at each ask (a reload applies from the next one).
PeerAsk make_peer_ask(const LiveSettings& settings);

}  // namespace pha
