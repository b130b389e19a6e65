// What one agent asks of each node of its cluster (docs/failover.md "Health
// checks"): a simulated cluster of N nodes in steady state, ten minutes at the
// default intervals (20 health rounds at HEALTH_CHECK_INTERVAL 30 s, 2 sync
// cycles at UPDATE_INTERVAL 300 s) run in-process as the long-running agent
// runs them, with discovery on. Each node counts the requests it receives.
// Two ways in one run, on the same cluster: every known host probed
// (HEALTH_CHECK_PEERS=1000, what version 0.2.0 did) and the default
// (HEALTH_CHECK_PEERS=2). Then the primary goes down and the next cycle's
// time shows what failover costs with either.
//
//   build/bench/probe_bench [N...]     (default: 3 10 50)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "agent/sync/engine.hpp"
#include "agent/upstream/accountdb_upstream.hpp"
#include "agent/upstream/proxmox_upstream.hpp"
#include "bench/bench_credentials.hpp"
#include "tests/sim/adb_sim.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

constexpr int kMinutes = 10;
constexpr int kRoundsPerMinute = 2;  // HEALTH_CHECK_INTERVAL 30 s
constexpr int kRoundsPerCycle = 10;  // UPDATE_INTERVAL 300 s

std::vector<std::string> node_names(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 1; i <= n; ++i) {
    out.push_back("pve" + std::to_string(i));
  }
  return out;
}

struct Row {
  std::size_t nodes = 0;
  int peers = 0;
  double primary = 0;       // requests per minute to the agent's own node
  double max_other = 0;     // the most to any other node
  double total = 0;         // to all nodes
  std::size_t reached = 0;  // nodes that got any request
  double failover_ms = 0;   // the first cycle after the primary went down
  std::string in_use;       // the node in use after it
};

class Cluster {
 public:
  explicit Cluster(std::size_t nodes)
      : pve({.dir = dir.path(),
             .nodes = node_names(nodes),
             .auth_failure_delay = 10ms,
             .tokens = {{.id = bench::kTokenId, .secret = bench::kTokenSecret}}}),
        adb({.nodes = {{.id = 1, .name = "pve1", .api_key = bench::kKey}}, .rate_limit = 0}) {
    pve.cluster().generate(30 * nodes, 42);
    std::vector<long long> whitelist;
    for (const auto& g : pve.cluster().guests_on("pve1")) {
      whitelist.push_back(g.vmid);
    }
    adb.set_whitelist(1, whitelist);
  }

  Row measure(int peers) {
    for (const auto& name : pve.node_names()) {
      pve.host(name).clear_fault();
    }
    Settings s;
    s.proxmox_host = *parse_url(pve.host("pve1").url(), {"https", 8006});
    s.proxmox_token_id = bench::kTokenId;
    s.proxmox_token_secret = bench::kTokenSecret;
    s.proxmox_ca_file = pve.ca_file();
    s.node_name = "pve1";
    s.accountdb_endpoints = {{*parse_url(adb.url(), {"", 0}), 1, 1}};
    s.accountdb_api_key = bench::kKey;
    s.accountdb_node_id = 1;
    s.health_check_peers = peers;
    s.change_brake_min = 100000;  // the first cycle creates, as after an operator's --confirm
    LiveSettings live(s);
    SystemClock clock;
    Interrupt interrupt;
    ProxmoxUpstream proxmox(live, clock, interrupt);
    AccountDbUpstream accountdb(live, clock, interrupt);
    SyncEngine engine(live, proxmox.client(), accountdb.client(), clock);
    cycle(engine);           // the first cycle creates every row
    proxmox.health_round();  // discovery
    for (const auto& name : pve.node_names()) {
      pve.host(name).reset_counts();
    }
    for (int round = 0; round < kMinutes * kRoundsPerMinute; ++round) {
      if (round % kRoundsPerCycle == 0) {
        cycle(engine);
      }
      proxmox.health_round();
    }
    Row r;
    r.nodes = pve.node_names().size();
    r.peers = peers;
    for (const auto& name : pve.node_names()) {
      std::size_t n = 0;
      for (const auto& [request, count] : pve.host(name).counts()) {
        n += count;
      }
      const double per_minute = static_cast<double>(n) / kMinutes;
      if (name == "pve1") {
        r.primary = per_minute;
      } else {
        r.max_other = std::max(r.max_other, per_minute);
      }
      r.total += per_minute;
      r.reached += n > 0 ? 1 : 0;
    }
    pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
    const auto t0 = std::chrono::steady_clock::now();
    cycle(engine);
    r.failover_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto in_use = proxmox.hosts().preferred();
    for (const auto& t : proxmox.monitor().targets()) {
      if (t.info.url == in_use) {
        r.in_use = t.info.node_name.empty() ? in_use : t.info.node_name;
      }
    }
    return r;
  }

 private:
  static void cycle(SyncEngine& engine) {
    const auto report = engine.run_cycle(false);
    if (!report.success) {
      std::fprintf(stderr, "cycle failed: %s\n", report.message.c_str());
      std::exit(1);
    }
  }

  test::TempDir dir;
  sim::PveSim pve;
  sim::AdbSim adb;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) {
    sizes.push_back(static_cast<std::size_t>(std::stoul(argv[i])));
  }
  if (sizes.empty()) {
    sizes = {3, 10, 50};
  }
  std::printf(
      "requests per minute from one agent at the default intervals (%d min simulated; discovery "
      "on)\n\n",
      kMinutes);
  std::printf(
      "| nodes | HEALTH_CHECK_PEERS | to its own node | most to another node | all nodes | nodes "
      "reached | failover cycle ms | in use after |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto n : sizes) {
    Cluster cluster(n);
    for (const int peers : {1000, 2}) {
      const auto r = cluster.measure(peers);
      std::printf("| %zu | %s | %.1f | %.1f | %.1f | %zu | %.0f | %s |\n", r.nodes,
                  peers == 1000 ? "1000 (every host, as 0.2.0)" : "2 (default)", r.primary,
                  r.max_other, r.total, r.reached, r.failover_ms, r.in_use.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
