#pragma once
// --confirm [HOLD]: what the change brake holds on the running agent
// (GET /status, sync.held), and with HOLD, the operator's confirmation of
// exactly those changes (POST /sync/confirm), written at the next cycle
// (docs/sync.md "The change brake").

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/config/settings.hpp"

namespace pha {

// The held changes of a /status sync.held object, for a person.
std::string held_text(const nlohmann::json& held);

// Without `hold`: prints what is held and how to confirm it; exit 0 (also
// when nothing is held), 1 when the agent cannot be asked. With `hold`:
// confirms it; exit 0 when the agent took it, 1 when not (another hold is
// held now, nothing is held, refused, unreachable). The command it suggests
// names `env_file`, when one was given, so that it reads the same settings.
int run_confirm(const Settings& settings, const std::string& hold,
                const std::optional<std::string>& env_file);

}  // namespace pha
