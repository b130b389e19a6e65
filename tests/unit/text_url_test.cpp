#include <doctest/doctest.h>

#include "agent/core/text.hpp"
#include "agent/core/url.hpp"

using namespace pha;

TEST_CASE("parse_int is strict") {
  CHECK(parse_int("42") == 42);
  CHECK(parse_int("-7") == -7);
  CHECK(parse_int("0") == 0);
  CHECK_FALSE(parse_int(""));
  CHECK_FALSE(parse_int("+1"));
  CHECK_FALSE(parse_int(" 1"));
  CHECK_FALSE(parse_int("1 "));
  CHECK_FALSE(parse_int("1.0"));
  CHECK_FALSE(parse_int("0x10"));
  CHECK_FALSE(parse_int("99999999999999999999"));
}

TEST_CASE("parse_decimal accepts finite numbers only") {
  CHECK(parse_decimal("0.05") == doctest::Approx(0.05));
  CHECK(parse_decimal("3") == doctest::Approx(3));
  CHECK(parse_decimal("1e2") == doctest::Approx(100));
  CHECK_FALSE(parse_decimal("inf"));
  CHECK_FALSE(parse_decimal("nan"));
  CHECK_FALSE(parse_decimal("1,5"));
  CHECK_FALSE(parse_decimal(""));
}

TEST_CASE("split_list trims and drops empty items") {
  CHECK(split_list(" a, b ,,c ,") == std::vector<std::string>{"a", "b", "c"});
  CHECK(split_list("").empty());
  CHECK(split_list("x;y", ';') == std::vector<std::string>{"x", "y"});
}

TEST_CASE("constant_time_equals") {
  CHECK(constant_time_equals("token", "token"));
  CHECK_FALSE(constant_time_equals("token", "tokeN"));
  CHECK_FALSE(constant_time_equals("token", "token2"));
  CHECK_FALSE(constant_time_equals("", "x"));
  CHECK(constant_time_equals("", ""));
}

TEST_CASE("format_decimal has no trailing zeros") {
  CHECK(format_decimal(0.05) == "0.05");
  CHECK(format_decimal(1) == "1");
  CHECK(format_decimal(2.5) == "2.5");
}

TEST_CASE("parse_url") {
  auto u = parse_url("https://adb.example.com:8443/api/", {"", 0});
  REQUIRE(u.ok());
  CHECK(u->scheme == "https");
  CHECK(u->host == "adb.example.com");
  CHECK(u->port == 8443);
  CHECK(u->path == "/api");
  CHECK(u->str() == "https://adb.example.com:8443/api");

  auto plain = parse_url("http://127.0.0.1", {"", 0});
  REQUIRE(plain.ok());
  CHECK(plain->port == 80);
  auto tls = parse_url("https://adb", {"", 0});
  REQUIRE(tls.ok());
  CHECK(tls->port == 443);

  auto v6 = parse_url("[2001:db8::1]:8006", {"https", 8006});
  REQUIRE(v6.ok());
  CHECK(v6->host == "2001:db8::1");
  CHECK(v6->str() == "https://[2001:db8::1]:8006");

  CHECK(parse_url("adb:8080", {"", 0}).error().message == "needs a scheme (http:// or https://)");
  CHECK_FALSE(parse_url("https://", {"", 0}).ok());
  CHECK_FALSE(parse_url("https://[::1", {"", 0}).ok());
  CHECK_FALSE(parse_url("https://[zz::1]", {"", 0}).ok());
  CHECK_FALSE(parse_url("https://host:", {"", 0}).ok());
  CHECK_FALSE(parse_url("https://a:b@host", {"", 0}).ok());
  CHECK_FALSE(parse_url("https://host/#frag", {"", 0}).ok());
  CHECK_FALSE(parse_url("gopher://host", {"", 0}).ok());
}
