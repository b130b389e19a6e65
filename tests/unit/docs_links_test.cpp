// The README and docs/ as a reader meets them: every relative link leads to a
// file that exists and, with an anchor, to a heading of that file; and no
// passage of the README is said again in docs/ (each thing is said once, so
// the two cannot drift apart).

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace fs = std::filesystem;

namespace {

const fs::path kSource = PHA_SOURCE_DIR;

std::string slurp(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The Markdown files a reader is sent to: the README, docs/ and the
// results the docs link to.
std::vector<fs::path> markdown_files() {
  std::vector<fs::path> files{kSource / "README.md"};
  for (const auto* dir : {"docs", "bench/results"}) {
    if (!fs::is_directory(kSource / dir)) {
      continue;
    }
    for (const auto& e : fs::directory_iterator(kSource / dir)) {
      if (e.path().extension() == ".md") {
        files.push_back(e.path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The lines of a file outside fenced code blocks, with their numbers.
std::vector<std::pair<int, std::string>> prose_lines(const std::string& text) {
  std::vector<std::pair<int, std::string>> out;
  std::istringstream in(text);
  std::string line;
  bool fenced = false;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(' ');
    if (first != std::string::npos && line.compare(first, 3, "```") == 0) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) {
      out.emplace_back(n, line);
    }
  }
  return out;
}

// Inline code spans hold text, not links: blank them out.
std::string without_code_spans(const std::string& line) {
  std::string out = line;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '`') {
      continue;
    }
    const auto end = out.find('`', i + 1);
    if (end == std::string::npos) {
      break;
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(i),
              out.begin() + static_cast<std::ptrdiff_t>(end) + 1, ' ');
    i = end;
  }
  return out;
}

// GitHub's anchor of a heading: lower case, everything but letters, digits,
// spaces, '-' and '_' dropped, spaces made '-'; a repeated heading gets -1, -2...
std::set<std::string> anchors_of(const std::string& text) {
  std::set<std::string> anchors;
  std::map<std::string, int> seen;
  for (const auto& [n, line] : prose_lines(text)) {
    if (line.empty() || line[0] != '#') {
      continue;
    }
    const auto title = line.substr(line.find_first_not_of("# "));
    std::string slug;
    for (const char ch : title) {
      const auto c = static_cast<unsigned char>(ch);
      if (std::isalnum(c) != 0 || c == '-' || c == '_' || c >= 0x80) {
        slug += static_cast<char>(std::tolower(c));
      } else if (c == ' ') {
        slug += '-';
      }
    }
    const int k = seen[slug]++;
    anchors.insert(k == 0 ? slug : slug + "-" + std::to_string(k));
  }
  return anchors;
}

struct Link {
  int line;
  std::string target;
};

// Every [text](target) and ![alt](target) outside code.
std::vector<Link> links_of(const std::string& text) {
  std::vector<Link> links;
  for (const auto& [n, raw] : prose_lines(text)) {
    const auto line = without_code_spans(raw);
    for (auto at = line.find("]("); at != std::string::npos; at = line.find("](", at + 2)) {
      const auto end = line.find(')', at + 2);
      if (end != std::string::npos) {
        links.push_back({n, line.substr(at + 2, end - at - 2)});
      }
    }
  }
  return links;
}

// What is wrong with one link of `file`, or "" when it leads somewhere.
std::string check_link(const fs::path& file, const std::string& target) {
  if (target.empty()) {
    return "an empty link";
  }
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0 ||
      target.rfind("mailto:", 0) == 0) {
    return "";
  }
  const auto hash = target.find('#');
  const auto path_part = target.substr(0, hash);
  const auto anchor = hash == std::string::npos ? std::string() : target.substr(hash + 1);
  const auto dest = path_part.empty() ? file : (file.parent_path() / path_part).lexically_normal();
  if (!fs::exists(dest)) {
    return "no such file: " + dest.lexically_relative(kSource).string();
  }
  if (anchor.empty()) {
    return "";
  }
  if (dest.extension() != ".md") {
    return "an anchor into a file that is not Markdown";
  }
  if (anchors_of(slurp(dest)).count(anchor) == 0) {
    return "no heading with the anchor #" + anchor + " in " +
           dest.lexically_relative(kSource).string();
  }
  return "";
}

// The words of a file's prose and code, lower case, without punctuation,
// each with the line it stands on.
std::vector<std::pair<std::string, int>> words_of(const std::string& text) {
  std::vector<std::pair<std::string, int>> words;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string word;
    for (const char ch : line + " ") {
      const auto c = static_cast<unsigned char>(ch);
      if (std::isalnum(c) != 0 || c >= 0x80) {
        word += static_cast<char>(std::tolower(c));
      } else if (!word.empty()) {
        words.emplace_back(word, n);
        word.clear();
      }
    }
  }
  return words;
}

constexpr std::size_t kPassageWords = 14;

std::string passage_at(const std::vector<std::pair<std::string, int>>& words, std::size_t i) {
  std::string s;
  for (std::size_t k = i; k < i + kPassageWords; ++k) {
    s += words[k].first + " ";
  }
  return s;
}

}  // namespace

TEST_CASE("every relative link in README.md and docs/ leads to a file and heading that exist") {
  std::vector<std::string> broken;
  std::size_t checked = 0;
  for (const auto& file : markdown_files()) {
    for (const auto& link : links_of(slurp(file))) {
      ++checked;
      const auto why = check_link(file, link.target);
      if (!why.empty()) {
        broken.push_back(fs::path(file).lexically_relative(kSource).string() + ":" +
                         std::to_string(link.line) + ": (" + link.target + ") " + why);
      }
    }
  }
  for (const auto& b : broken) {
    INFO(b);
    CHECK(false);
  }
  CHECK(checked > 50);  // the reader above finds the links at all
}

TEST_CASE("the link reader finds links and anchors as GitHub makes them") {
  const auto anchors = anchors_of(
      "# Top\n## GET /vms/{vmid}\n## Life of a cycle: step 1\n```\n# not a heading\n```\n## Top\n");
  CHECK(anchors == std::set<std::string>{"top", "get-vmsvmid", "life-of-a-cycle-step-1", "top-1"});
  const auto links =
      links_of("see [a](x.md#b) and `[c](d.md)`\n```\n[e](f.md)\n```\n![g](h.png)\n");
  REQUIRE(links.size() == 2);
  CHECK(links[0].target == "x.md#b");
  CHECK(links[1].target == "h.png");
  CHECK(check_link(kSource / "README.md", "docs/no-such-file.md") != "");
  CHECK(check_link(kSource / "README.md", "docs/settings.md#no-such-heading") != "");
  CHECK(check_link(kSource / "README.md", "docs/settings.md#reload") == "");
}

TEST_CASE("no passage of the README is said again in docs/") {
  const auto readme = words_of(slurp(kSource / "README.md"));
  std::map<std::string, int> readme_passages;
  for (std::size_t i = 0; i + kPassageWords <= readme.size(); ++i) {
    readme_passages.emplace(passage_at(readme, i), readme[i].second);
  }
  REQUIRE(readme_passages.size() > 100);
  std::vector<std::string> repeated;
  for (const auto& file : markdown_files()) {
    if (file.filename() == "README.md" && file.parent_path() == kSource) {
      continue;
    }
    const auto words = words_of(slurp(file));
    for (std::size_t i = 0; i + kPassageWords <= words.size(); ++i) {
      const auto hit = readme_passages.find(passage_at(words, i));
      if (hit != readme_passages.end()) {
        repeated.push_back("README.md:" + std::to_string(hit->second) + " ~ " +
                           file.lexically_relative(kSource).string() + ":" +
                           std::to_string(words[i].second) + ": \"" + hit->first + "\"");
        i += kPassageWords - 1;  // one report per passage
      }
    }
  }
  for (const auto& r : repeated) {
    INFO(r);
    CHECK(false);
  }
}
