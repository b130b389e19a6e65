// The failover events: the ring, the state file, its reload, counts.

#include <doctest/doctest.h>

#include "agent/platform/logging.hpp"
#include "agent/upstream/failover_log.hpp"
#include "tests/support/log_capture.hpp"
#include "tests/support/process.hpp"

using namespace pha;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000;

FailoverEvent event(std::string to, std::int64_t timestamp = kT0,
                    FailoverKind kind = FailoverKind::automatic,
                    FailoverStatus status = FailoverStatus::completed) {
  FailoverEvent e;
  e.timestamp = timestamp;
  e.target = FailoverTarget::accountdb;
  e.from = "https://adb1:8080";
  e.to = std::move(to);
  e.reason = "timeout: no answer in 30 s";
  e.kind = kind;
  e.status = status;
  return e;
}

std::vector<std::int64_t> ids(const std::vector<FailoverEvent>& events) {
  std::vector<std::int64_t> out;
  for (const auto& e : events) {
    out.push_back(e.id);
  }
  return out;
}

std::string event_json(std::int64_t id, const std::string& to) {
  auto e = event(to);
  e.id = id;
  return to_json(e).dump();
}

}  // namespace

TEST_CASE("failover events: an event round-trips through JSON") {
  auto e = event("https://adb2:8080", kT0, FailoverKind::manual, FailoverStatus::failed);
  e.id = 7;
  const auto j = to_json(e);
  CHECK(j == nlohmann::json::parse(
                 R"({"id":7,"timestamp":1800000000,"target":"accountdb","from":"https://adb1:8080",
                     "to":"https://adb2:8080","reason":"timeout: no answer in 30 s",
                     "kind":"manual","status":"failed"})"));
  const auto back = event_from_json(j);
  REQUIRE(back);
  CHECK(to_json(*back) == j);
}

TEST_CASE("failover events: from_json names the first missing or mistyped field") {
  auto j = to_json(event("https://adb2:8080"));
  j.erase("to");
  j["timestamp"] = "yesterday";
  auto r = event_from_json(j);
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == ErrorKind::invalid);
  CHECK(r.error().message == "field timestamp is not an integer");
  j["timestamp"] = kT0;
  r = event_from_json(j);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "missing field to");
  j["to"] = "https://adb2:8080";
  j["kind"] = "sideways";
  r = event_from_json(j);
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "field kind is not automatic, manual or recovery");
  r = event_from_json(nlohmann::json::array());
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "not an object");
}

TEST_CASE("failover events: record sets ids and keeps an explicit timestamp") {
  FailoverLog log("");
  const auto first = log.record(event("https://adb2:8080", kT0 + 5));
  CHECK(first.id == 1);
  CHECK(first.timestamp == kT0 + 5);
  const auto second = log.record(event("https://adb1:8080", 0));
  CHECK(second.id == 2);
  CHECK(second.timestamp >= kT0 - 1'000'000'000);  // now, not 0
}

TEST_CASE("failover events: the ring drops the oldest beyond its capacity newest first") {
  FailoverLog log("", 3);
  for (int i = 0; i < 5; ++i) {
    log.record(event("https://adb" + std::to_string(i) + ":8080", kT0 + i));
  }
  const auto events = log.events();
  CHECK(ids(events) == std::vector<std::int64_t>{5, 4, 3});
  CHECK(events.front().to == "https://adb4:8080");
  CHECK(events.back().timestamp == kT0 + 2);
  CHECK(log.file_json()["events"].size() == 3);
  CHECK(log.file_json()["events"][0]["id"] == 3);  // the file is oldest first
}

TEST_CASE("failover events: the state file round-trips and ids go on after a reload") {
  test::TempDir dir;
  const auto file = dir.path() + "/failover-events.json";
  std::vector<FailoverEvent> before;
  {
    FailoverLog log(file);
    CHECK(log.load().empty());  // no file yet: no note
    log.record(event("https://adb2:8080", kT0));
    log.record(event("https://adb1:8080", kT0 + 60, FailoverKind::recovery));
    before = log.events();
  }
  FailoverLog restarted(file);
  CHECK(restarted.load().empty());
  const auto after = restarted.events();
  REQUIRE(after.size() == before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    CHECK(to_json(after[i]) == to_json(before[i]));
  }
  CHECK(restarted.record(event("https://adb3:8080")).id == 3);
  CHECK(restarted.counts() ==
        std::map<std::string, std::uint64_t>{{"accountdb/automatic/completed", 1}});
  FailoverLog again(file);
  again.load();
  CHECK(ids(again.events()) == std::vector<std::int64_t>{3, 2, 1});
}

TEST_CASE("failover events: a malformed file gives a note and an empty ring") {
  test::TempDir dir;
  for (const std::string content :
       {"{not json", R"({"version":1,"events":{}})", R"({"events":[]})", R"([1, 2])"}) {
    CAPTURE(content);
    const auto file = dir.write("failover-events.json", content);
    FailoverLog log(file);
    const auto notes = log.load();
    CHECK(notes == std::vector<std::string>{file + " is not a failover events file; ignored"});
    CHECK(log.events().empty());
    CHECK(log.record(event("https://adb2:8080")).id == 1);
  }
}

TEST_CASE("failover events: a malformed entry is skipped with a note and the others kept") {
  test::TempDir dir;
  const auto file =
      dir.write("failover-events.json",
                R"({"version":1,"events":[)" + event_json(4, "https://a:1") +
                    R"(,{"id":5,"timestamp":1},)" + event_json(6, "https://c:1") + "]}");
  FailoverLog log(file);
  CHECK(log.load() == std::vector<std::string>{file + ": event 1 skipped: missing field target"});
  const auto events = log.events();
  CHECK(ids(events) == std::vector<std::int64_t>{6, 4});
  CHECK(events.front().to == "https://c:1");
  CHECK(log.record(event("https://d:1")).id == 7);
}

TEST_CASE("failover events: an unwritable path keeps the event in memory and warns once") {
  test::TempDir dir;
  test::LogCapture capture(log::Level::info);
  FailoverLog log(dir.path() + "/missing-dir/failover-events.json");
  CHECK(log.record(event("https://adb2:8080")).id == 1);
  CHECK(log.record(event("https://adb1:8080")).id == 2);
  CHECK(ids(log.events()) == std::vector<std::int64_t>{2, 1});
  REQUIRE(capture.lines.size() == 1);
  CHECK(capture.lines[0].find("state_write_failed") != std::string::npos);
}

TEST_CASE("failover events: counts are by target and kind and status") {
  FailoverLog log("", 2);
  log.record(event("https://adb2:8080"));
  log.record(event("https://adb2:8080"));
  log.record(event("https://adb1:8080", kT0, FailoverKind::manual, FailoverStatus::failed));
  auto proxmox = event("https://pve2:8006", kT0, FailoverKind::recovery);
  proxmox.target = FailoverTarget::proxmox;
  log.record(proxmox);
  // Counted since start: the ring's capacity does not limit them.
  CHECK(log.counts() == std::map<std::string, std::uint64_t>{{"accountdb/automatic/completed", 2},
                                                             {"accountdb/manual/failed", 1},
                                                             {"proxmox/recovery/completed", 1}});
}
