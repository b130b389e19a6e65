#pragma once
// The .env syntax of docs/settings.md "Env files": KEY=value lines, # comments, blank lines,
// an optional "export " prefix, single- or double-quoted values (double quotes
// allow \n, \" and \\), and an inline " #" comment after an unquoted value.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.hpp"

namespace pha {

struct EnvEntry {
  std::string value;
  int line = 0;
};

struct EnvFile {
  std::string path;
  std::map<std::string, EnvEntry> entries;
  std::vector<std::string> warnings;  // e.g. a key set twice
};

// A pure function of the file's text. Errors name the file and line number:
// "./.env:7: expected KEY=value".
Result<EnvFile> parse_env_file(std::string_view text, std::string_view path);

}  // namespace pha
