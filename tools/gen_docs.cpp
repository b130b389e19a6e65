// Regenerates the files derived from the settings table: .env.example and the
// settings table in README.md (between its markers). The unit tests fail when
// either is out of date. Run: cmake --build build --target update-docs

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/config/docs.hpp"

namespace {

bool write(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  return static_cast<bool>(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOURCE_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  if (!write(dir + "/.env.example", pha::render_env_example())) {
    std::fprintf(stderr, "cannot write %s/.env.example\n", dir.c_str());
    return 1;
  }
  std::ifstream in(dir + "/README.md", std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string readme = buf.str();
  const std::string begin = "<!-- settings-table:begin -->\n";
  const std::string end = "<!-- settings-table:end -->";
  const auto b = readme.find(begin);
  const auto e = readme.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) {
    std::fprintf(stderr, "README.md has no settings-table markers\n");
    return 1;
  }
  readme.replace(b + begin.size(), e - b - begin.size(), pha::render_settings_markdown());
  if (!write(dir + "/README.md", readme)) {
    std::fprintf(stderr, "cannot write %s/README.md\n", dir.c_str());
    return 1;
  }
  return 0;
}
