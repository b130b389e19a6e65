// Sync cost by node size: the real agent binary (--once) against the
// in-process simulators, a first cycle (everything is created) and a
// steady-state cycle (nothing changed), with the requests each upstream
// received, the cycle time and the agent's peak RSS.
//
//   build/bench/sync_bench [GUESTS...]     (default: 100 500 1000 5000)

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/app/upstreams.hpp"
#include "agent/sync/engine.hpp"
#include "bench/bench_credentials.hpp"
#include "tests/sim/adb_sim.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;

namespace {

using bench::kKey;
using bench::kTokenId;
using bench::kTokenSecret;

struct Row {
  std::size_t guests = 0;
  std::string cycle;
  double wall_ms = 0;
  long long duration_ms = 0;
  long long proxmox_requests = 0;
  long long accountdb_requests = 0;
  long long writes = 0;
  long rss_kb = 0;
};

std::vector<Row> run(std::size_t guests) {
  test::TempDir dir;
  sim::PveSim pve({.dir = dir.path(),
                   .nodes = {"pve1"},
                   .auth_failure_delay = 10ms,
                   .tokens = {{.id = kTokenId, .secret = kTokenSecret}}});
  pve.cluster().generate(guests, 42);
  std::vector<long long> whitelist;
  for (const auto& g : pve.cluster().guests_on("pve1")) {
    whitelist.push_back(g.vmid);
  }
  sim::AdbSim adb({.nodes = {{.id = 1, .name = "pve1", .api_key = kKey, .whitelist = whitelist}},
                   .rate_limit = 0});
  std::filesystem::create_directories(dir.path() + "/state");
  const std::map<std::string, std::string> env = {{"PROXMOX_HOST", pve.host("pve1").url()},
                                                  {"PROXMOX_TOKEN_ID", kTokenId},
                                                  {"PROXMOX_TOKEN_SECRET", kTokenSecret},
                                                  {"PROXMOX_CA_FILE", pve.ca_file()},
                                                  {"PROXMOX_NODE_NAME", "pve1"},
                                                  {"ACCOUNTDB_URL", adb.url()},
                                                  {"ACCOUNTDB_API_KEY", kKey},
                                                  {"ACCOUNTDB_NODE_ID", "1"},
                                                  {"CREATE_STOPPED_VMS", "true"},
                                                  {"STATE_DIR", dir.path() + "/state"},
                                                  {"LOG_LEVEL", "warning"},
                                                  {"PATH", "/usr/bin:/bin"}};
  std::vector<Row> rows;
  // The cycles in-process, as the long-running agent runs them: the second
  // cycle is the steady state (details cached, nothing changed).
  Settings settings;
  settings.proxmox_host = *parse_url(pve.host("pve1").url(), {"https", 8006});
  settings.proxmox_token_id = kTokenId;
  settings.proxmox_token_secret = kTokenSecret;
  settings.proxmox_ca_file = pve.ca_file();
  settings.node_name = "pve1";
  settings.accountdb_endpoints = {{*parse_url(adb.url(), {"", 0}), 1, 1}};
  settings.accountdb_api_key = kKey;
  settings.accountdb_node_id = 1;
  settings.create_stopped_vms = true;
  SystemClock clock;
  Interrupt interrupt;
  ProxmoxUpstream proxmox(settings, clock, interrupt);
  AccountDbUpstream accountdb(settings, clock, interrupt);
  SyncEngine engine(settings, proxmox.client(), accountdb.client(), clock);
  for (const auto* cycle : {"first", "steady"}) {
    const auto pve_before = pve.host("pve1").total_requests();
    const auto adb_before = adb.total_requests();
    const auto t0 = std::chrono::steady_clock::now();
    const auto report = engine.run_cycle(false);
    const auto wall =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!report.success) {
      std::fprintf(stderr, "cycle failed: %s\n", report.message.c_str());
      std::exit(1);
    }
    rows.push_back({guests, cycle, wall, report.stats.duration_ms,
                    static_cast<long long>(pve.host("pve1").total_requests() - pve_before),
                    static_cast<long long>(adb.total_requests() - adb_before),
                    report.stats.requests_sent, 0});
  }
  // The agent's peak RSS: the real binary running a first cycle against a fresh AccountDB.
  sim::AdbSim fresh({.nodes = {{.id = 1, .name = "pve1", .api_key = kKey, .whitelist = whitelist}},
                     .rate_limit = 0});
  auto env_fresh = env;
  env_fresh["ACCOUNTDB_URL"] = fresh.url();
  env_fresh["STATE_DIR"] = "";
  auto r = test::run_process(PHA_AGENT_BINARY, {{"--once"}, env_fresh, dir.path()}, 600s);
  if (r.exit_code != 0) {
    std::fprintf(stderr, "agent --once failed (%d): %s\n", r.exit_code, r.err.c_str());
    std::exit(1);
  }
  rows.front().rss_kb = r.max_rss_kb;
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes = {100, 500, 1000, 5000};
  if (argc > 1) {
    sizes.clear();
    for (int i = 1; i < argc; ++i) {
      sizes.push_back(static_cast<std::size_t>(std::stoul(argv[i])));
    }
  }
  std::printf(
      "| guests | cycle | wall ms | cycle ms | Proxmox requests | AccountDB requests | "
      "AccountDB writes | agent peak RSS MiB (--once, first cycle) "
      "|\n|---|---|---|---|---|---|---|---|\n");
  for (auto n : sizes) {
    for (const auto& r : run(n)) {
      const auto rss = r.rss_kb > 0 ? std::to_string(r.rss_kb / 1024) + "." +
                                          std::to_string((r.rss_kb % 1024) * 10 / 1024)
                                    : std::string("");
      std::printf("| %zu | %s | %.0f | %lld | %lld | %lld | %lld | %s |\n", r.guests,
                  r.cycle.c_str(), r.wall_ms, r.duration_ms, r.proxmox_requests,
                  r.accountdb_requests, r.writes, rss.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
