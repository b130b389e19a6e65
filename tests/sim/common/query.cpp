#include "tests/sim/common/query.hpp"

#include "tests/sim/common/percent.hpp"
#include "tests/sim/common/split.hpp"

namespace pha::sim {

QueryParams parse_query(std::string_view query) {
  QueryParams params;
  for (const auto piece : split_pieces(query, '&')) {
    if (piece.empty()) {
      continue;
    }
    const auto eq = piece.find('=');
    params.emplace_back(
        percent_decode(piece.substr(0, eq), true),
        eq == std::string_view::npos ? "" : percent_decode(piece.substr(eq + 1), true));
  }
  return params;
}

std::optional<std::string> query_value(const QueryParams& params, std::string_view name) {
  std::optional<std::string> value;
  for (const auto& [k, v] : params) {
    if (k == name) {
      value = v;
    }
  }
  return value;
}

std::string mask_query_value(std::string_view query, std::string_view name) {
  std::string out;
  bool first = true;
  for (const auto piece : split_pieces(query, '&')) {
    if (!first) {
      out += '&';
    }
    first = false;
    const auto eq = piece.find('=');
    if (eq != std::string_view::npos && eq + 1 < piece.size() &&
        percent_decode(piece.substr(0, eq), true) == name) {
      out += piece.substr(0, eq + 1);
      out += "***";
    } else {
      out += piece;
    }
  }
  return out;
}

}  // namespace pha::sim
