// The sync loop's schedule on a fake clock: start-up cycle, jittered interval,
// triggers, the reconnect schedule, the heartbeat, and a prompt stop.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include <doctest/doctest.h>

#include "agent/sync/loop.hpp"
#include "tests/support/fake_clock.hpp"
#include "tests/support/fake_http.hpp"

using namespace pha;
using namespace std::chrono_literals;
using test::FakeHttp;
using test::http_answer;

namespace {

struct Harness {
  FakeHttp pve;
  FakeHttp adb;
  test::FakeClock clock;
  Settings s;
  std::unique_ptr<LiveSettings> live;
  std::unique_ptr<ProxmoxClient> proxmox;
  std::unique_ptr<AccountDbClient> accountdb;
  std::unique_ptr<SyncEngine> engine;
  std::mutex mutex;
  std::vector<CycleReport> reports;
  std::condition_variable cv;

  Harness() {
    s.node_name = "pve";
    s.accountdb_node_id = 34;
    s.update_interval = 300;
    s.vm_details = false;
    s.sync_lxc = false;
    ProxmoxClientOptions o;
    o.host = *parse_url("https://127.0.0.1:8006", {"https", 8006});
    o.credentials = ProxmoxCredentials{.token_id = "a@pve!t", .token_secret = "x"};
    o.node_name = "pve";
    o.sync_lxc = false;
    o.vm_details = false;
    proxmox = std::make_unique<ProxmoxClient>(
        o, [this](const HttpRequest& r) { return pve.send(r); }, clock);
    accountdb = std::make_unique<AccountDbClient>(
        AccountDbClientOptions{*parse_url("http://127.0.0.1:5000", {"", 0}), "key", 34, 30s},
        [this](const HttpRequest& r) { return adb.send(r); });
    live = std::make_unique<LiveSettings>(s);
    engine = std::make_unique<SyncEngine>(*live, *proxmox, *accountdb, clock);
    pve.on("GET /api2/json/nodes/pve/qemu", http_answer(200, R"({"data":[]})"));
    adb.on("GET /proxmox-nodes/agent-node/34", http_answer(200, R"({"id":34})"));
    adb.on("GET /vm-access/node/34/whitelist/agent", http_answer(200, "[]"));
    adb.on("GET /proxmox-nodes/agent-vms/34", http_answer(200, R"({"vms":[],"count":0})"));
    adb.on("POST /proxmox-nodes/heartbeat",
           http_answer(200, R"({"message":"Heartbeat received"})"));
  }

  SyncLoop::CycleObserver observer() {
    return [this](const CycleReport& r) {
      std::lock_guard lock(mutex);
      reports.push_back(r);
      cv.notify_all();
    };
  }
  bool await_cycles(std::size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 10s, [&] { return reports.size() >= n; });
  }
  std::size_t cycles() {
    std::lock_guard lock(mutex);
    return reports.size();
  }
};

LoopTimings timings() {
  return {300s, 60s, 120s};
}

}  // namespace

TEST_CASE("jitter stays within 10 percent of the period") {
  CHECK(jittered(300s, 0.5) == 300s);
  CHECK(jittered(300s, 0.0) == 270s);
  CHECK(jittered(300s, 0.999999) > 329s);
  CHECK(jittered(300s, 0.999999) <= 330s);
}

TEST_CASE("a cycle at start-up and then one per interval") {
  Harness h;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  CHECK(h.reports[0].success);
  // Two waiters: the sync loop and the heartbeat.
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(269s);  // below the shortest jittered interval
  REQUIRE(h.clock.await_waiters(2));
  CHECK(h.cycles() == 1);
  h.clock.advance(62s);  // beyond the longest
  REQUIRE(h.await_cycles(2));
  loop.stop();
  CHECK(loop.cycles() == 2);
}

TEST_CASE("a trigger runs a cycle now") {
  Harness h;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  loop.trigger();
  REQUIRE(h.await_cycles(2));
  loop.stop();
}

TEST_CASE("triggers that arrive during a cycle are merged into it") {
  Harness h;
  std::mutex gate_mutex;
  std::condition_variable gate;
  bool open = false;
  std::atomic<int> e_calls{0};
  h.adb.on("GET /proxmox-nodes/agent-vms/34", [&](const HttpRequest&) {
    if (++e_calls == 2) {  // the second cycle blocks until the test has triggered twice
      std::unique_lock lock(gate_mutex);
      gate.wait_for(lock, 10s, [&] { return open; });
    }
    return http_answer(200, R"({"vms":[],"count":0})");
  });
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  loop.trigger();
  // Wait until the second cycle is inside list_vms, then trigger twice more.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (e_calls.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();  // bounded by the deadline, not by a count of turns
  }
  REQUIRE(e_calls.load() >= 2);
  loop.trigger();
  loop.trigger();
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate.notify_all();
  REQUIRE(h.await_cycles(2));
  // After the second cycle the loop waits for the interval: no third cycle.
  REQUIRE(h.clock.await_waiters(2));
  CHECK(h.cycles() == 2);
  loop.stop();
}

TEST_CASE(
    "a reload during a cycle runs a cycle of its own right after it - with the new settings") {
  Harness h;
  // A stopped, whitelisted guest: created only under CREATE_STOPPED_VMS=true.
  h.pve.on("GET /api2/json/nodes/pve/qemu",
           http_answer(200, R"({"data":[{"vmid":101,"name":"a","status":"stopped","cpus":1,)"
                            R"("maxmem":536870912,"maxdisk":0,"cpu":0,"mem":0,"uptime":0}]})"));
  h.adb.on("GET /vm-access/node/34/whitelist/agent", http_answer(200, "[101]"));
  h.adb.on("PUT /vms/agent/-101", http_answer(200, R"({"id":7})"));
  std::mutex gate_mutex;
  std::condition_variable gate;
  bool open = false;
  std::atomic<int> e_calls{0};
  h.adb.on("GET /proxmox-nodes/agent-vms/34", [&](const HttpRequest&) {
    if (++e_calls == 2) {  // the second cycle blocks until the test has reloaded
      std::unique_lock lock(gate_mutex);
      gate.wait_for(lock, 10s, [&] { return open; });
    }
    return http_answer(200, R"({"vms":[],"count":0})");
  });
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  loop.trigger();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (e_calls.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();  // bounded by the deadline, not by a count of turns
  }
  REQUIRE(e_calls.load() >= 2);
  // SIGHUP while the second cycle runs with the old snapshot: the new one is
  // in force, and a trigger from the API comes at once too.
  auto changed = h.s;
  changed.create_stopped_vms = true;
  h.live->replace(LoadedConfig{changed});
  loop.reload();
  loop.trigger();
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate.notify_all();
  // A third cycle without any time passing: the reload's own.
  REQUIRE(h.await_cycles(3));
  CHECK(h.reports[1].stats.created == 0);  // the running cycle kept its snapshot
  CHECK(h.reports[2].stats.created == 1);  // the reload's cycle has the new one
  CHECK(h.adb.count("PUT /vms/agent/-101") == 1);
  // Then the interval again: the trigger was merged, nothing more runs.
  REQUIRE(h.clock.await_waiters(2));
  CHECK(h.cycles() == 3);
  CHECK(loop.next_cycle_at() >= h.clock.unix_now() + 270);
  loop.stop();
}

TEST_CASE("a reload between cycles runs one cycle now - the heartbeat takes a shorter interval") {
  Harness h;
  LoopTimings t = timings();
  std::mutex t_mutex;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock,
                Live<LoopTimings>(std::function<LoopTimings()>([&] {
                  std::lock_guard lock(t_mutex);
                  return t;
                })),
                false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(30s);  // half the old heartbeat interval
  REQUIRE(h.clock.await_waiters(2));
  {
    std::lock_guard lock(t_mutex);
    t.heartbeat_interval = 10s;  // SIGHUP: HEARTBEAT_INTERVAL=10
  }
  loop.reload();
  REQUIRE(h.await_cycles(2));
  REQUIRE(h.clock.await_waiters(2));
  CHECK(h.cycles() == 2);
  // The wait since the start, measured with the new interval, is over:
  // the heartbeat goes at the next tick, not 60 s after the last.
  h.clock.advance(1s);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (h.adb.count("POST /proxmox-nodes/heartbeat") == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(h.adb.count("POST /proxmox-nodes/heartbeat") == 1);
  loop.stop();
}

TEST_CASE("AccountDB down: cycles follow the reconnect schedule and the heartbeat pauses") {
  Harness h;
  h.adb.on("GET /proxmox-nodes/agent-node/34", test::http_failure(FailureKind::network, "refused"));
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  CHECK(h.reports[0].accountdb_unreachable);
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(6s);  // the first reconnect probe comes after about 5 s (±20 %)
  REQUIRE(h.await_cycles(2));
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(61s);  // a heartbeat would be due, but AccountDB is down
  REQUIRE(h.clock.await_waiters(2));
  CHECK(h.adb.count("POST /proxmox-nodes/heartbeat") == 0);
  loop.stop();
}

TEST_CASE("the heartbeat runs on its own timer while AccountDB is up") {
  Harness h;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(67s);
  for (int i = 0; i < 100000 && h.adb.count("POST /proxmox-nodes/heartbeat") == 0; ++i) {
    std::this_thread::yield();
  }
  CHECK(h.adb.count("POST /proxmox-nodes/heartbeat") == 1);
  CHECK(h.cycles() == 1);
  loop.stop();
}

TEST_CASE("a dry run sends no heartbeat - it is a write") {
  Harness h;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), true, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  CHECK(h.reports[0].dry_run);
  REQUIRE(h.clock.await_waiters(2));
  h.clock.advance(67s);  // the heartbeat timer fires at most 66 s after start
  REQUIRE(h.clock.await_waiters(2));
  // As long as the positive test above gives a sent heartbeat to show up.
  for (int i = 0; i < 100000 && h.adb.count("POST /proxmox-nodes/heartbeat") == 0; ++i) {
    std::this_thread::yield();
  }
  CHECK(h.adb.count("POST /proxmox-nodes/heartbeat") == 0);
  loop.stop();
}

TEST_CASE("stop ends every wait at once") {
  Harness h;
  SyncLoop loop(*h.engine, *h.accountdb, h.clock, timings(), false, h.observer());
  loop.start();
  REQUIRE(h.await_cycles(1));
  REQUIRE(h.clock.await_waiters(2));
  const auto t0 = std::chrono::steady_clock::now();
  loop.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(h.clock.waiting() == 0);
}
