#pragma once
// Percent-decoding of URL components, as the real servers do it: a malformed
// escape ("%zz", a '%' at the end) stays as it is.

#include <string>
#include <string_view>

namespace pha::sim {

// `plus_is_space`: '+' is a space (query strings and form bodies), not in paths.
std::string percent_decode(std::string_view s, bool plus_is_space);

}  // namespace pha::sim
