// One sync cycle against scripted Proxmox and AccountDB peers and a fake clock.

#include <condition_variable>
#include <fstream>
#include <mutex>

#include <doctest/doctest.h>

#include "agent/sync/engine.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::FakeHttp;
using test::http_answer;

namespace {

const std::string kA = "GET /proxmox-nodes/agent-node/34";
const std::string kB = "POST /proxmox-nodes/heartbeat";
const std::string kC = "GET /vm-access/node/34/whitelist/agent";
const std::string kE = "GET /proxmox-nodes/agent-vms/34";

std::string qemu_list(const std::vector<std::tuple<int, std::string, std::string>>& guests) {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& [vmid, name, status] : guests) {
    data.push_back({{"vmid", vmid},
                    {"name", name},
                    {"status", status},
                    {"cpus", 2},
                    {"cpu", 0.1},
                    {"maxmem", 2147483648LL},
                    {"maxdisk", 34359738368LL},
                    {"uptime", status == "running" ? 100 : 0}});
  }
  return nlohmann::json({{"data", data}}).dump();
}

// An AccountDB that stores rows the way the real server does (enough for the engine).
struct FakeAccountDb {
  FakeHttp http;
  std::vector<nlohmann::json> rows;
  std::int64_t next_id = 1;
  std::vector<std::int64_t> whitelist{101, 102};
  std::mutex mutex;

  FakeAccountDb() {
    http.on(kA, http_answer(200, R"({"id":34,"name":"pha-node-34","owner_id":2,"whitelist":[]})"));
    http.on(kB, http_answer(200, R"({"message":"Heartbeat received"})"));
    http.on(kC, [this](const HttpRequest&) {
      return http_answer(200, nlohmann::json(whitelist).dump());
    });
    http.on(kE, [this](const HttpRequest&) {
      std::lock_guard lock(mutex);
      return http_answer(
          200, nlohmann::json({{"vms", rows}, {"count", rows.size()}, {"node_id", 34}}).dump());
    });
  }
  // PUT /vms/agent/{id} for ids in [-200, 200].
  void serve_puts() {
    for (int id = -200; id <= 200; ++id) {
      http.on("PUT /vms/agent/" + std::to_string(id),
              [this, id](const HttpRequest& r) { return put(id, r); });
    }
  }
  HttpOutcome put(std::int64_t id, const HttpRequest& r) {
    std::lock_guard lock(mutex);
    auto body = nlohmann::json::parse(r.body);
    for (auto& row : rows) {
      if (row["id"] == id) {
        for (const auto& [k, v] : body.items()) {
          if (!v.is_null() && row.contains(k)) {
            row[k] = v;
          }
        }
        row["updated_at"] = "2026-11-22T00:00:00+00:00";
        return http_answer(200, row.dump());
      }
    }
    nlohmann::json row = {
        {"id", next_id++},
        {"vmid", body["vmid"]},
        {"name", body["name"]},
        {"status", body["status"]},
        {"cpu_cores", body.value("cpu_cores", nlohmann::json(nullptr))},
        {"cpu_usage_percent", body.value("cpu_usage_percent", nlohmann::json(nullptr))},
        {"memory_mb", body.value("memory_mb", nlohmann::json(nullptr))},
        {"disk_gb", body.value("disk_gb", nlohmann::json(nullptr))},
        {"ip_address", body.value("ip_address", nlohmann::json(nullptr))},
        {"created_at", "2026-11-22T00:00:00+00:00"},
        {"updated_at", "2026-11-22T00:00:00+00:00"}};
    rows.push_back(row);
    return http_answer(200, row.dump());
  }
  std::size_t puts() const {
    std::size_t n = 0;
    for (const auto& r : http.requests()) {
      n += r.method == "PUT" ? 1U : 0U;
    }
    return n;
  }
};

Settings settings(const std::string& state_dir = "") {
  Settings s;
  s.proxmox_host = *parse_url("https://127.0.0.1:8006", {"https", 8006});
  s.node_name = "pve";
  s.proxmox_token_id = "a@pve!t";
  s.proxmox_token_secret = "x";
  s.vm_details = false;
  s.sync_lxc = false;
  s.accountdb_endpoints = {{*parse_url("http://127.0.0.1:5000", {"", 0}), 1, 1}};
  s.accountdb_api_key = "key";
  s.accountdb_node_id = 34;
  s.update_interval = 300;
  s.state_dir = state_dir;
  return s;
}

struct Cycle {
  FakeHttp pve;
  FakeAccountDb adb;
  test::FakeClock clock;
  Settings s;
  LiveSettings live;
  ProxmoxClient proxmox;
  AccountDbClient accountdb;
  SyncEngine engine;
  explicit Cycle(Settings settings_in)
      : s(std::move(settings_in)),
        live(s),
        proxmox(
            [&] {
              ProxmoxClientOptions o;
              o.host = s.proxmox_host;
              o.credentials = ProxmoxCredentials{.token_id = s.proxmox_token_id,
                                                 .token_secret = s.proxmox_token_secret};
              o.node_name = s.node_name;
              o.sync_lxc = false;
              o.vm_details = false;
              return o;
            }(),
            [this](const HttpRequest& r) { return pve.send(r); }, clock),
        accountdb(AccountDbClientOptions{s.accountdb_endpoints[0].url, "key", 34, 30s},
                  [this](const HttpRequest& r) { return adb.http.send(r); }),
        engine(live, proxmox, accountdb, clock) {
    adb.serve_puts();
    pve.on("GET /api2/json/nodes/pve/qemu",
           http_answer(200, qemu_list({{101, "web", "running"},
                                       {102, "db", "stopped"},
                                       {103, "other", "running"}})));
    pve.on("GET /api2/json/version",
           http_answer(200, R"({"data":{"version":"9.0.3","release":"9.0"}})"));
    pve.on(
        "GET /api2/json/access/permissions",
        http_answer(200, R"({"data":{"/":{"VM.Audit":1,"Sys.Audit":1},"/vms":{"VM.Audit":1}}})"));
  }
};

}  // namespace

TEST_CASE("the first cycle creates the whitelisted running guests and reports every stat") {
  Cycle c(settings());
  auto r = c.engine.run_cycle(false);
  REQUIRE_MESSAGE(r.success, r.message);
  CHECK(r.status == Severity::ok);
  CHECK(r.stats.created == 1);  // 101; 102 is stopped, 103 not whitelisted
  CHECK(r.stats.filtered == 2);
  CHECK(r.stats.filtered_out == 1);
  CHECK(r.stats.total_proxmox_vms == 3);
  CHECK(r.stats.online_vms == 2);
  CHECK(r.stats.whitelist_enabled);
  CHECK(r.stats.whitelist_count == 2);
  CHECK(r.stats.requests_sent == 1);
  CHECK(r.stats.accountdb_requests == 4);  // node_info, whitelist, list_vms, one put_vm
  // The list, and the first cycle's look at the token's permissions (/version and
  // /access/permissions).
  CHECK(r.stats.proxmox_requests == 3);
  CHECK(c.pve.count("GET /api2/json/access/permissions") == 1);
  CHECK(c.proxmox.permissions().missing.empty());
  CHECK(c.adb.http.count("PUT /vms/agent/-101") == 1);
  const auto j = to_json(r);
  for (const auto* key :
       {"created", "updated", "unchanged", "filtered", "marked_missing", "errors",
        "total_proxmox_vms", "total_vms_before_filter", "total_vms_after_filter", "filtered_out",
        "whitelist_enabled", "whitelist_count", "whitelist_last_updated", "used_cached_whitelist",
        "online_vms", "duration_ms", "requests_sent"}) {
    CHECK_MESSAGE(j["stats"].contains(key), key);
  }
  CHECK(j["planned"][0] == nlohmann::json({{"method", "PUT"},
                                           {"path", "/vms/agent/-101"},
                                           {"vmid", 101},
                                           {"kind", "create"},
                                           {"reason", "new"}}));
}

TEST_CASE("a second cycle with nothing changed sends no put_vm and skips node_info and whitelist") {
  Cycle c(settings());
  REQUIRE(c.engine.run_cycle(false).success);
  c.adb.http.clear_requests();
  c.clock.advance(60s);
  auto r = c.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.stats.requests_sent == 0);
  CHECK(r.stats.unchanged == 1);
  CHECK(c.adb.puts() == 0);
  CHECK(c.adb.http.count(kA) == 0);  // A succeeded within UPDATE_INTERVAL
  CHECK(c.adb.http.count(kC) == 0);  // the whitelist is younger than its TTL
  CHECK(c.adb.http.count(kE) == 1);
  // After UPDATE_INTERVAL node_info runs again, after WHITELIST_TTL so does whitelist.
  c.clock.advance(300s);
  c.adb.http.clear_requests();
  REQUIRE(c.engine.run_cycle(false).success);
  CHECK(c.adb.http.count(kA) == 1);
  CHECK(c.adb.http.count(kC) == 1);
}

TEST_CASE("node_info failing fails the cycle before anything else - marked unreachable or auth") {
  Cycle c(settings());
  c.adb.http.on(kA, test::http_failure(FailureKind::network, "refused"));
  auto r = c.engine.run_cycle(false);
  CHECK_FALSE(r.success);
  CHECK(r.status == Severity::error);
  CHECK(r.accountdb_unreachable);
  CHECK(c.engine.accountdb_down());
  CHECK(c.pve.requests().empty());
  c.adb.http.on(kA, http_answer(401, R"({"detail":"Invalid API key"})"));
  auto auth = c.engine.run_cycle(false);
  CHECK(auth.accountdb_auth_failed);
  CHECK_FALSE(auth.accountdb_unreachable);
  CHECK(auth.message.find("ACCOUNTDB_API_KEY") != std::string::npos);
  CHECK(c.adb.puts() == 0);
}

TEST_CASE("a failed Proxmox read or a failed list_vms fails the cycle and writes nothing") {
  Cycle c(settings());
  c.pve.on("GET /api2/json/nodes/pve/qemu", http_answer(500, "", "hostname lookup 'pve' failed"));
  auto r = c.engine.run_cycle(false);
  CHECK_FALSE(r.success);
  CHECK(r.message.find("Proxmox") != std::string::npos);
  Cycle e(settings());
  e.adb.http.on(kE, http_answer(500, "boom"));
  auto r2 = e.engine.run_cycle(false);
  CHECK_FALSE(r2.success);
  CHECK(e.adb.puts() == 0);
}

TEST_CASE("the whitelist endpoint down: the cached copy is used and flagged") {
  Cycle c(settings());
  REQUIRE(c.engine.run_cycle(false).success);
  c.adb.http.on(kC, http_answer(503, "down"));
  c.clock.advance(301s);
  auto r = c.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.stats.used_cached_whitelist);
  CHECK(r.stats.whitelist_count == 2);
  CHECK(r.status == Severity::warning);
  CHECK(c.engine.whitelist_status().stale);
}

TEST_CASE("a dry run sends no write and reports what it would send") {
  Cycle c(settings());
  auto r = c.engine.run_cycle(true);
  REQUIRE(r.success);
  CHECK(r.dry_run);
  CHECK(c.adb.puts() == 0);
  CHECK(r.stats.created == 1);
  CHECK(r.stats.requests_sent == 0);
  REQUIRE(r.planned.size() == 1);
  CHECK(r.message.starts_with("dry run"));
}

TEST_CASE("one failed put_vm does not stop the others - a warning with the error") {
  Cycle c(settings());
  c.adb.whitelist = {101, 102, 103};
  c.pve.on(
      "GET /api2/json/nodes/pve/qemu",
      http_answer(
          200, qemu_list({{101, "a", "running"}, {102, "b", "running"}, {103, "c", "running"}})));
  c.adb.http.on("PUT /vms/agent/-102", http_answer(422, R"({"detail":"bad"})"));
  auto r = c.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.status == Severity::warning);
  CHECK(r.stats.created == 2);
  CHECK(r.stats.errors == 1);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].find("VMID 102") != std::string::npos);
}

TEST_CASE("at most 4 put_vm requests are in flight") {
  auto s = settings();
  s.change_brake_min = 100;  // twelve creates at once: not what this test is about
  Cycle c(s);
  std::vector<std::int64_t> wl;
  std::vector<std::tuple<int, std::string, std::string>> guests;
  for (int v = 101; v <= 112; ++v) {
    wl.push_back(v);
    guests.emplace_back(v, "g" + std::to_string(v), "running");
  }
  c.adb.whitelist = wl;
  c.pve.on("GET /api2/json/nodes/pve/qemu", http_answer(200, qemu_list(guests)));
  std::mutex m;
  std::condition_variable cv;
  int in_flight = 0;
  int max_in_flight = 0;
  int done = 0;
  for (int v = 101; v <= 112; ++v) {
    c.adb.http.on("PUT /vms/agent/-" + std::to_string(v), [&](const HttpRequest&) {
      std::unique_lock lock(m);
      ++in_flight;
      max_in_flight = std::max(max_in_flight, in_flight);
      cv.notify_all();
      // Hold each request until 4 are in flight, or until the rest cannot reach 4.
      cv.wait_for(lock, 5s, [&] { return in_flight >= 4 || 12 - done < 4; });
      --in_flight;
      ++done;
      cv.notify_all();
      return http_answer(200, R"({"id":1})");
    });
  }
  auto r = c.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.stats.created == 12);
  CHECK(max_in_flight == 4);
}

TEST_CASE("the sync state is persisted and reloaded so a restart sends no burst") {
  test::TempDir dir;
  {
    Cycle c(settings(dir.path()));
    REQUIRE(c.engine.run_cycle(false).success);
    CHECK(std::ifstream(dir.path() + "/sync-state.json").good());
    CHECK(std::ifstream(dir.path() + "/whitelist.json").good());
  }
  Cycle restarted(settings(dir.path()));
  const auto notes = restarted.engine.load_state();
  CHECK(notes.size() == 2);
  // The whitelist from the state file is used when AccountDB cannot give one.
  restarted.adb.http.on(kC, http_answer(500, "down"));
  restarted.adb.rows.push_back({{"id", 1},
                                {"vmid", 101},
                                {"name", "web"},
                                {"status", "running"},
                                {"cpu_cores", 2},
                                {"cpu_usage_percent", 10.0},
                                {"memory_mb", 2048},
                                {"disk_gb", 32},
                                {"ip_address", nullptr},
                                {"created_at", "x"},
                                {"updated_at", "x"}});
  auto r = restarted.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.stats.used_cached_whitelist);
  CHECK(r.stats.whitelist_count == 2);
  CHECK(restarted.adb.puts() == 0);
}

// Issue 32, case 2: one well-formed empty list_vms answer made the agent
// create a second row for every guest although it held each row's id.
TEST_CASE("an empty list_vms after a good cycle creates nothing - a change goes to the known row") {
  auto s = settings();
  Cycle c(s);
  c.adb.whitelist = {101, 103};
  REQUIRE(c.engine.run_cycle(false).success);
  REQUIRE(c.adb.rows.size() == 2);
  const auto row_101 = c.adb.rows[0]["id"].get<std::int64_t>();
  // AccountDB answers list_vms with no row (a restore, a policy change, a bug).
  c.adb.http.on(kE, http_answer(200, R"({"vms":[],"count":0,"node_id":34})"));
  c.clock.advance(60s);
  auto quiet = c.engine.run_cycle(false);
  REQUIRE(quiet.success);
  CHECK(quiet.stats.created == 0);
  CHECK(c.adb.rows.size() == 2);
  // A guest that changes meanwhile is written to the row the agent knows.
  c.pve.on("GET /api2/json/nodes/pve/qemu",
           http_answer(200, qemu_list({{101, "web-renamed", "running"},
                                       {102, "db", "stopped"},
                                       {103, "other", "running"}})));
  c.adb.http.clear_requests();
  auto changed = c.engine.run_cycle(false);
  REQUIRE(changed.success);
  CHECK(changed.stats.created == 0);
  CHECK(changed.stats.updated == 1);
  CHECK(c.adb.http.count("PUT /vms/agent/" + std::to_string(row_101)) == 1);
  CHECK(c.adb.rows.size() == 2);
  CHECK(c.adb.rows[0]["name"] == "web-renamed");
  // ...and only once: the known row now holds the new name.
  c.adb.http.clear_requests();
  REQUIRE(c.engine.run_cycle(false).success);
  CHECK(c.adb.puts() == 0);
}

TEST_CASE("the remembered rows survive a restart through the state file") {
  test::TempDir dir;
  {
    Cycle c(settings(dir.path()));
    REQUIRE(c.engine.run_cycle(false).success);
  }
  Cycle restarted(settings(dir.path()));
  static_cast<void>(restarted.engine.load_state());
  // A fresh AccountDB fake: list_vms shows no row, yet row 1 is known.
  auto r = restarted.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.stats.created == 0);
  CHECK(restarted.adb.http.count("PUT /vms/agent/-101") == 0);
}

TEST_CASE("held creates: shown with an id - confirmed by it - written in the next cycle") {
  Cycle c(settings());
  std::vector<std::int64_t> wl;
  std::vector<std::tuple<int, std::string, std::string>> guests;
  for (int v = 101; v <= 106; ++v) {
    wl.push_back(v);
    guests.emplace_back(v, "g" + std::to_string(v), "running");
  }
  c.adb.whitelist = wl;
  c.pve.on("GET /api2/json/nodes/pve/qemu", http_answer(200, qemu_list(guests)));
  auto first = c.engine.run_cycle(false);
  REQUIRE(first.success);
  CHECK(first.status == Severity::warning);
  CHECK(first.stats.created == 0);
  CHECK(c.adb.puts() == 0);
  const auto held = c.engine.held();
  REQUIRE_FALSE(held.empty());
  CHECK(held.requests.size() == 6);
  CHECK(to_json(first)["held"]["id"] == held.id);
  // An id that is not the one held now is refused: nothing is confirmed.
  CHECK_FALSE(c.engine.confirm("h000000000000").ok());
  REQUIRE(c.engine.confirm(held.id).ok());
  auto second = c.engine.run_cycle(false);
  REQUIRE(second.success);
  CHECK(second.stats.created == 6);
  CHECK(second.held.empty());
  CHECK(c.engine.held().empty());
  CHECK_FALSE(c.engine.confirm(held.id).ok());  // nothing is held any more
}

// Issue 32, case 1: a token that lost VM.Audit gets 200 {"data": []}; every
// row of the node was marked deleted after MISSING_AFTER_CYCLES cycles.
TEST_CASE("a token that loses VM.Audit marks nothing - however many cycles") {
  auto s = settings();
  s.missing_after_cycles = 2;
  Cycle c(s);
  c.adb.whitelist = {101, 103};
  REQUIRE(c.engine.run_cycle(false).success);
  REQUIRE(c.adb.rows.size() == 2);
  c.pve.on("GET /api2/json/nodes/pve/qemu", http_answer(200, R"({"data":[]})"));
  c.pve.on("GET /api2/json/access/permissions",
           http_answer(200, R"({"data":{"/":{"Sys.Audit":1}}})"));
  c.pve.on("GET /api2/json/cluster/resources", http_answer(200, R"({"data":[]})"));
  for (int i = 0; i < 5; ++i) {
    c.clock.advance(300s);
    auto r = c.engine.run_cycle(false);
    REQUIRE(r.success);
    CHECK_FALSE(r.read_counts_for_missing);
    CHECK(r.read_incomplete_reason.find("lacks VM.Audit") != std::string::npos);
    CHECK(r.stats.marked_missing == 0);
  }
  for (const auto& row : c.adb.rows) {
    CHECK(row["status"] == "running");
  }
}

TEST_CASE("a gone guest the token may not see any more is hidden - never marked") {
  auto s = settings();
  s.missing_after_cycles = 1;
  Cycle c(s);
  c.adb.whitelist = {101, 103};
  REQUIRE(c.engine.run_cycle(false).success);
  // 103 moved into a pool the token cannot see: gone from the list, the
  // token still holds VM.Audit on /vms.
  c.pve.on("GET /api2/json/nodes/pve/qemu",
           http_answer(200, qemu_list({{101, "web", "running"}, {102, "db", "stopped"}})));
  c.pve.on("GET /api2/json/cluster/resources", http_answer(200, R"({"data":[]})"));
  c.pve.on("GET /api2/json/access/permissions", [](const HttpRequest& r) {
    if (r.url.find("path=%2Fvms%2F103") != std::string::npos) {
      return http_answer(200, R"({"data":{"/vms/103":{}}})");
    }
    return http_answer(200, R"({"data":{"/":{"VM.Audit":1,"Sys.Audit":1},"/vms":{"VM.Audit":1}}})");
  });
  c.clock.advance(300s);
  auto r = c.engine.run_cycle(false);
  REQUIRE(r.success);
  CHECK(r.read_counts_for_missing);
  CHECK(r.stats.marked_missing == 0);
  CHECK(r.hidden == std::vector<std::int64_t>{103});
  REQUIRE(r.accounts);
  CHECK(r.accounts->at(103).decision.kind == GuestDecisionKind::hidden);
}
