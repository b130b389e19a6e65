#include "agent/config/docs.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <doctest/doctest.h>

#include "agent/accountdb/client.hpp"
#include "agent/config/cli.hpp"
#include "agent/config/env_file.hpp"
#include "agent/core/url.hpp"

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

// What lies between "<!-- NAME:begin -->\n" and "<!-- NAME:end -->".
std::optional<std::string> between_markers(const std::string& text, const std::string& name) {
  const std::string begin = "<!-- " + name + ":begin -->\n";
  const std::string end = "<!-- " + name + ":end -->";
  const auto b = text.find(begin);
  const auto e = text.find(end);
  if (b == std::string::npos || e == std::string::npos || e < b) {
    return std::nullopt;
  }
  return text.substr(b + begin.size(), e - b - begin.size());
}

// The first capture of `row` on each line of `text` that it matches.
std::set<std::string> table_keys(const std::string& text, const std::regex& row) {
  std::set<std::string> keys;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) {
      keys.insert(m[1].str());
    }
  }
  return keys;
}

}  // namespace

TEST_CASE(".env.example is exactly what the settings table renders") {
  const auto file = slurp(std::string(PHA_SOURCE_DIR) + "/.env.example");
  REQUIRE(file.has_value());
  CHECK_MESSAGE(*file == render_env_example(), kRegenerate);
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
    CHECK_MESSAGE(r.ok(), spec.env, ": ", (r.ok() ? "" : r.error().message));
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

TEST_CASE("docs/settings.md's settings table is exactly what the settings table renders") {
  const auto doc = slurp(std::string(PHA_DOCS_DIR) + "/settings.md");
  REQUIRE(doc.has_value());
  const auto table = between_markers(*doc, "settings-table");
  REQUIRE(table.has_value());
  CHECK_MESSAGE(*table == render_settings_markdown(), kRegenerate);
}

TEST_CASE("docs/settings.md lists every setting of the table with its flag and default") {
  const auto doc = slurp(std::string(PHA_DOCS_DIR) + "/settings.md");
  REQUIRE(doc.has_value());
  const auto table = between_markers(*doc, "settings-table");
  REQUIRE(table.has_value());
  // | `ENV` (secret; also `ENV_FILE`) | `--flag` or – | default | allowed | meaning |
  const std::regex row(
      R"(^\| `([A-Z][A-Z0-9_]+)`(?: \(secret; also `([A-Z][A-Z0-9_]+)`\))? \| (?:`(--[a-z0-9-]+)`|–) \| ((?:[^|\\]|\\.)*) \|)");
  std::map<std::string, std::smatch> rows;
  std::istringstream in(*table);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  for (const auto& l : lines) {
    std::smatch m;
    if (std::regex_search(l, m, row)) {
      CHECK_MESSAGE(rows.emplace(m[1].str(), m).second, m[1].str(), " is listed twice");
    }
  }
  for (const auto& spec : settings_table()) {
    const std::string env(spec.env);
    const auto it = rows.find(env);
    REQUIRE_MESSAGE(it != rows.end(), env, " is in the settings table but not in docs/settings.md");
    const auto& m = it->second;
    CHECK_MESSAGE(m[2].matched == spec.secret, env, ": secret or not");
    if (spec.secret) {
      CHECK_MESSAGE(m[2].str() == file_variant(spec), env);
    } else {
      CHECK_MESSAGE(m[3].str() == spec.flag, env, ": flag");
    }
    const std::string shown = !spec.default_doc.empty()    ? std::string(spec.default_doc)
                              : spec.required              ? std::string("(required)")
                              : spec.default_value.empty() ? std::string("(empty)")
                                                           : std::string(spec.default_value);
    CHECK_MESSAGE(m[4].str() == shown, env, ": default");
    rows.erase(it);
  }
  for (const auto& [env, m] : rows) {
    FAIL_CHECK(env, " is in docs/settings.md but not in the settings table");
  }
  CHECK(settings_table().size() >= 40);
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

TEST_CASE("docs/http-api.md and the man page list the same HTTP endpoints") {
  const auto doc = slurp(std::string(PHA_DOCS_DIR) + "/http-api.md");
  REQUIRE(doc.has_value());
  // | GET `/health` | ...
  const auto in_docs = table_keys(*doc, std::regex(R"(^\| ((?:GET|POST) `[^`]+`) \|)"));
  std::set<std::string> documented;
  for (auto key : in_docs) {
    key.erase(std::remove(key.begin(), key.end(), '`'), key.end());
    documented.insert(key);
  }
  const auto man = render_man_page();
  std::set<std::string> in_man;
  const std::regex man_endpoint(R"(\.TP\n\\fB((?:GET|POST) [^\\\n]+)\\fR\n)");
  for (auto it = std::sregex_iterator(man.begin(), man.end(), man_endpoint);
       it != std::sregex_iterator(); ++it) {
    in_man.insert((*it)[1].str());
  }
  for (const auto& e : documented) {
    CHECK_MESSAGE(in_man.count(e) == 1, e, " is in docs/http-api.md, not in the man page");
  }
  for (const auto& e : in_man) {
    CHECK_MESSAGE(documented.count(e) == 1, e, " is in the man page, not in docs/http-api.md");
  }
  CHECK(documented.size() >= 15);
}

TEST_CASE("docs/settings.md and the man page list the same exit codes") {
  const auto doc = slurp(std::string(PHA_DOCS_DIR) + "/settings.md");
  REQUIRE(doc.has_value());
  const auto section = doc->find("\n## Exit codes\n");
  REQUIRE(section != std::string::npos);
  const auto end = doc->find("\n## ", section + 1);
  // | 78 | ...
  const auto documented =
      table_keys(doc->substr(section, end - section), std::regex(R"(^\| ([0-9]+) \|)"));
  const auto man = render_man_page();
  const auto man_section = man.find(".SH EXIT STATUS\n");
  REQUIRE(man_section != std::string::npos);
  const auto man_end = man.find(".SH ", man_section + 1);
  const auto exit_status = man.substr(man_section, man_end - man_section);
  std::set<std::string> in_man;
  const std::regex man_code(R"(\.TP\n\\fB([0-9]+)\\fR\n)");
  for (auto it = std::sregex_iterator(exit_status.begin(), exit_status.end(), man_code);
       it != std::sregex_iterator(); ++it) {
    in_man.insert((*it)[1].str());
  }
  CHECK(documented == in_man);
  CHECK(documented == std::set<std::string>{"0", "1", "2", "3", "78"});
}

TEST_CASE("docs/accountdb.md names each call with the method and path the client sends") {
  const auto doc = slurp(std::string(PHA_DOCS_DIR) + "/accountdb.md");
  REQUIRE(doc.has_value());
  const auto section = doc->find("\n## Names of the calls\n");
  REQUIRE(section != std::string::npos);
  const auto end = doc->find("\n## ", section + 1);
  // | `node_info` | `GET /proxmox-nodes/agent-node/{node_id}` | A |
  const std::regex row(R"(^\| `([a-z_]+)` \| `([A-Z]+ [^`]+)` \| ([A-F]) \|)");
  std::map<std::string, std::string> documented;  // name -> "METHOD path?query"
  std::istringstream in(doc->substr(section, end - section));
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) {
      auto request = m[2].str();
      for (const auto& [from, to] : {std::pair<std::string, std::string>{"{node_id}", "7"},
                                     std::pair<std::string, std::string>{"{id}", "5"}}) {
        for (auto at = request.find(from); at != std::string::npos; at = request.find(from)) {
          request.replace(at, from.size(), to);
        }
      }
      documented[m[1].str()] = request;
    }
  }
  // What the client sends, without the base URL and the api_key parameter.
  std::vector<std::string> sent;
  AccountDbClient client(AccountDbClientOptions{*parse_url("https://adb.test:8080/base", {"", 0}),
                                                "key", 7, std::chrono::seconds(5)},
                         [&sent](const HttpRequest& r) {
                           auto target =
                               r.url.substr(std::string("https://adb.test:8080/base").size());
                           const auto key = target.find("api_key=");
                           target.erase(key == std::string::npos ? target.size() : key - 1);
                           sent.push_back(r.method + " " + target);
                           HttpOutcome o;
                           // An older server: whitelist answers 404, so whitelist_legacy is asked
                           // too.
                           o.status = target.starts_with("/vm-access/") ? 404 : 200;
                           o.kind = classify_status(o.status);
                           o.body = "{}";
                           return o;
                         });
  const std::map<std::string, std::function<void()>> calls = {
      {"node_info", [&] { (void)client.node_info(); }},
      {"heartbeat", [&] { (void)client.heartbeat(); }},
      {"whitelist", [&] { (void)client.whitelist(); }},
      {"whitelist_legacy", [&] { (void)client.whitelist(); }},
      {"list_vms", [&] { (void)client.list_vms(); }},
      {"put_vm", [&] { (void)client.put_vm(5, nlohmann::json::object()); }},
  };
  CHECK(documented.size() == calls.size());
  for (const auto& [name, call] : calls) {
    CAPTURE(name);
    REQUIRE_MESSAGE(documented.count(name) == 1, name, " is not in docs/accountdb.md");
    sent.clear();
    call();
    CHECK_MESSAGE(std::find(sent.begin(), sent.end(), documented[name]) != sent.end(), name,
                  ": docs/accountdb.md says ", documented[name]);
  }
}

TEST_CASE("the man page is plain man(7): known requests only - a title - every section") {
  const auto man = render_man_page();
  const std::set<std::string> requests = {".\\\"", ".TH", ".SH", ".SS", ".TP", ".PP", ".br", ".nf",
                                          ".fi",   ".RS", ".RE", ".BR", ".nh", ".ad", ".na"};
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
