#pragma once
// Small, strict text helpers shared by the config layer and the parsers.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pha {

std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

// Splits on `sep`, trims each piece and drops empty pieces.
std::vector<std::string> split_list(std::string_view s, char sep = ',');

// The pieces with `sep` between them ("a, b, c").
std::string join_list(const std::vector<std::string>& pieces, std::string_view sep = ", ");

// The whole string must be a base-10 integer (optional leading '-').
std::optional<long long> parse_int(std::string_view s);
// The whole string must be a finite decimal number ("0.05", "3", "1e2").
std::optional<double> parse_decimal(std::string_view s);
// true/false/1/0/yes/no/on/off, any case.
std::optional<bool> parse_bool(std::string_view s);

// Formats a decimal without trailing zeros ("0.05", "1", "2.5").
std::string format_decimal(double v);

// Constant-time comparison of two secrets (length is not hidden).
bool constant_time_equals(std::string_view a, std::string_view b);

}  // namespace pha

namespace pha {
// Percent-encodes everything but unreserved characters (RFC 3986), for query
// strings and form bodies.
std::string url_encode(std::string_view s);
}  // namespace pha
