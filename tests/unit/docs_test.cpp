#include "agent/config/docs.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <doctest/doctest.h>

#include "agent/config/env_file.hpp"

using namespace pha;

namespace {

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return std::nullopt;
  }
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

const std::string kRegenerate = "regenerate with: cmake --build build --target update-docs";

}  // namespace

TEST_CASE(".env.example is exactly what the settings table renders") {
  const auto file = slurp(std::string(PHA_SOURCE_DIR) + "/.env.example");
  REQUIRE(file.has_value());
  CHECK_MESSAGE(*file == render_env_example(), kRegenerate);
}

TEST_CASE("the README's settings table is exactly what the settings table renders") {
  const auto readme = slurp(std::string(PHA_SOURCE_DIR) + "/README.md");
  REQUIRE(readme.has_value());
  const std::string begin = "<!-- settings-table:begin -->\n";
  const std::string end = "<!-- settings-table:end -->";
  const auto b = readme->find(begin);
  const auto e = readme->find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  CHECK_MESSAGE(
      readme->substr(b + begin.size(), e - b - begin.size()) == render_settings_markdown(),
      kRegenerate);
}

TEST_CASE(".env.example parses - comments every setting out - and names every key") {
  const auto text = render_env_example();
  auto commented = parse_env_file(text, ".env.example");
  REQUIRE(commented.ok());
  CHECK(commented->entries.empty());

  // Uncommenting every "#KEY=" line gives a file with exactly the table's keys.
  std::string uncommented;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (std::regex_match(line, std::regex("#[A-Z][A-Z0-9_]*=.*"))) {
      uncommented += line.substr(1) + "\n";
    }
  }
  auto parsed = parse_env_file(uncommented, ".env.example");
  REQUIRE(parsed.ok());
  std::set<std::string> expected;
  for (const auto& spec : settings_table()) {
    expected.insert(std::string(spec.env));
    if (spec.secret) {
      expected.insert(file_variant(spec));
    }
  }
  std::set<std::string> got;
  for (const auto& [k, v] : parsed->entries) {
    got.insert(k);
    // The value shown is the default.
    if (const auto* spec = find_setting(k); spec != nullptr && spec->default_doc.empty()) {
      CHECK_MESSAGE(v.value == spec->default_value, k);
    }
  }
  CHECK(got == expected);
}

TEST_CASE("every default in the table is valid for its own setting") {
  for (const auto& spec : settings_table()) {
    if (spec.required || !spec.default_doc.empty()) {
      continue;
    }
    Settings s;
    auto r = spec.apply(spec, spec.default_value, s);
    CHECK_MESSAGE(r.ok(), spec.env, ": ", (r.ok() ? "" : r.error()));
  }
}

TEST_CASE("the table is well-formed: unique names and flags - secrets without flags") {
  std::set<std::string_view> envs;
  std::set<std::string_view> flags;
  for (const auto& spec : settings_table()) {
    CHECK_MESSAGE(envs.insert(spec.env).second, spec.env);
    CHECK_MESSAGE(!spec.help.empty(), spec.env);
    CHECK((spec.apply != nullptr));
    if (spec.secret) {
      CHECK_MESSAGE(spec.flag.empty(), spec.env,
                    " is secret and must have no flag (argv is visible in ps)");
    } else {
      CHECK_MESSAGE(spec.flag.starts_with("--"), spec.env);
      CHECK_MESSAGE(flags.insert(spec.flag).second, spec.flag);
    }
    if (spec.kind == ValueKind::integer || spec.kind == ValueKind::decimal) {
      CHECK_MESSAGE(spec.min <= spec.max, spec.env);
    }
  }
}

TEST_CASE("every setting and flag of interface.md is in the table") {
  const auto spec = slurp(std::string(PHA_SPEC_DIR) + "/interface.md");
  if (!spec) {
    MESSAGE("interface.md not found beside the checkout; skipped");
    return;
  }
  // Rows of the settings tables: | `ENV` | `--flag` or secret | default | notes |
  const std::regex row(R"(^\| `([A-Z][A-Z0-9_]+)`(?:, `([A-Z][A-Z0-9_]+)`)? \| ([^|]*)\|)");
  std::istringstream in(*spec);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) {
      continue;
    }
    const std::string flags = m[3].str();
    std::vector<std::string> names = {m[1].str()};
    if (m[2].matched) {
      names.push_back(m[2].str());
    }
    std::vector<std::string> flag_list;
    const std::regex flag_re("`(--[a-z0-9-]+)`");
    for (auto it = std::sregex_iterator(flags.begin(), flags.end(), flag_re);
         it != std::sregex_iterator(); ++it) {
      flag_list.push_back((*it)[1].str());
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      ++rows;
      const auto* s = find_setting(names[i]);
      REQUIRE_MESSAGE(s != nullptr, names[i], " is in interface.md but not in the settings table");
      if (flags.find("secret") != std::string::npos) {
        CHECK_MESSAGE(s->secret, names[i]);
      } else if (i < flag_list.size()) {
        CHECK_MESSAGE(s->flag == flag_list[i], names[i]);
      }
    }
  }
  CHECK(rows >= 40);
}
