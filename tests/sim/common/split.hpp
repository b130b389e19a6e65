#pragma once
// Splitting a path or a query string the way the servers do: on every
// separator, empty pieces included ("a//b" is "a", "", "b"; "" is one empty
// piece).

#include <string_view>
#include <vector>

namespace pha::sim {

inline std::vector<std::string_view> split_pieces(std::string_view s, char sep) {
  std::vector<std::string_view> pieces;
  std::size_t i = 0;
  while (i <= s.size()) {
    auto j = s.find(sep, i);
    if (j == std::string_view::npos) {
      j = s.size();
    }
    pieces.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return pieces;
}

}  // namespace pha::sim
