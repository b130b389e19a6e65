#include "agent/config/env_file.hpp"

#include <doctest/doctest.h>

using pha::parse_env_file;

namespace {

std::string value_of(std::string_view text, const std::string& key) {
  auto f = parse_env_file(text, "t.env");
  REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
  const auto it = f->entries.find(key);
  REQUIRE_MESSAGE(it != f->entries.end(), key);
  return it->second.value;
}

std::string error_of(std::string_view text) {
  auto f = parse_env_file(text, "t.env");
  REQUIRE_FALSE(f.ok());
  return f.error().message;
}

}  // namespace

TEST_CASE("plain KEY=value lines - with their line numbers") {
  auto f = parse_env_file("A=1\nB=two words\n", "t.env");
  REQUIRE(f.ok());
  CHECK(f->entries.size() == 2);
  CHECK(f->entries.at("A").value == "1");
  CHECK(f->entries.at("A").line == 1);
  CHECK(f->entries.at("B").value == "two words");
  CHECK(f->entries.at("B").line == 2);
  CHECK(f->path == "t.env");
}

TEST_CASE("comments and blank lines are skipped - line numbers still count them") {
  auto f = parse_env_file("# a comment\n\n   \n  # indented comment\nKEY=v\n", "t.env");
  REQUIRE(f.ok());
  CHECK(f->entries.size() == 1);
  CHECK(f->entries.at("KEY").line == 5);
}

TEST_CASE("an optional export prefix") {
  CHECK(value_of("export KEY=v", "KEY") == "v");
  CHECK(value_of("export\tKEY=v", "KEY") == "v");
  // A key that merely starts with "export" is a key.
  CHECK(value_of("exported=1", "exported") == "1");
}

TEST_CASE("blanks around the key - the '=' and an unquoted value are trimmed") {
  CHECK(value_of("  KEY = value  ", "KEY") == "value");
  CHECK(value_of("KEY=", "KEY").empty());
  CHECK(value_of("KEY=   ", "KEY").empty());
}

TEST_CASE("single quotes keep everything literally") {
  CHECK(value_of(R"(KEY='a "b" \n # c')", "KEY") == R"(a "b" \n # c)");
  CHECK(value_of("KEY=''", "KEY").empty());
  CHECK(value_of("KEY='  padded  '", "KEY") == "  padded  ");
}

TEST_CASE("double quotes allow escaped newlines and quotes and backslashes") {
  CHECK(value_of(R"(KEY="line1\nline2")", "KEY") == "line1\nline2");
  CHECK(value_of(R"(KEY="say \"hi\"")", "KEY") == "say \"hi\"");
  CHECK(value_of(R"(KEY="back\\slash")", "KEY") == "back\\slash");
  CHECK(value_of(R"(KEY="a # not a comment")", "KEY") == "a # not a comment");
  // Other backslashes are kept as they are.
  CHECK(value_of(R"(KEY="C:\temp")", "KEY") == R"(C:\temp)");
}

TEST_CASE("an inline comment after a value") {
  CHECK(value_of("KEY=value # comment", "KEY") == "value");
  CHECK(value_of("KEY=value\t# comment", "KEY") == "value");
  CHECK(value_of("KEY='quoted' # comment", "KEY") == "quoted");
  CHECK(value_of("KEY=\"quoted\"   # comment", "KEY") == "quoted");
  // A '#' that does not follow a blank is part of the value.
  CHECK(value_of("KEY=abc#def", "KEY") == "abc#def");
  CHECK(value_of("KEY= # only a comment", "KEY").empty());
}

TEST_CASE("CRLF line endings and a UTF-8 byte order mark") {
  auto f = parse_env_file(
      "\xEF\xBB\xBF"
      "A=1\r\nB='x'\r\n",
      "t.env");
  REQUIRE(f.ok());
  CHECK(f->entries.at("A").value == "1");
  CHECK(f->entries.at("B").value == "x");
}

TEST_CASE("a key set twice: the last one wins - with a warning naming both lines") {
  auto f = parse_env_file("A=1\nA=2\n", "t.env");
  REQUIRE(f.ok());
  CHECK(f->entries.at("A").value == "2");
  CHECK(f->entries.at("A").line == 2);
  REQUIRE(f->warnings.size() == 1);
  CHECK(f->warnings[0].find("t.env:2") != std::string::npos);
  CHECK(f->warnings[0].find("line 1") != std::string::npos);
}

TEST_CASE("errors name the file and the line") {
  CHECK(error_of("A=1\nnot a setting\n") == "t.env:2: expected KEY=value");
  CHECK(error_of("A=1\n\n1KEY=x") == "t.env:3: '1KEY' is not a valid key (letters, digits and _)");
  CHECK(error_of("MY-KEY=x").starts_with("t.env:1: 'MY-KEY' is not a valid key"));
  CHECK(error_of("=x").starts_with("t.env:1: '' is not a valid key"));
  CHECK(error_of("A=\"open") == "t.env:1: unterminated double quote");
  CHECK(error_of("A='open") == "t.env:1: unterminated single quote");
  CHECK(error_of("A='x' junk") == "t.env:1: unexpected text after the closing quote");
  CHECK(error_of("A=\"x\"junk") == "t.env:1: unexpected text after the closing quote");
  CHECK(error_of("export") == "t.env:1: expected KEY=value");
}

TEST_CASE("an empty file has no entries") {
  auto f = parse_env_file("", "t.env");
  REQUIRE(f.ok());
  CHECK(f->entries.empty());
}
