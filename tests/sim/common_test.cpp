// The pieces both simulators share (tests/sim/common/).

#include <doctest/doctest.h>

#include "tests/sim/common/http_reason.hpp"
#include "tests/sim/common/percent.hpp"
#include "tests/sim/common/query.hpp"
#include "tests/sim/common/request_log.hpp"

namespace {

using pha::sim::QueryParams;

TEST_CASE("percent_decode leaves a malformed escape as it is") {
  struct Row {
    const char* in;
    bool plus_is_space;
    const char* out;
  };
  for (const auto& r : {Row{"a%20b", false, "a b"}, Row{"a+b", false, "a+b"},
                        Row{"a+b", true, "a b"}, Row{"%41%62", true, "Ab"}, Row{"%zz", true, "%zz"},
                        Row{"100%", true, "100%"}, Row{"%4", true, "%4"}, Row{"%2f", false, "/"}}) {
    CAPTURE(r.in);
    CHECK(pha::sim::percent_decode(r.in, r.plus_is_space) == r.out);
  }
}

TEST_CASE("parse_query reads like parse_qsl with blank values kept") {
  CHECK(pha::sim::parse_query("") == QueryParams{});
  CHECK(pha::sim::parse_query("a=1&&b&c=&a=2") ==
        QueryParams{{"a", "1"}, {"b", ""}, {"c", ""}, {"a", "2"}});
  CHECK(pha::sim::parse_query("api%5Fkey=x+y%2B") == QueryParams{{"api_key", "x y+"}});
  const auto q = pha::sim::parse_query("a=1&a=2");
  CHECK(pha::sim::query_value(q, "a") == "2");  // the last one wins
  CHECK_FALSE(pha::sim::query_value(q, "b"));
}

TEST_CASE("mask_query_value hides every non-empty value of the name and only that") {
  struct Row {
    const char* in;
    const char* out;
  };
  for (const auto& r :
       {Row{"node_id=34&api_key=secret", "node_id=34&api_key=***"},
        Row{"api%5Fkey=secret&&api_key=again", "api%5Fkey=***&&api_key=***"},
        Row{"api_key=&x=1", "api_key=&x=1"}, Row{"api_keys=1", "api_keys=1"}, Row{"", ""}}) {
    CAPTURE(r.in);
    CHECK(pha::sim::mask_query_value(r.in, "api_key") == r.out);
  }
}

TEST_CASE("reason_phrase") {
  CHECK(pha::sim::reason_phrase(404) == "Not Found");
  CHECK(pha::sim::reason_phrase(422) == "Unprocessable Entity");
  CHECK(pha::sim::reason_phrase(595) == "Connection refused");
  CHECK(pha::sim::reason_phrase(299) == "Error");
}

TEST_CASE("RequestLog counts every request in each tally and keeps them in order") {
  pha::sim::RequestLog<int> log(2);
  log.record(1, {"GET /a/{id}", "GET /a/1"});
  log.record(2, {"GET /a/{id}", "GET /a/2"});
  CHECK(log.tally().total() == 2);
  CHECK(log.tally().count("GET /a/{id}", 0) == 2);
  CHECK(log.tally().count("GET /a/1", 1) == 1);
  CHECK(log.tally().count("GET /a/1", 0) == 0);
  CHECK(log.entries() == std::vector<int>{1, 2});
  log.clear();
  CHECK(log.tally().total() == 0);
  CHECK(log.entries().empty());
}

}  // namespace
