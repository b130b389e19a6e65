#include "agent/config/docs.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <doctest/doctest.h>

#include "agent/config/cli.hpp"
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

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// How the man page writes something typed as it is: bold, '-' as "\-".
std::string man_literal(std::string_view s) {
  std::string out = "\\fB";
  for (char c : s) {
    out += c == '-' ? std::string("\\-") : std::string(1, c);
  }
  return out + "\\fR";
}

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

TEST_CASE("the man page documents every setting: variable - flag - default - allowed - meaning") {
  const auto man = render_man_page();
  for (const auto& spec : settings_table()) {
    CHECK_MESSAGE(contains(man, ".TP\n" + man_literal(spec.env)), spec.env);
    if (spec.secret) {
      CHECK_MESSAGE(contains(man, man_literal(file_variant(spec))), spec.env);
    } else {
      CHECK_MESSAGE(contains(man, man_literal(spec.flag)), spec.env);
    }
    CHECK_MESSAGE(contains(man, std::string(spec.help)), spec.env);
    const std::string shown = !spec.default_doc.empty()    ? std::string(spec.default_doc)
                              : spec.required              ? std::string("(required)")
                              : spec.default_value.empty() ? std::string("(empty)")
                                                           : std::string(spec.default_value);
    // A default that is a list has a break point (\\:) after each comma.
    std::string breakable;
    for (char c : shown) {
      breakable += c == ',' ? std::string(",\\:") : std::string(1, c);
    }
    CHECK_MESSAGE(
        contains(man, "Allowed: " + describe_allowed(spec) + ". Default: " + breakable + "."),
        spec.env);
  }
}

TEST_CASE("the man page lists every flag that --help lists") {
  const char* argv[] = {"proxmox-host-agent", "--help"};
  auto parsed = parse_command_line(2, argv);
  const auto* help = std::get_if<CliExit>(&parsed);
  REQUIRE(help != nullptr);
  const auto man = render_man_page();
  const std::regex flag_re("--[a-z][a-z0-9-]*");
  int flags = 0;
  for (auto it = std::sregex_iterator(help->out.begin(), help->out.end(), flag_re);
       it != std::sregex_iterator(); ++it) {
    ++flags;
    CHECK_MESSAGE(contains(man, man_literal(it->str())), it->str(),
                  " is in --help, not in the man page");
  }
  CHECK(flags > 40);
}

TEST_CASE("the man page lists every HTTP endpoint and exit code of interface.md") {
  const auto spec = slurp(std::string(PHA_SPEC_DIR) + "/interface.md");
  if (!spec) {
    MESSAGE("interface.md not found beside the checkout; skipped");
    return;
  }
  const auto man = render_man_page();
  // | GET `/health` | ... and | 78 | ...
  const std::regex endpoint(R"(^\| (GET|POST) `([^`]+)` \|)");
  const std::regex exit_code(R"(^\| ([0-9]+) \|)");
  std::istringstream in(*spec);
  std::string line;
  int endpoints = 0;
  int codes = 0;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, endpoint)) {
      ++endpoints;
      CHECK_MESSAGE(contains(man, ".TP\n\\fB" + m[1].str() + " " + m[2].str() + "\\fR\n"),
                    m[1].str(), " ", m[2].str());
    } else if (std::regex_search(line, m, exit_code)) {
      ++codes;
      CHECK_MESSAGE(contains(man, ".TP\n" + man_literal(m[1].str()) + "\n"), "exit code ",
                    m[1].str());
    }
  }
  CHECK(endpoints >= 15);
  CHECK(codes == 4);
}

TEST_CASE("the man page is plain man(7): known requests only - a title - every section") {
  const auto man = render_man_page();
  const std::set<std::string> requests = {".\\\"", ".TH", ".SH", ".SS", ".TP", ".PP", ".br",
                                          ".nf",   ".fi", ".RS", ".RE", ".BR", ".nh", ".ad"};
  std::istringstream in(man);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && (line.front() == '.' || line.front() == '\'')) {
      CHECK_MESSAGE(requests.count(line.substr(0, line.find(' '))) == 1, line);
    }
  }
  CHECK(man.starts_with(".\\\" "));
  for (const char* section : {"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT",
                              "HTTP API", "EXIT STATUS", "SIGNALS", "FILES", "SEE ALSO"}) {
    CHECK_MESSAGE(contains(man, ".SH " + std::string(section) + "\n"), section);
  }
}
