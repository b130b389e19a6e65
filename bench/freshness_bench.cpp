// How long AccountDB is behind Proxmox (docs/sync.md "Changes seen between
// cycles"): two worlds, each a two-node Proxmox simulator, an AccountDB
// simulator and the real agent binary at its defaults, one with change-driven
// sync (CHANGE_POLL_INTERVAL 2 s) and one without (0: the periodic cycle
// only, the agent before it). The same guest operations happen in both at the
// same random times: start, stop, create, destroy, migrate here, migrate
// away, rename (no task), power off from inside (no task). For each, the time
// until AccountDB's row shows it, per kind p50, p95 and max; beside it the
// Proxmox requests per minute to the node, over a quiet window before the
// operations (the steady state) and over the operations.
//
//   build/bench/freshness_bench [EVENTS] [WINDOW_S] [QUIET_S] [UPDATE_INTERVAL]
//   (defaults 48, 300, 120, 300; the periodic world needs up to three
//   UPDATE_INTERVALs after the last operation: a guest is marked gone after
//   MISSING_AFTER_CYCLES reads)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_credentials.hpp"
#include "tests/sim/adb_sim.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

using bench::kKey;
using bench::kTokenId;
using bench::kTokenSecret;

constexpr std::size_t kGuests = 200;  // each world's, on two nodes

const std::vector<std::string> kKinds = {"start",        "stop",         "create", "destroy",
                                         "migrate here", "migrate away", "rename", "power off"};
const std::map<std::string, bool> kLeavesTask = {
    {"start", true},        {"stop", true},         {"create", true},  {"destroy", true},
    {"migrate here", true}, {"migrate away", true}, {"rename", false}, {"power off", false}};

[[noreturn]] void broken(const std::string& why) {
  std::fprintf(stderr, "freshness_bench: %s\n", why.c_str());
  std::exit(1);
}

// One planned operation: its kind, its time after the window's start, the
// guest. Chosen once, applied to both worlds.
struct Event {
  std::string kind;
  Steady::duration at{};
  int vmid = 0;
  std::string name;  // rename, create
};

struct World {
  std::string label;
  test::TempDir dir;
  sim::PveSim pve;
  sim::AdbSim adb;
  std::unique_ptr<test::Process> agent;
  std::map<std::string, std::vector<double>> seconds;  // by kind
  std::size_t missed = 0;

  World(std::string l, std::size_t guests)
      : label(std::move(l)),
        pve({.dir = dir.path(),
             .nodes = {"pve1", "pve2"},
             .guests = guests,
             .seed = 11,
             .auth_failure_delay = 10ms,
             .tokens = {{.id = kTokenId, .secret = kTokenSecret}}}),
        adb({.nodes = {{.id = 1, .name = "pve1", .api_key = kKey}}, .rate_limit = 0}) {
    std::vector<long long> all;
    for (long long v = 100; v < 2000; ++v) {
      all.push_back(v);  // every guest, and every one that may come
    }
    adb.set_whitelist(1, all);
  }

  void start(const std::map<std::string, std::string>& extra) {
    std::map<std::string, std::string> env = {{"PROXMOX_HOST", pve.host("pve1").url()},
                                              {"PROXMOX_TOKEN_ID", kTokenId},
                                              {"PROXMOX_TOKEN_SECRET", kTokenSecret},
                                              {"PROXMOX_CA_FILE", pve.ca_file()},
                                              {"PROXMOX_NODE_NAME", "pve1"},
                                              {"ACCOUNTDB_URL", adb.url()},
                                              {"ACCOUNTDB_API_KEY", kKey},
                                              {"ACCOUNTDB_NODE_ID", "1"},
                                              {"CREATE_STOPPED_VMS", "true"},
                                              // The first population, as after --confirm.
                                              {"CHANGE_BRAKE_MIN", "100000"},
                                              {"BIND_ADDRESS", "127.0.0.1"},
                                              {"PORT", "0"},
                                              {"LOG_FORMAT", "json"},
                                              {"LOG_LEVEL", "warning"},
                                              {"PATH", "/usr/bin:/bin"}};
    for (const auto& [k, v] : extra) {
      env[k] = v;
    }
    agent = std::make_unique<test::Process>(PHA_AGENT_BINARY,
                                            test::ProcessOptions{{}, env, dir.path()});
    const auto expected = pve.cluster().guests_on("pve1").size();
    const auto deadline = Steady::now() + 60s;
    while (adb.rows_of_node(1).size() < expected) {
      if (Steady::now() > deadline) {
        broken(label + ": the first population did not land:\n" + agent->err_so_far());
      }
      std::this_thread::sleep_for(20ms);  // a poll interval
    }
  }

  std::optional<sim::AdbRow> row(int vmid) const {
    for (const auto& r : adb.rows_of_node(1)) {
      if (r.vmid == vmid) {
        return r;
      }
    }
    return std::nullopt;
  }

  // The operation on the simulator; false when it did not apply.
  bool apply(const Event& e) {
    auto& c = pve.cluster();
    if (e.kind == "start") {
      return c.start(e.vmid);
    }
    if (e.kind == "stop") {
      return c.stop(e.vmid);
    }
    if (e.kind == "power off") {
      return c.power_off(e.vmid);
    }
    if (e.kind == "rename") {
      return c.rename(e.vmid, e.name);
    }
    if (e.kind == "destroy") {
      return c.destroy(e.vmid);
    }
    if (e.kind == "migrate here") {
      return c.migrate(e.vmid, "pve1");
    }
    if (e.kind == "migrate away") {
      return c.migrate(e.vmid, "pve2");
    }
    sim::Guest g;
    g.vmid = e.vmid;
    g.node = "pve1";
    g.name = e.name;
    g.status = sim::GuestStatus::running;
    c.create(g);
    return true;
  }

  // Whether AccountDB shows the operation.
  bool landed(const Event& e) const {
    const auto r = row(e.vmid);
    if (e.kind == "start" || e.kind == "create" || e.kind == "migrate here") {
      return r && r->status == "running";
    }
    if (e.kind == "stop" || e.kind == "power off") {
      return r && r->status == "stopped";
    }
    if (e.kind == "rename") {
      return r && r->name == e.name;
    }
    if (e.kind == "destroy") {
      return r && r->status == "deleted";
    }
    return r && r->status == "migrated";  // migrate away
  }

  std::size_t node_requests() { return pve.host("pve1").total_requests(); }
  std::size_t list_requests() {
    return pve.host("pve1").count("GET /api2/json/nodes/pve1/qemu") +
           pve.host("pve1").count("GET /api2/json/nodes/pve1/lxc");
  }
};

// The operations: guests picked from the first world's state (both start the
// same), each guest used once, kinds in turn, times uniform in the window.
std::vector<Event> plan(World& w, std::size_t n, Steady::duration window, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> running;
  std::vector<int> stopped;
  std::vector<int> elsewhere;
  for (const auto& g : w.pve.cluster().guests_on("pve1")) {
    if (!g.template_ && g.status == sim::GuestStatus::running) {
      running.push_back(g.vmid);
    } else if (!g.template_ && g.status == sim::GuestStatus::stopped) {
      stopped.push_back(g.vmid);
    }
  }
  for (const auto& g : w.pve.cluster().guests_on("pve2")) {
    if (!g.template_ && g.status == sim::GuestStatus::running) {
      elsewhere.push_back(g.vmid);
    }
  }
  std::shuffle(running.begin(), running.end(), rng);
  std::shuffle(stopped.begin(), stopped.end(), rng);
  std::shuffle(elsewhere.begin(), elsewhere.end(), rng);
  const auto take = [](std::vector<int>& from) {
    if (from.empty()) {
      broken("not enough guests for the operations: use fewer EVENTS");
    }
    const int v = from.back();
    from.pop_back();
    return v;
  };
  std::uniform_int_distribution<std::int64_t> when(0, window.count());
  std::vector<Event> out;
  int next_new = 1500;
  for (std::size_t i = 0; i < n; ++i) {
    Event e;
    e.kind = kKinds[i % kKinds.size()];
    e.at = Steady::duration(when(rng));
    if (e.kind == "start" || e.kind == "destroy") {
      e.vmid = take(stopped);
    } else if (e.kind == "migrate here") {
      e.vmid = take(elsewhere);
    } else if (e.kind == "create") {
      e.vmid = next_new++;
      e.name = "new-" + std::to_string(e.vmid);
    } else {
      e.vmid = take(running);
      e.name = "renamed-" + std::to_string(e.vmid);
    }
    out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const Event& a, const Event& b) { return a.at < b.at; });
  return out;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(rank, v.size() - 1)];
}

struct Rates {
  double quiet = 0;  // requests a minute to the node, steady state
  double busy = 0;   // during the operations
  double lists = 0;  // heavy list calls a minute during the operations
};

}  // namespace

int main(int argc, char** argv) {
  const std::size_t events = argc > 1 ? std::stoul(argv[1]) : 48;
  const auto window = std::chrono::seconds(argc > 2 ? std::stol(argv[2]) : 300);
  const auto quiet = std::chrono::seconds(argc > 3 ? std::stol(argv[3]) : 120);
  const std::string interval = argc > 4 ? argv[4] : "300";
  World on("change-driven (defaults)", kGuests);
  World off("periodic only (CHANGE_POLL_INTERVAL=0)", kGuests);
  on.start({{"UPDATE_INTERVAL", interval}});
  off.start({{"UPDATE_INTERVAL", interval}, {"CHANGE_POLL_INTERVAL", "0"}});
  const auto events_planned = plan(on, events, window, 7);

  std::map<World*, Rates> rates;
  const auto q0 = Steady::now();
  const auto on_q = on.node_requests();
  const auto off_q = off.node_requests();
  std::this_thread::sleep_for(quiet);  // the steady state is what is measured here
  const double quiet_min = std::chrono::duration<double>(Steady::now() - q0).count() / 60;
  rates[&on].quiet = static_cast<double>(on.node_requests() - on_q) / quiet_min;
  rates[&off].quiet = static_cast<double>(off.node_requests() - off_q) / quiet_min;

  const auto b0 = Steady::now();
  const auto on_b = on.node_requests();
  const auto off_b = off.node_requests();
  const auto on_l = on.list_requests();
  const auto off_l = off.list_requests();
  struct Pending {
    World* w;
    const Event* e;
    Steady::time_point at;
  };
  std::vector<Pending> pending;
  std::size_t next = 0;
  // A change lands within MISSING_AFTER_CYCLES (3) periodic cycles at the latest.
  const auto give_up = std::chrono::seconds(std::stol(interval) * 4 + 60);
  while (next < events_planned.size() || !pending.empty()) {
    const auto now = Steady::now();
    while (next < events_planned.size() && now - b0 >= events_planned[next].at) {
      const auto& e = events_planned[next++];
      for (World* w : {&on, &off}) {
        if (!w->apply(e)) {
          broken(w->label + ": " + e.kind + " of " + std::to_string(e.vmid) + " did not apply");
        }
        pending.push_back({w, &e, Steady::now()});
      }
    }
    std::erase_if(pending, [&](const Pending& p) {
      if (p.w->landed(*p.e)) {
        p.w->seconds[p.e->kind].push_back(
            std::chrono::duration<double>(Steady::now() - p.at).count());
        return true;
      }
      if (Steady::now() - p.at > give_up) {
        ++p.w->missed;
        return true;
      }
      return false;
    });
    std::this_thread::sleep_for(20ms);  // a poll interval
  }
  const double busy_min = std::chrono::duration<double>(Steady::now() - b0).count() / 60;
  rates[&on].busy = static_cast<double>(on.node_requests() - on_b) / busy_min;
  rates[&off].busy = static_cast<double>(off.node_requests() - off_b) / busy_min;
  rates[&on].lists = static_cast<double>(on.list_requests() - on_l) / busy_min;
  rates[&off].lists = static_cast<double>(off.list_requests() - off_l) / busy_min;

  std::printf(
      "%zu operations at random times over %ld s, each world with %zu guests on two nodes, "
      "UPDATE_INTERVAL %s s, every other setting at its default; seconds until AccountDB's row "
      "shows the operation\n\n",
      events_planned.size(), static_cast<long>(window.count()), kGuests, interval.c_str());
  std::printf(
      "| operation | task | change-driven p50 | p95 | max | periodic only p50 | p95 | max |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const auto& k : kKinds) {
    const auto& a = on.seconds[k];
    const auto& b = off.seconds[k];
    std::printf("| %s (%zu) | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", k.c_str(),
                a.size(), kLeavesTask.at(k) ? "yes" : "no", percentile(a, 0.5), percentile(a, 0.95),
                a.empty() ? 0 : *std::max_element(a.begin(), a.end()), percentile(b, 0.5),
                percentile(b, 0.95), b.empty() ? 0 : *std::max_element(b.begin(), b.end()));
  }
  std::printf(
      "\n| Proxmox requests a minute to the node | steady state (%ld s without operations) | "
      "during the operations | of them the two list calls |\n|---|---|---|---|\n",
      static_cast<long>(quiet.count()));
  for (World* w : {&on, &off}) {
    std::printf("| %s | %.1f | %.1f | %.1f |\n", w->label.c_str(), rates[w].quiet, rates[w].busy,
                rates[w].lists);
  }
  if (on.missed + off.missed > 0) {
    std::printf("\nNot landed within %ld s: change-driven %zu, periodic only %zu\n",
                static_cast<long>(give_up.count()), on.missed, off.missed);
  }
  return 0;
}
