#include "agent/platform/logging.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace pha;

namespace {

// Routes log lines into a vector for the duration of a test.
struct Capture {
  std::vector<std::string> lines;
  explicit Capture(log::Format format, log::Level level = log::Level::info,
                   std::vector<std::string> secrets = {}) {
    log::init({level, format, false, std::move(secrets)});
    log::capture_for_test(&lines);
  }
  ~Capture() {
    log::capture_for_test(nullptr);
    log::init({});
  }
};

}  // namespace

TEST_CASE("mask_secrets hides the api_key of any URL") {
  const std::vector<std::string> none;
  CHECK(log::mask_secrets("GET /x?api_key=abc123&node_id=3", none) ==
        "GET /x?api_key=***&node_id=3");
  CHECK(log::mask_secrets("url=https://h/p?node_id=3&api_key=abc123", none) ==
        "url=https://h/p?node_id=3&api_key=***");
  CHECK(log::mask_secrets("a?api_key=k1 b?api_key=k2\"", none) == "a?api_key=*** b?api_key=***\"");
  CHECK(log::mask_secrets("{\"url\":\"/a?api_key=k-_.~9\"}", none) ==
        "{\"url\":\"/a?api_key=***\"}");
  CHECK(log::mask_secrets("already api_key=*** masked", none) == "already api_key=*** masked");
  CHECK(log::mask_secrets("empty api_key= here", none) == "empty api_key= here");
  CHECK(log::mask_secrets("no key here", none) == "no key here");
}

TEST_CASE("mask_secrets hides Proxmox tickets - token headers and the configured secrets") {
  CHECK(log::mask_secrets("Cookie: PVEAuthCookie=PVE:root@pam:65A1::sig; x", {}) ==
        "Cookie: PVEAuthCookie=***; x");
  CHECK(log::mask_secrets("Authorization: PVEAPIToken=a@pve!t=1111-2222", {}) ==
        "Authorization: PVEAPIToken=***");
  CHECK(log::mask_secrets("login failed for hunter2hunter2 twice: hunter2hunter2",
                          {"hunter2hunter2"}) == "login failed for *** twice: ***");
  // Very short secrets would mask ordinary words; the other defences cover them.
  CHECK(log::mask_secrets("abc", {"abc"}) == "abc");
}

TEST_CASE("text lines: time - level - event - message and fields") {
  Capture c(log::Format::text);
  log::info("http_listening", "listening",
            {{"address", "127.0.0.1"}, {"port", 8000}, {"note", "two words"}});
  REQUIRE(c.lines.size() == 1);
  const auto& l = c.lines[0];
  CHECK(l.find(" info http_listening: listening address=127.0.0.1 port=8000 note=\"two words\"") !=
        std::string::npos);
  CHECK(l.substr(4, 1) == "-");  // starts with an ISO date
  CHECK(l.find('Z') != std::string::npos);
}

TEST_CASE("json lines: one object with time - level - event - message and the fields") {
  Capture c(log::Format::json);
  log::warn("sync_failed", "AccountDB unreachable", {{"kind", "timeout"}, {"attempt", 2}});
  REQUIRE(c.lines.size() == 1);
  const auto j = nlohmann::json::parse(c.lines[0]);
  CHECK(j["level"] == "warning");
  CHECK(j["event"] == "sync_failed");
  CHECK(j["message"] == "AccountDB unreachable");
  CHECK(j["kind"] == "timeout");
  CHECK(j["attempt"] == 2);
  CHECK(j["time"].get<std::string>().size() == 24);
}

TEST_CASE("the sink masks secrets whatever the caller wrote") {
  Capture c(log::Format::json, log::Level::info, {"configured-secret-value"});
  log::error("request_failed", "GET https://adb/x?api_key=LEAKED-KEY failed",
             {{"url", "https://adb/y?node_id=1&api_key=LEAKED-KEY"},
              {"detail", "configured-secret-value"}});
  REQUIRE(c.lines.size() == 1);
  CHECK(c.lines[0].find("LEAKED-KEY") == std::string::npos);
  CHECK(c.lines[0].find("configured-secret-value") == std::string::npos);
  const auto j = nlohmann::json::parse(c.lines[0]);  // still valid JSON after masking
  CHECK(j["url"] == "https://adb/y?node_id=1&api_key=***");
}

TEST_CASE("lines below the level are dropped") {
  Capture c(log::Format::text, log::Level::warning);
  log::debug("a", "dropped");
  log::info("b", "dropped");
  log::warn("c", "kept");
  log::error("d", "kept");
  CHECK(c.lines.size() == 2);
  log::set_level(log::Level::trace);
  log::trace("e", "kept now");
  CHECK(c.lines.size() == 3);
}

TEST_CASE("journal: an entry the writer could not send goes to stderr with a priority prefix") {
  std::vector<std::string> lines;
  log::init({log::Level::debug, log::Format::text, true, {}, [](const log::JournalFields&) {
               return -5;  // -EIO: journald is gone
             }});
  log::capture_for_test(&lines);
  log::error("x", "boom");
  log::info("y", "fine");
  log::debug("z", "detail");
  log::capture_for_test(nullptr);
  log::init({});
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "<3>error x: boom");
  CHECK(lines[1] == "<6>info y: fine");
  CHECK(lines[2] == "<7>debug z: detail");
}

TEST_CASE("parse_level") {
  CHECK(log::parse_level("WARNING") == log::Level::warning);
  CHECK(log::parse_level("critical") == log::Level::critical);
  CHECK(log::parse_level("trace") == log::Level::trace);
}
