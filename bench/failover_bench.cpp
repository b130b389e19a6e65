// What failover costs a sync cycle (docs/failover.md "Proxmox hosts",
// "AccountDB endpoints", "Hedged requests"): the cycles run in-process as the
// long-running agent runs them, against a three-node Proxmox simulator and
// two AccountDB endpoints over one state. For each fault of the primary
// Proxmox host (refused connections; a host that accepts and never answers)
// and of the first AccountDB endpoint (refused; accepts and never answers),
// the first cycle after the fault and the two after it, beside the steady
// cycle without a fault, once with hedging off (HEDGE_BUDGET_PERCENT=0: the
// agent before hedged requests) and once at the defaults, in the same run.
// A primary that silently drops packets is a listening socket whose accept
// queue is full (the kernel then drops new SYNs): measured on a fresh agent
// against one whose primary refuses from the start, the first cycle of both
// being a fallback read that creates every row.
// Then a steady run without a fault (a cycle every second for STEADY
// seconds): the hedges sent, as a share of the requests.
//
//   build/bench/failover_bench [GUESTS] [STEADY]     (defaults: 300, 600)

#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include "agent/sync/engine.hpp"
#include "agent/upstream/accountdb_upstream.hpp"
#include "agent/upstream/options.hpp"
#include "agent/upstream/proxmox_upstream.hpp"
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

struct Setup {
  test::TempDir dir;
  sim::PveSim pve;
  sim::AdbSim adb;
  Settings settings;
  SystemClock clock;
  Interrupt interrupt;
  std::unique_ptr<LiveSettings> live;  // before the upstreams that read it
  std::unique_ptr<ProxmoxUpstream> proxmox;
  std::unique_ptr<AccountDbUpstream> accountdb;
  std::unique_ptr<SyncEngine> engine;

  explicit Setup(std::size_t guests, bool hedging, const std::string& primary = "")
      : pve({.dir = dir.path(),
             .nodes = {"pve1", "pve2", "pve3"},
             .auth_failure_delay = 10ms,
             .tokens = {{.id = kTokenId, .secret = kTokenSecret}}}),
        adb({.nodes = {{.id = 1, .name = "pve1", .api_key = kKey}}, .rate_limit = 0}) {
    pve.cluster().generate(guests, 42);
    std::vector<long long> whitelist;
    for (const auto& g : pve.cluster().guests_on("pve1")) {
      whitelist.push_back(g.vmid);
    }
    adb.set_whitelist(1, whitelist);
    adb.add_endpoint();
    settings.proxmox_host =
        *parse_url(primary.empty() ? pve.host("pve1").url() : primary, {"https", 8006});
    settings.proxmox_hosts = {*parse_url(pve.host("pve2").url(), {"https", 8006}),
                              *parse_url(pve.host("pve3").url(), {"https", 8006})};
    settings.proxmox_discover_hosts = false;
    settings.proxmox_token_id = kTokenId;
    settings.proxmox_token_secret = kTokenSecret;
    settings.proxmox_ca_file = pve.ca_file();
    settings.node_name = "pve1";
    settings.accountdb_endpoints = {{*parse_url(adb.url(0), {"", 0}), 1, 1},
                                    {*parse_url(adb.url(1), {"", 0}), 1, 1}};
    settings.accountdb_api_key = kKey;
    settings.accountdb_node_id = 1;
    settings.create_stopped_vms = true;
    settings.change_brake_min =
        100000;  // the first cycle creates, as after an operator's --confirm
    settings.hedge_budget_percent = hedging ? settings.hedge_budget_percent : 0;
    live = std::make_unique<LiveSettings>(settings);
    proxmox = std::make_unique<ProxmoxUpstream>(*live, clock, interrupt);
    accountdb = std::make_unique<AccountDbUpstream>(*live, clock, interrupt);
    engine = std::make_unique<SyncEngine>(*live, proxmox->client(), accountdb->client(), clock);
  }

  double cycle_ms() {
    const auto t0 = std::chrono::steady_clock::now();
    const auto report = engine->run_cycle(false);
    const auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!report.success) {
      std::fprintf(stderr, "cycle failed: %s\n", report.message.c_str());
      std::exit(1);
    }
    return ms;
  }
  // Back to the primary and healthy endpoints, as POST /failover/reset does.
  void heal() {
    pve.host("pve1").clear_fault();
    adb.clear_fault(0);
    proxmox->hosts().reset();
    accountdb->pool().reset();
    cycle_ms();
  }
};

struct Cycles {
  double steady = 0;
  double first = 0;
  double second = 0;
  double third = 0;
  std::string in_use;
};

struct Row {
  std::string fault;
  Cycles off;  // hedging off
  Cycles on;   // the defaults
};

using Inject = std::function<void(Setup&)>;

Cycles measure(Setup& s, const Inject& inject, bool accountdb) {
  Cycles r;
  s.cycle_ms();  // warm: connections and caches
  r.steady = s.cycle_ms();
  inject(s);
  r.first = s.cycle_ms();
  r.second = s.cycle_ms();
  r.third = s.cycle_ms();
  r.in_use = accountdb ? s.accountdb->pool().active() : s.proxmox->hosts().preferred();
  s.heal();
  return r;
}

// A listening socket that never accepts, its queue filled by one connection:
// further connection attempts get no answer at all.
class Blackhole {
 public:
  Blackhole() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listener_, 0) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::perror("blackhole");
      std::exit(1);
    }
    port_ = ntohs(a.sin_port);
    for (int i = 0; i < 2; ++i) {  // a backlog of 0 still queues one
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), len);
      fillers_.push_back(fd);
    }
  }
  ~Blackhole() {
    for (int fd : fillers_) {
      ::close(fd);
    }
    ::close(listener_);
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::vector<int> fillers_;
};

// A fresh agent whose primary drops packets, against one whose primary
// refuses from the start: the first cycle of both is a fallback read.
Cycles silent_primary(std::size_t guests, bool hedging) {
  Cycles r;
  {
    Setup fresh(guests, hedging);
    fresh.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
    r.steady = fresh.cycle_ms();
  }
  Blackhole hole;
  Setup fresh(guests, hedging, hole.url());
  r.first = fresh.cycle_ms();
  r.second = fresh.cycle_ms();
  r.third = fresh.cycle_ms();
  r.in_use = fresh.proxmox->hosts().preferred();
  return r;
}

struct Steady {
  double seconds = 0;
  std::uint64_t cycles = 0;
  std::uint64_t requests = 0;  // every attempt of both upstreams, hedges included
  HedgeStats proxmox;
  HedgeStats accountdb;
};

Steady steady_run(std::size_t guests, std::chrono::seconds length) {
  Setup s(guests, true);
  s.cycle_ms();
  const auto before = s.proxmox->monitor().connection_health().total_calls +
                      s.accountdb->monitor().connection_health().total_calls;
  const auto p0 = s.proxmox->hedging().stats();
  const auto a0 = s.accountdb->hedging().stats();
  Steady out;
  const auto start = std::chrono::steady_clock::now();
  auto next = start;
  while (std::chrono::steady_clock::now() - start < length) {
    s.cycle_ms();
    ++out.cycles;
    next += 1s;
    std::this_thread::sleep_until(next);
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.requests = s.proxmox->monitor().connection_health().total_calls +
                 s.accountdb->monitor().connection_health().total_calls - before;
  const auto p1 = s.proxmox->hedging().stats();
  const auto a1 = s.accountdb->hedging().stats();
  out.proxmox = {p1.sent - p0.sent, p1.won - p0.won, p1.refused - p0.refused};
  out.accountdb = {a1.sent - a0.sent, a1.won - a0.won, a1.refused - a0.refused};
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t guests = argc > 1 ? static_cast<std::size_t>(std::stoul(argv[1])) : 300;
  const std::chrono::seconds steady_length(argc > 2 ? std::stol(argv[2]) : 600);
  const std::vector<std::tuple<std::string, Inject, bool>> faults = {
      {"Proxmox primary refuses connections",
       [](Setup& s) { s.pve.host("pve1").set_fault({.kind = sim::FaultKind::down}); }, false},
      {"Proxmox primary accepts and never answers",
       [](Setup& s) { s.pve.host("pve1").set_fault({.kind = sim::FaultKind::hang}); }, false},
      {"AccountDB first endpoint refuses connections",
       [](Setup& s) { s.adb.set_fault({.kind = sim::AdbFaultKind::down}, 0); }, true},
      {"AccountDB first endpoint accepts and never answers",
       [](Setup& s) { s.adb.set_fault({.kind = sim::AdbFaultKind::hang}, 0); }, true},
  };
  std::vector<Row> rows;
  Setup off(guests, false);
  Setup on(guests, true);
  off.cycle_ms();  // the first cycle creates every row
  on.cycle_ms();
  for (const auto& [name, inject, accountdb] : faults) {
    rows.push_back({name, measure(off, inject, accountdb), measure(on, inject, accountdb)});
  }
  rows.push_back({"Proxmox primary drops packets (fresh agent, vs refused from the start)",
                  silent_primary(guests, false), silent_primary(guests, true)});
  const auto steady = steady_run(guests, steady_length);

  const auto& settings = on.settings;
  std::printf(
      "%zu guests on the node; PROXMOX_TIMEOUT %d s, PROXMOX_CONNECT_TIMEOUT %d s, "
      "ACCOUNTDB_TIMEOUT %d s; hedging: HEDGE_DELAY_MIN %d ms, HEDGE_DELAY_MAX %d ms, "
      "HEDGE_BUDGET_PERCENT %g\n\n",
      on.pve.cluster().guests_on("pve1").size(), settings.proxmox_timeout,
      settings.proxmox_connect_timeout, settings.accountdb_timeout, settings.hedge_delay_min,
      settings.hedge_delay_max, settings.hedge_budget_percent);
  std::printf(
      "| fault | steady cycle ms | first cycle ms, hedging off (before) | added | first cycle ms, "
      "hedging on (after) | added | second, third cycle ms (after) | in use after |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %.0f | %.0f | %+.0f | %.0f | %+.0f | %.0f, %.0f | %s |\n", r.fault.c_str(),
                r.on.steady, r.off.first, r.off.first - r.off.steady, r.on.first,
                r.on.first - r.on.steady, r.on.second, r.on.third, r.on.in_use.c_str());
  }
  const auto sent = steady.proxmox.sent + steady.accountdb.sent;
  const auto first_attempts = steady.requests - sent;
  std::printf(
      "\nSteady run without a fault: %.0f s, %llu cycles, %llu requests (Proxmox and "
      "AccountDB attempts)\n\n"
      "| hedges sent (Proxmox, AccountDB) | won | refused by the budget | extra requests |\n"
      "|---|---|---|---|\n"
      "| %llu (%llu, %llu) | %llu | %llu | %.2f %% |\n",
      steady.seconds, static_cast<unsigned long long>(steady.cycles),
      static_cast<unsigned long long>(steady.requests), static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(steady.proxmox.sent),
      static_cast<unsigned long long>(steady.accountdb.sent),
      static_cast<unsigned long long>(steady.proxmox.won + steady.accountdb.won),
      static_cast<unsigned long long>(steady.proxmox.refused + steady.accountdb.refused),
      first_attempts == 0
          ? 0.0
          : 100.0 * static_cast<double>(sent) / static_cast<double>(first_attempts));
  return 0;
}
