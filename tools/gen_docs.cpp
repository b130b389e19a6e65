// Writes the files derived from the settings table.
//
//   pha-gen-docs SOURCE_DIR             rewrites .env.example and the settings table of
//                                       docs/settings.md (between its markers); the unit
//                                       tests fail when either is out of date. Run it with:
//                                       cmake --build build --target update-docs
//   pha-gen-docs --man FILE             writes the man page proxmox-host-agent(8); the build
//                                       does this (target man-page), so it cannot drift
//   pha-gen-docs --env-example FILE     writes .env.example to FILE (the package's agent.env)

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

int write_or_complain(const std::string& path, const std::string& content) {
  if (!write(path, content)) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 1;
  }
  return 0;
}

// Replaces what lies between the settings-table markers of `path` with the
// rendered table.
int update_settings_table(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  const std::string begin = "<!-- settings-table:begin -->\n";
  const std::string end = "<!-- settings-table:end -->";
  const auto b = text.find(begin);
  const auto e = text.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) {
    std::fprintf(stderr, "%s has no settings-table markers\n", path.c_str());
    return 1;
  }
  text.replace(b + begin.size(), e - b - begin.size(), pha::render_settings_markdown());
  return write_or_complain(path, text);
}

int update_source_dir(const std::string& dir) {
  if (write_or_complain(dir + "/.env.example", pha::render_env_example()) != 0) {
    return 1;
  }
  return update_settings_table(dir + "/docs/settings.md");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (argc == 3 && mode == "--man") {
    return write_or_complain(argv[2], pha::render_man_page());
  }
  if (argc == 3 && mode == "--env-example") {
    return write_or_complain(argv[2], pha::render_env_example());
  }
  if (argc == 2 && !mode.starts_with("--")) {
    return update_source_dir(mode);
  }
  std::fprintf(stderr, "usage: %s SOURCE_DIR | --man FILE | --env-example FILE\n",
               argc > 0 ? argv[0] : "pha-gen-docs");
  return 2;
}
