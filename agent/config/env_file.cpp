#include "agent/config/env_file.hpp"

#include "agent/core/text.hpp"

namespace pha {

namespace {

bool is_key_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

// What follows a closing quote may only be blanks and a comment.
bool only_comment_left(std::string_view rest) {
  rest = trim(rest);
  return rest.empty() || rest.front() == '#';
}

Result<std::string> parse_value(std::string_view v) {
  v = trim(v);
  if (v.empty()) {
    return std::string();
  }
  if (v.front() == '\'') {
    const auto close = v.find('\'', 1);
    if (close == std::string_view::npos) {
      return Error{ErrorKind::invalid, "unterminated single quote"};
    }
    if (!only_comment_left(v.substr(close + 1))) {
      return Error{ErrorKind::invalid, "unexpected text after the closing quote"};
    }
    return std::string(v.substr(1, close - 1));
  }
  if (v.front() == '"') {
    std::string out;
    for (std::size_t i = 1; i < v.size(); ++i) {
      const char c = v[i];
      if (c == '"') {
        if (!only_comment_left(v.substr(i + 1))) {
          return Error{ErrorKind::invalid, "unexpected text after the closing quote"};
        }
        return out;
      }
      if (c == '\\' && i + 1 < v.size()) {
        const char n = v[i + 1];
        if (n == 'n') {
          out += '\n';
          ++i;
          continue;
        }
        if (n == '"' || n == '\\') {
          out += n;
          ++i;
          continue;
        }
      }
      out += c;
    }
    return Error{ErrorKind::invalid, "unterminated double quote"};
  }
  // Unquoted: an inline comment starts at a '#' that follows a blank.
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] == '#' && (v[i - 1] == ' ' || v[i - 1] == '\t')) {
      v = v.substr(0, i);
      break;
    }
  }
  if (v.front() == '#') {
    return std::string();
  }
  return std::string(trim(v));
}

}  // namespace

Result<EnvFile> parse_env_file(std::string_view text, std::string_view path) {
  EnvFile file;
  file.path = std::string(path);
  if (text.starts_with("\xEF\xBB\xBF")) {
    text.remove_prefix(3);  // UTF-8 byte order mark
  }
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const auto where = std::string(path) + ":" + std::to_string(line_no) + ": ";

    line = trim(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    if (line.starts_with("export ") || line.starts_with("export\t")) {
      line = trim(line.substr(7));
    }
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      return Error{ErrorKind::invalid, where + "expected KEY=value"};
    }
    const auto key = trim(line.substr(0, eq));
    if (key.empty() || !is_key_start(key.front()) ||
        key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
            std::string_view::npos) {
      return Error{ErrorKind::invalid,
                   where + "'" + std::string(key) + "' is not a valid key (letters, digits and _)"};
    }
    auto value = parse_value(line.substr(eq + 1));
    if (!value) {
      return Error{ErrorKind::invalid, where + value.error().message};
    }
    auto [it, inserted] = file.entries.try_emplace(std::string(key), EnvEntry{*value, line_no});
    if (!inserted) {
      file.warnings.push_back(where + std::string(key) + " is set again (line " +
                              std::to_string(it->second.line) +
                              " set it first); the last one wins");
      it->second = EnvEntry{*value, line_no};
    }
  }
  return file;
}

}  // namespace pha
