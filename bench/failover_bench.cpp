// What failover costs a sync cycle (docs/failover.md "Proxmox hosts",
// "AccountDB endpoints"): the cycles run in-process as the
// long-running agent runs them, against a three-node Proxmox simulator and
// two AccountDB endpoints over one state. For each fault of the primary
// Proxmox host (refused connections; a host that accepts and never answers)
// and of the first AccountDB endpoint (refused), the first cycle after the
// fault and the two after it, beside the steady cycle without a fault.
// A primary that silently drops packets is a listening socket whose accept
// queue is full (the kernel then drops new SYNs): measured on a fresh agent
// against one whose primary refuses from the start, the first cycle of both
// being a fallback read that creates every row.
//
//   build/bench/failover_bench [GUESTS]     (default: 300)

#include <arpa/inet.h>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
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

  explicit Setup(std::size_t guests, const std::string& primary = "")
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

struct Row {
  std::string fault;
  double steady = 0;
  double first = 0;
  double second = 0;
  double third = 0;
  std::string in_use;
};

Row measure(Setup& s, const std::string& name, const std::function<void()>& inject,
            bool accountdb) {
  Row r;
  r.fault = name;
  s.cycle_ms();  // warm: connections and caches
  r.steady = s.cycle_ms();
  inject();
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

}  // namespace

int main(int argc, char** argv) {
  const std::size_t guests = argc > 1 ? static_cast<std::size_t>(std::stoul(argv[1])) : 300;
  Setup s(guests);
  s.cycle_ms();  // the first cycle creates every row
  std::vector<Row> rows;
  rows.push_back(measure(
      s, "Proxmox primary refuses connections",
      [&s] { s.pve.host("pve1").set_fault({.kind = sim::FaultKind::down}); }, false));
  rows.push_back(measure(
      s, "Proxmox primary accepts and never answers",
      [&s] { s.pve.host("pve1").set_fault({.kind = sim::FaultKind::hang}); }, false));
  rows.push_back(measure(
      s, "AccountDB first endpoint refuses connections",
      [&s] { s.adb.set_fault({.kind = sim::AdbFaultKind::down}, 0); }, true));
  // Fresh agents whose first cycle is a fallback read: refused vs blackholed primary.
  double refused_first = 0;
  {
    Setup fresh(guests);
    fresh.pve.host("pve1").set_fault({.kind = sim::FaultKind::down});
    refused_first = fresh.cycle_ms();
  }
  Row silent;
  silent.fault = "Proxmox primary drops packets (fresh agent, vs refused from the start)";
  {
    Blackhole hole;
    Setup fresh(guests, hole.url());
    silent.steady = refused_first;
    silent.first = fresh.cycle_ms();
    silent.second = fresh.cycle_ms();
    silent.third = fresh.cycle_ms();
    silent.in_use = fresh.proxmox->hosts().preferred();
  }
  rows.push_back(silent);
  std::printf("%zu guests on the node; PROXMOX_TIMEOUT %d s, PROXMOX_CONNECT_TIMEOUT %d s\n\n",
              s.pve.cluster().guests_on("pve1").size(), s.settings.proxmox_timeout,
              s.settings.proxmox_connect_timeout);
  std::printf(
      "| fault | steady cycle ms (no fault) | first cycle ms | added | second cycle ms | third "
      "cycle ms | in use after |\n|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    std::printf("| %s | %.0f | %.0f | %+.0f | %.0f | %.0f | %s |\n", r.fault.c_str(), r.steady,
                r.first, r.first - r.steady, r.second, r.third, r.in_use.c_str());
  }
  return 0;
}
