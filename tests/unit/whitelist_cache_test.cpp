// The whitelist cache: TTL, stale use after failures, persistence, unknown.

#include "agent/sync/whitelist_cache.hpp"

#include <fstream>

#include <doctest/doctest.h>

#include "tests/support/process.hpp"

using namespace pha;

namespace {
constexpr std::int64_t kT0 = 1'800'000'000;
}

TEST_CASE("nothing known: the whitelist is unknown and a fetch is due") {
  WhitelistCache c(300, 86400, "", 34);
  CHECK(c.needs_fetch(kT0));
  CHECK_FALSE(c.view(kT0).known);
  CHECK(c.status(kT0).source == "none");
  c.fetch_failed();
  CHECK_FALSE(c.view(kT0).known);  // an error is never an empty whitelist
}

TEST_CASE("a fetched copy is used until the TTL runs out") {
  WhitelistCache c(300, 86400, "", 34);
  CHECK_FALSE(c.store({101, 102}, "accountdb", kT0).has_value());
  CHECK_FALSE(c.needs_fetch(kT0 + 299));
  CHECK(c.needs_fetch(kT0 + 300));
  const auto v = c.view(kT0 + 10);
  CHECK(v.known);
  CHECK(v.filters());
  CHECK(v.vmids == std::set<std::int64_t>{101, 102});
  const auto s = c.status(kT0 + 10);
  CHECK(s.count == 2);
  CHECK(s.enabled);
  CHECK_FALSE(s.stale);
  CHECK(s.source == "accountdb");
  CHECK(s.last_updated == kT0);
}

TEST_CASE("an empty whitelist is known and filters nothing") {
  WhitelistCache c(300, 86400, "", 34);
  c.store({}, "accountdb-legacy", kT0);
  CHECK(c.view(kT0).known);
  CHECK_FALSE(c.view(kT0).filters());
  CHECK_FALSE(c.status(kT0).enabled);
  CHECK(c.status(kT0).source == "accountdb-legacy");
}

TEST_CASE(
    "after a failed fetch the last copy is used while younger than WHITELIST_MAX_STALE - flagged "
    "stale") {
  WhitelistCache c(300, 3600, "", 34);
  c.store({101}, "accountdb", kT0);
  c.fetch_failed();
  CHECK(c.needs_fetch(kT0 + 301));
  CHECK(c.view(kT0 + 3600).known);
  CHECK(c.status(kT0 + 3600).stale);
  CHECK_FALSE(c.view(kT0 + 3601).known);
  CHECK(c.status(kT0 + 3601).source == "none");
  // A later success clears the flag.
  c.store({101, 103}, "accountdb", kT0 + 4000);
  CHECK_FALSE(c.status(kT0 + 4000).stale);
}

TEST_CASE("the copy is persisted atomically and reloaded after a restart") {
  test::TempDir dir;
  const auto file = dir.path() + "/whitelist.json";
  {
    WhitelistCache c(300, 86400, file, 34);
    CHECK(c.load().empty());  // nothing yet
    CHECK_FALSE(c.store({101, 205}, "accountdb", kT0).has_value());
  }
  WhitelistCache restarted(300, 86400, file, 34);
  CHECK(restarted.load().find("loaded 2 whitelisted VMIDs") != std::string::npos);
  // Used at once, flagged as coming from the state file, and fetched again.
  CHECK(restarted.needs_fetch(kT0 + 1));
  const auto v = restarted.view(kT0 + 100);
  CHECK(v.known);
  CHECK(v.vmids == std::set<std::int64_t>{101, 205});
  CHECK(restarted.status(kT0 + 100).source == "state-file");
  CHECK(restarted.status(kT0 + 100).stale);
  CHECK_FALSE(restarted.view(kT0 + 86401).known);
  // No temporary file is left behind.
  CHECK_FALSE(std::ifstream(file + ".tmp." + std::to_string(::getpid())).good());
}

TEST_CASE("a state file of another node or a damaged one is ignored with a note") {
  test::TempDir dir;
  const auto file =
      dir.write("whitelist.json", R"({"node_id":35,"fetched_at":1800000000,"vmids":[1]})");
  WhitelistCache other(300, 86400, file, 34);
  CHECK(other.load().find("another node") != std::string::npos);
  CHECK_FALSE(other.view(kT0).known);
  dir.write("whitelist.json", "{\"node_id\":34,\"vmids\":[1");
  WhitelistCache broken(300, 86400, file, 34);
  CHECK(broken.load().find("not a whitelist state file") != std::string::npos);
  CHECK_FALSE(broken.view(kT0).known);
}

TEST_CASE("a failure to persist is reported and the copy still used") {
  WhitelistCache c(300, 86400, "/nonexistent-dir/whitelist.json", 34);
  const auto err = c.store({101}, "accountdb", kT0);
  REQUIRE(err.has_value());
  CHECK(err->find("cannot create") != std::string::npos);
  CHECK(c.view(kT0).known);
}
