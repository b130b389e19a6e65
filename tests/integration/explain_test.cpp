// "Why is VM 123 (not) in AccountDB?": /vms/{vmid} and `--explain VMID`
// against a running agent, for a whitelisted running guest, a stopped one, a
// filtered one and one whose last write failed (docs/http-api.md "GET
// /vms/{vmid}"). Set PHA_EXPLAIN_OUT to a directory to keep the four outputs.

#include <cstdlib>
#include <fstream>

#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

ProcessResult explain(const World& w, const RunningAgent& a, long long vmid, Env extra = {}) {
  auto e = w.env();
  e["PORT"] = std::to_string(a.port());
  for (auto& [k, v] : extra) {
    e[k] = v;
  }
  return run_process(PHA_AGENT_BINARY, {{"--explain", std::to_string(vmid)}, e, w.dir.path()}, 30s);
}

void keep(const std::string& name, const ProcessResult& r) {
  if (const char* dir = std::getenv("PHA_EXPLAIN_OUT")) {
    std::ofstream(std::string(dir) + "/" + name + ".txt") << r.out;
  }
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("explain: running stopped filtered and failed guests - over the API and --explain") {
  World w;
  RunningAgent a(w, {{"UPDATE_INTERVAL", "3600"}, {"PROXMOX_DISCOVER_HOSTS", "false"}});
  REQUIRE(a.wait_cycles(1));
  const auto in = w.running.front();
  const auto row = w.row_of(in);
  REQUIRE(row);

  auto vm = a.get_json("/vms/" + std::to_string(in));
  CHECK(vm["accountdb"]["in_accountdb"] == true);
  CHECK(vm["accountdb"]["row_id"] == row->id);
  CHECK(vm["accountdb"]["whitelisted"] == true);
  CHECK(vm["accountdb"]["last_write"]["result"] == "created");
  auto r = explain(w, a, in);
  keep("running", r);
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(has(r.out, "in AccountDB:   yes"));
  CHECK(has(r.out, "row id:         " + std::to_string(row->id)));

  vm = a.get_json("/vms/" + std::to_string(w.stopped));
  CHECK(vm["accountdb"]["in_accountdb"] == false);
  CHECK(vm["accountdb"]["kept_out_by"] == "stopped");
  r = explain(w, a, w.stopped);
  keep("stopped", r);
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "kept out by:    stopped"));

  vm = a.get_json("/vms/" + std::to_string(w.outside));
  CHECK(vm["accountdb"]["whitelisted"] == false);
  CHECK(vm["accountdb"]["kept_out_by"] == "not_whitelisted");
  r = explain(w, a, w.outside);
  keep("filtered", r);
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "kept out by:    not_whitelisted"));
  CHECK(has(r.out, "whitelisted:    false"));

  // The last write fails: the error is shown and a retry is pending.
  const auto failing = w.running.at(1);
  REQUIRE(w.pve.cluster().rename(static_cast<int>(failing), "renamed-for-support"));
  w.adb.set_fault({.kind = sim::AdbFaultKind::status,
                   .call = sim::AdbCall::put_vm,
                   .status = 422,
                   .body = R"({"detail":"name rejected"})"});
  cycle(a);
  vm = a.get_json("/vms/" + std::to_string(failing));
  const auto& acc = vm["accountdb"];
  CHECK(acc["last_write"]["result"] == "failed");
  CHECK(has(acc["last_write"]["error"].get<std::string>(), "422"));
  CHECK(acc["retry"]["pending"] == true);
  CHECK(acc["retry"]["at"].is_number_integer());
  CHECK(acc["pending_fields"] == nlohmann::json::array({"name"}));
  r = explain(w, a, failing);
  keep("failed", r);
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "failed (update: changed: name)"));
  CHECK(has(r.out, "retry pending:  yes"));
  CHECK(has(r.out, "waiting to send: name"));
  CHECK(!has(r.out + r.err + vm.dump(), kKey));

  // The fault cleared, the next cycle writes it: nothing pending any more.
  w.adb.clear_fault();
  cycle(a);
  vm = a.get_json("/vms/" + std::to_string(failing));
  CHECK(vm["accountdb"]["last_write"]["result"] == "updated");
  CHECK(vm["accountdb"]["retry"]["pending"] == false);
  CHECK(vm["accountdb"]["pending_fields"].empty());
}

TEST_CASE("explain: an unknown VMID and an agent that is not there exit 1") {
  World w;
  {
    RunningAgent a(w, {{"UPDATE_INTERVAL", "3600"}, {"PROXMOX_DISCOVER_HOSTS", "false"}});
    REQUIRE(a.wait_cycles(1));
    auto r = explain(w, a, 99999);
    CHECK(r.exit_code == 1);
    CHECK(has(r.err, "404"));
    CHECK(a.get("/vms/99999")->status == 404);
    a.stop();
  }
  auto e = w.env();
  e["PORT"] = "1";  // nothing listens there
  auto r = run_process(PHA_AGENT_BINARY, {{"--explain", "100"}, e, w.dir.path()}, 30s);
  CHECK(r.exit_code == 1);
  CHECK(has(r.err, "cannot reach the agent"));
}

TEST_CASE("explain: --explain sends AGENT_READ_TOKEN - /vms/{vmid} refuses a request without it") {
  World w;
  const std::string token = "read-token-0123456789abcdef0123456789";
  RunningAgent a(w, {{"UPDATE_INTERVAL", "3600"},
                     {"PROXMOX_DISCOVER_HOSTS", "false"},
                     {"AGENT_READ_TOKEN", token}});
  REQUIRE(a.wait_cycles(1));
  CHECK(a.get("/vms/" + std::to_string(w.stopped))->status == 401);
  auto r = explain(w, a, w.stopped, {{"AGENT_READ_TOKEN", token}});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(has(r.out, "kept out by:    stopped"));
  CHECK(!has(r.out + r.err, token));
  r = explain(w, a, w.stopped, {{"AGENT_READ_TOKEN", "wrong-token-0123456789abcdef012345"}});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(has(r.err, "403: the bearer token is not valid"), r.err);
}

// The operator's form of POST /sync/confirm (docs/settings.md "Modes and
// flags"): what is held, a command to write it that reads the same env file,
// and that command taking exactly the hold it names.
TEST_CASE("confirm: --confirm shows the first population held - and --confirm HOLD writes it") {
  World w;
  const std::string token = "control-token-control-token";
  RunningAgent a(w, {{"CHANGE_BRAKE_MIN", "3"}, {"AGENT_API_TOKEN", token}});
  REQUIRE(a.wait_cycles(1));
  const auto id = a.get_json("/status")["sync"]["held"].value("id", std::string());
  REQUIRE(!id.empty());
  const auto env_file = w.dir.write("operator.env", "PORT=" + std::to_string(a.port()) + "\n");
  auto e = w.env();
  e.erase("PORT");  // the environment would win over the env file
  e["AGENT_API_TOKEN"] = token;
  auto confirm = [&](std::vector<std::string> args) {
    return run_process(PHA_AGENT_BINARY, {std::move(args), e, w.dir.path()}, 30s);
  };

  auto r = confirm({"--env-file", env_file, "--confirm"});
  INFO(r.out, r.err);
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "proxmox-host-agent --env-file " + env_file + " --confirm " + id));
  CHECK(w.rows().empty());

  CHECK(confirm({"--env-file", env_file, "--confirm", "h000000000000"}).exit_code == 1);
  const auto before = a.get_json("/status")["sync"]["cycle_count"].get<std::uint64_t>();
  r = confirm({"--env-file", env_file, "--confirm", id});
  CHECK(r.exit_code == 0);
  CHECK(has(r.out, "confirmed " + id));
  REQUIRE(a.wait_cycles(before + 1));
  CHECK(w.rows().size() == w.running.size());
  w.check_no_duplicates();
}
