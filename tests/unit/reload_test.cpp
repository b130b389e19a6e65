// The reload verdict of platform/reload.hpp: its file, and the recorder's
// generations. The whole handshake against the real binary is in
// tests/integration/systemd_test.cpp.

#include "agent/platform/reload.hpp"

#include <doctest/doctest.h>

#include "agent/platform/files.hpp"
#include "tests/support/process.hpp"

using namespace pha;

TEST_CASE("reload verdict: the JSON round-trips and anything else is no verdict") {
  const ReloadVerdict v{7, false, {"/etc/x/agent.env.d/50-node.env:2: expected KEY=value"}};
  const auto back = parse_verdict(verdict_json(v));
  REQUIRE(back);
  CHECK(back->generation == 7);
  CHECK_FALSE(back->applied);
  CHECK(back->errors == v.errors);

  for (const char* bad : {"", "{", "[]", "null", R"({"generation":1,"applied":true})",
                          R"({"generation":-1,"applied":true,"errors":[]})",
                          R"({"generation":1,"applied":"yes","errors":[]})",
                          R"({"generation":1,"applied":true,"errors":[3]})"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_verdict(bad));
  }
}

TEST_CASE("reload verdict: the start-only settings that wait for a restart round-trip") {
  const ReloadVerdict v{3, true, {}, {"PORT", "WEBHOOK_TOKEN"}};
  const auto back = parse_verdict(verdict_json(v));
  REQUIRE(back);
  CHECK(back->applied);
  CHECK(back->restart_needed == v.restart_needed);

  // An agent of an older version writes none: nothing waits.
  const auto older = parse_verdict(R"({"generation":2,"applied":true,"errors":[]})");
  REQUIRE(older);
  CHECK(older->restart_needed.empty());
  CHECK_FALSE(
      parse_verdict(R"({"generation":2,"applied":true,"errors":[],"restart_needed":"PORT"})"));
  CHECK_FALSE(parse_verdict(R"({"generation":2,"applied":true,"errors":[],"restart_needed":[1]})"));
}

TEST_CASE("reload verdict: the path is reload.json in the first RuntimeDirectory") {
  CHECK_FALSE(reload_verdict_path(nullptr));
  CHECK_FALSE(reload_verdict_path(""));
  CHECK(reload_verdict_path("/run/proxmox-host-agent") == "/run/proxmox-host-agent/reload.json");
  CHECK(reload_verdict_path("/run/a:/run/b") == "/run/a/reload.json");
}

TEST_CASE("reload verdict: the recorder starts at generation 0 and counts each reload") {
  test::TempDir dir;
  const auto path = dir.path() + "/reload.json";
  ReloadRecorder recorder(path);
  const auto read = [&] { return parse_verdict(read_text_file(path).value()); };

  recorder.started();
  REQUIRE(read());
  CHECK(read()->generation == 0);
  CHECK(read()->applied);

  recorder.reloaded(false, {"UPDATE_INTERVAL=abc (from a.env:1): not a number"});
  CHECK(read()->generation == 1);
  CHECK_FALSE(read()->applied);
  CHECK(read()->errors.size() == 1);

  recorder.reloaded(true, {});
  CHECK(read()->generation == 2);
  CHECK(read()->applied);
  CHECK(read()->errors.empty());

  recorder.reloaded(true, {}, {"STATE_DIR"});
  CHECK(read()->generation == 3);
  CHECK(read()->applied);
  CHECK(read()->restart_needed == std::vector<std::string>{"STATE_DIR"});

  ReloadRecorder nowhere(std::nullopt);  // outside a unit: records nothing, never fails
  CHECK_NOTHROW(nowhere.started());
  CHECK_NOTHROW(nowhere.reloaded(true, {}));
}

TEST_CASE("reload request: without RUNTIME_DIRECTORY or a verdict it fails and says why") {
  const auto none = request_reload(1, std::nullopt, std::chrono::milliseconds(100));
  CHECK(none.outcome == ReloadRequest::Outcome::failed);
  CHECK(none.message.find("RUNTIME_DIRECTORY") != std::string::npos);

  test::TempDir dir;
  const auto missing =
      request_reload(1, dir.path() + "/reload.json", std::chrono::milliseconds(100));
  CHECK(missing.outcome == ReloadRequest::Outcome::failed);
  CHECK(missing.message.find("no reload record") != std::string::npos);
}
