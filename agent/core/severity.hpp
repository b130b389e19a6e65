#pragma once
// How much a state needs attention: a sync cycle's, a component's, the
// agent's overall state (docs/http-api.md "GET /status"). Ordered, so the
// worst of several is the largest; in JSON and logs "ok", "starting",
// "warning", "error".

#include <string_view>

#include <nlohmann/json.hpp>

namespace pha {

// `starting` is only ever the agent's overall state: not every upstream's
// state is known yet. It needs more attention than ok, less than a warning.
enum class Severity { ok = 0, starting = 1, warning = 2, error = 3 };

constexpr std::string_view to_string(Severity s) {
  constexpr std::string_view kNames[] = {"ok", "starting", "warning", "error"};
  return kNames[static_cast<int>(s)];
}

// Written by name; never read back (no from_json that would map an unknown
// name to some default).
inline void to_json(nlohmann::json& j, Severity s) {
  j = to_string(s);
}

}  // namespace pha
