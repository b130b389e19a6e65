#pragma once
// How much a state needs attention: a sync cycle's, a component's, the
// agent's overall state (docs/http-api.md "GET /status"). Ordered, so the
// worst of several is the largest; in JSON and logs "ok", "warning", "error".

#include <string_view>

#include <nlohmann/json.hpp>

namespace pha {

enum class Severity { ok = 0, warning = 1, error = 2 };

constexpr std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::ok:
      return "ok";
    case Severity::warning:
      return "warning";
    case Severity::error:
      break;
  }
  return "error";
}

NLOHMANN_JSON_SERIALIZE_ENUM(Severity, {{Severity::ok, "ok"},
                                        {Severity::warning, "warning"},
                                        {Severity::error, "error"}})

}  // namespace pha
