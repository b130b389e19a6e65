#pragma once
// The captured responses in tests/fixtures (their READMEs say where each came from).

#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

namespace pha::test {

// The text of tests/fixtures/<relative>, e.g. "proxmox/version.pve74.json".
inline std::string fixture_text(const std::string& relative) {
  std::ifstream f(std::string(PHA_FIXTURES_DIR) + "/" + relative, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), relative);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace pha::test
