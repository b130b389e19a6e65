// docs/architecture.md's table of what each agent/ folder may use, the
// pha_module() declarations of agent/CMakeLists.txt, and the #include lines
// of every file in agent/ must agree.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace {

namespace fs = std::filesystem;
using Graph = std::map<std::string, std::set<std::string>>;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> words(const std::string& text) {
  std::set<std::string> out;
  static const std::regex word("[a-z_]+");
  for (std::sregex_iterator it(text.begin(), text.end(), word), end; it != end; ++it) {
    out.insert(it->str());
  }
  return out;
}

// pha_module(NAME ... DEPENDS a b ... [LIBS ...]) -> NAME: {a, b}
Graph declared_in_cmake() {
  const auto text = read(fs::path(PHA_SOURCE_DIR) / "agent/CMakeLists.txt");
  static const std::regex call(R"(\npha_module\((\w+)([^)]*)\))");
  static const std::regex depends(R"(DEPENDS([a-z_\s]*?)(?:\bLIBS\b|\bSOURCES\b|$))");
  Graph g;
  for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
    const std::string args = (*it)[2];
    std::smatch m;
    g[(*it)[1]] = std::regex_search(args, m, depends) ? words(m[1]) : std::set<std::string>{};
  }
  return g;
}

// | `name` | a, b | -> name: {a, b}
Graph declared_in_docs() {
  const auto text = read(fs::path(PHA_SOURCE_DIR) / "docs/architecture.md");
  static const std::regex row(R"(\n\| `(\w+)` +\|([^|\n]*)\|)");
  Graph g;
  for (std::sregex_iterator it(text.begin(), text.end(), row), end; it != end; ++it) {
    g[(*it)[1]] = words((*it)[2]);
  }
  return g;
}

// The other agent/ folders each folder's files include.
Graph included() {
  static const std::regex include(R"re(#include "agent/(\w+)/)re");
  Graph g;
  for (const auto& dir : fs::directory_iterator(fs::path(PHA_SOURCE_DIR) / "agent")) {
    if (!dir.is_directory()) {
      continue;
    }
    const auto name = dir.path().filename().string();
    auto& uses = g[name];
    for (const auto& file : fs::directory_iterator(dir.path())) {
      const auto ext = file.path().extension();
      if (ext != ".cpp" && ext != ".hpp" && ext != ".in") {
        continue;
      }
      const auto text = read(file.path());
      for (std::sregex_iterator it(text.begin(), text.end(), include), end; it != end; ++it) {
        if ((*it)[1] != name) {
          uses.insert((*it)[1]);
        }
      }
    }
  }
  return g;
}

std::string show(const std::set<std::string>& s) {
  std::string out;
  for (const auto& w : s) {
    out += (out.empty() ? "" : ", ") + w;
  }
  return "{" + out + "}";
}

}  // namespace

TEST_CASE("architecture: the docs' table is the CMake layering folder by folder") {
  const auto cmake = declared_in_cmake();
  const auto docs = declared_in_docs();
  REQUIRE(cmake.size() >= 10);
  CHECK(docs.size() == cmake.size());
  for (const auto& [name, deps] : cmake) {
    const auto it = docs.find(name);
    REQUIRE_MESSAGE(it != docs.end(), "docs/architecture.md has no row for " << name);
    CHECK_MESSAGE(it->second == deps,
                  name << ": docs say " << show(it->second) << ", CMake says " << show(deps));
  }
}

TEST_CASE("architecture: every agent/ folder is a module and includes only what it declares") {
  const auto cmake = declared_in_cmake();
  const auto uses = included();
  REQUIRE(uses.size() >= 10);
  for (const auto& [name, used] : uses) {
    const auto it = cmake.find(name);
    REQUIRE_MESSAGE(it != cmake.end(), "agent/" << name << " is not a pha_module()");
    for (const auto& u : used) {
      CHECK_MESSAGE(it->second.count(u) == 1, "agent/" << name << " includes agent/" << u
                                                       << " but declares " << show(it->second));
    }
  }
}

TEST_CASE("architecture: the declared uses form layers (no cycle)") {
  const auto cmake = declared_in_cmake();
  std::set<std::string> placed;
  while (placed.size() < cmake.size()) {
    bool progress = false;
    for (const auto& [name, deps] : cmake) {
      if (placed.count(name) == 0 &&
          std::all_of(deps.begin(), deps.end(), [&](const auto& d) { return placed.count(d); })) {
        placed.insert(name);
        progress = true;
      }
    }
    REQUIRE_MESSAGE(progress, "a cycle among the folders not yet placed; placed " << show(placed));
  }
}

namespace {

// The functions of a clang-formatted source longer than `limit` lines, as
// "file:Name" (the name as written before its parameters). A function starts
// at a line at indentation 0 or 2 that ends with ") {" (or ") const {", ...)
// and ends at the next line that is only "}" (or "};": a concept's requires
// expression) at the same indentation.
std::set<std::string> long_functions(const fs::path& file, std::size_t limit) {
  static const std::regex start(
      R"(^( {0,2})[^ #/}].*?([A-Za-z_][\w:~]*)\(.*\)( const)?( override)?( noexcept)? \{$)");
  std::vector<std::string> lines;
  std::istringstream in(read(file));
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  std::set<std::string> out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(lines[i], m, start)) {
      continue;
    }
    const std::string close = m[1].str() + "}";
    std::size_t j = i + 1;
    while (j < lines.size() && lines[j] != close && lines[j] != close + ";") {
      ++j;
    }
    if (j - i + 1 > limit) {
      out.insert(file.parent_path().filename().string() + "/" + file.filename().string() + ":" +
                 m[2].str());
    }
    i = j;
  }
  return out;
}

template <class F>
void for_each_agent_source(F f) {
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(PHA_SOURCE_DIR) / "agent")) {
    const auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".cpp" || ext == ".hpp")) {
      f(entry.path());
    }
  }
}

}  // namespace

// docs/architecture.md "Conventions": files of at most about 500 lines and
// functions of at most about 60. The lists are what is still longer; the
// test fails when something new grows past a limit, and when a listed one
// has been shortened (take it off the list).
TEST_CASE("architecture: agent/ files and functions stay short or are listed as still long") {
  // The settings table is data: one row per setting, the one source of truth.
  const std::set<std::string> long_files = {"config/settings_table.cpp"};
  const std::set<std::string> long_fns = {};
  std::set<std::string> files;
  std::set<std::string> fns;
  for_each_agent_source([&](const fs::path& p) {
    std::size_t n = 0;
    std::istringstream in(read(p));
    for (std::string line; std::getline(in, line);) {
      ++n;
    }
    if (n > 500) {
      files.insert(p.parent_path().filename().string() + "/" + p.filename().string());
    }
    const auto f = long_functions(p, 60);
    fns.insert(f.begin(), f.end());
  });
  CHECK_MESSAGE(files == long_files, "files over 500 lines: " << show(files));
  CHECK_MESSAGE(fns == long_fns, "functions over 60 lines: " << show(fns));
}
