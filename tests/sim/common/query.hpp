#pragma once
// Query strings (and form bodies) as the real servers read them.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pha::sim {

// Decoded name/value pairs in the order sent, like Python's
// parse_qsl(keep_blank_values=True): empty pieces are skipped, a piece
// without '=' has an empty value.
using QueryParams = std::vector<std::pair<std::string, std::string>>;
QueryParams parse_query(std::string_view query);

// The last value of `name` (Starlette, and pveproxy's form parser, keep the
// last of a repeated parameter).
std::optional<std::string> query_value(const QueryParams& params, std::string_view name);

// The query as sent, with the value of every non-empty `name` parameter
// replaced by "***" (for logs that must not hold a secret).
std::string mask_query_value(std::string_view query, std::string_view name);

}  // namespace pha::sim
