// Fuzz target: the .env parser (agent/config/env_file.*). Any text either
// parses or is refused with an error naming the file and line; a parsed
// file's values survive being written back quoted and parsed again.

#include "agent/config/env_file.hpp"

#include <string>

#include "fuzz/target.hpp"

namespace {

// KEY="value" with the escapes the parser understands.
std::string quoted_line(const std::string& key, const std::string& value) {
  std::string line = key + "=\"";
  for (const char c : value) {
    if (c == '\n') {
      line += "\\n";
    } else if (c == '"' || c == '\\') {
      line += '\\';
      line += c;
    } else {
      line += c;
    }
  }
  return line + "\"\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using pha::fuzz::require;
  const auto text = pha::fuzz::as_text(data, size);
  auto parsed = pha::parse_env_file(text, "fuzz.env");
  if (!parsed) {
    require(parsed.error().message.starts_with("fuzz.env:"), "an error names the file and line");
    return 0;
  }
  std::string written;
  for (const auto& [key, entry] : parsed->entries) {
    require(!key.empty() && entry.line > 0, "an entry has a key and a line");
    written += quoted_line(key, entry.value);
  }
  auto again = pha::parse_env_file(written, "again.env");
  require(again.ok(), "a written file parses again");
  require(again->entries.size() == parsed->entries.size(), "as many entries again");
  for (const auto& [key, entry] : parsed->entries) {
    const auto it = again->entries.find(key);
    require(it != again->entries.end() && it->second.value == entry.value,
            "every value survives quoting");
  }
  return 0;
}
