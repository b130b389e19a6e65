// Sync cost by node size, measured on the real long-running agent: the
// agent binary is started as a daemon against in-process Proxmox and
// AccountDB simulators, its first cycle runs at start-up, steady-state cycles
// are triggered through its API (POST /sync/trigger, completion read from
// /status), and its CPU time and memory are read from /proc/<pid>. Request
// counts and TCP bytes come from the simulators. Beside it, a "naive"
// reference cycle (bench/naive_sync.cpp: the old agent's way, libcurl only)
// on the same simulators, and wrk against the agent's HTTP API. Prints
// Markdown tables with the budgets (docs/proxmox.md "Quiet neighbour", issue 8)
// beside the figures; a missed budget is reported, never an error. The exit
// status is 1 only when something broke: a failed cycle, a crash, a wrong
// result in AccountDB, a tool that could not run.
//
//   build/bench/sync_bench [--sizes 100,1000,5000,20000] [--http-guests 1000]
//                          [--wrk-seconds 5] [--naive-max N] [--svg FILE]
//                          [--agent-env KEY=VALUE]...   (extra agent environment, experiments)
//                          [--agent-log FILE]           (the agent's stderr, appended)

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "bench/bench_credentials.hpp"
#include "bench/http_load.hpp"
#include "bench/naive_sync.hpp"
#include "bench/proc_sample.hpp"
#include "bench/svg_chart.hpp"
#include "tests/sim/adb_sim.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

using namespace pha;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using bench::kKey;
using bench::kTokenId;
using bench::kTokenSecret;

// Budgets of issue 8 (the quiet neighbour rule and the agent's footprint).
constexpr long long kBudgetProxmoxSteady = 2;  // the two list calls
constexpr long long kBudgetWritesSteady = 0;
constexpr std::size_t kBudgetGuests = 1000;  // the size the next two apply to
constexpr double kBudgetRssMb = 10.0;        // MB = 10^6 bytes
constexpr double kBudgetSteadyCpuMs = 50.0;

struct Options {
  std::vector<std::size_t> sizes = {100, 1000, 5000, 20000};
  std::size_t http_guests = 1000;  // the size whose agent gets the wrk runs
  int wrk_seconds = 5;
  std::size_t naive_max = static_cast<std::size_t>(-1);
  std::string svg;
  std::map<std::string, std::string> agent_env;  // extra, for experiments (MALLOC_ARENA_MAX=1)
  std::string agent_log;                         // where the agent's stderr goes ("": nowhere)
};

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "sync_bench: BROKEN: %s\n", what.c_str());
  std::fflush(stdout);
  std::_Exit(1);
}

double mb(long kb) {
  return static_cast<double>(kb) * 1024.0 / 1e6;
}

// The agent's API over one kept-alive connection.
class AgentClient {
 public:
  explicit AgentClient(int port) : base_("http://127.0.0.1:" + std::to_string(port)) {
    handle_ = curl_easy_init();
  }
  ~AgentClient() { curl_easy_cleanup(handle_); }
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  const std::string& base() const { return base_; }

  // Status code and body; 0 when the request failed.
  std::pair<long, std::string> request(const std::string& method, const std::string& path) {
    std::string body;
    curl_easy_reset(handle_);
    curl_easy_setopt(handle_, CURLOPT_URL, (base_ + path).c_str());
    curl_easy_setopt(handle_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle_, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(
        handle_, CURLOPT_WRITEFUNCTION, +[](char* d, std::size_t s, std::size_t n, void* out) {
          static_cast<std::string*>(out)->append(d, s * n);
          return s * n;
        });
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, &body);
    if (method == "POST") {
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDS, "");
    }
    long status = 0;
    if (curl_easy_perform(handle_) == CURLE_OK) {
      curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &status);
    }
    return {status, body};
  }
  json sync_state() {
    auto [status, body] = request("GET", "/status");
    if (status != 200) {
      return nullptr;
    }
    auto j = json::parse(body, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j["sync"];
  }

 private:
  std::string base_;
  CURL* handle_ = nullptr;
};

struct Counters {
  std::size_t pve = 0;
  std::size_t adb = 0;
  std::size_t writes = 0;
  std::size_t connections = 0;
  std::uint64_t out = 0;  // bytes the client sent
  std::uint64_t in = 0;   // bytes the client received
};

Counters counters(sim::PveSim& pve, sim::AdbSim& adb) {
  auto& h = pve.host("pve1");
  return {h.total_requests(),
          adb.total_requests(),
          adb.count("PUT /vms/agent/{id}"),
          h.connections_accepted() + adb.connections_accepted(),
          h.bytes_received() + adb.bytes_received(),
          h.bytes_sent() + adb.bytes_sent()};
}

struct Cycle {
  double cycle_ms = 0;  // the agent's own duration_ms
  double cpu_ms = 0;
  double pve = 0;
  double adb = 0;
  double writes = 0;
  double connections = 0;
  double out_kib = 0;
  double in_kib = 0;
  bench::ProcSample mem;  // after the cycle(s)
};

Cycle delta(const Counters& a, const Counters& b, double n) {
  Cycle c;
  c.pve = static_cast<double>(b.pve - a.pve) / n;
  c.adb = static_cast<double>(b.adb - a.adb) / n;
  c.writes = static_cast<double>(b.writes - a.writes) / n;
  c.connections = static_cast<double>(b.connections - a.connections) / n;
  c.out_kib = static_cast<double>(b.out - a.out) / 1024.0 / n;
  c.in_kib = static_cast<double>(b.in - a.in) / 1024.0 / n;
  return c;
}

struct HttpRow {
  bench::HttpLoad load;
  long peak_rss_kb = 0;
};

struct NaiveRow {
  bench::NaiveCycle cycle;
  Cycle wire;  // requests, connections and bytes as the simulators saw them
};

struct SizeRun {
  std::size_t guests = 0;
  Cycle first;
  Cycle steady;
  int steady_cycles = 0;
  std::optional<NaiveRow> naive;
  std::vector<HttpRow> http;
};

int steady_cycles_for(std::size_t guests) {
  // CPU time comes in clock ticks (10 ms): enough cycles to make a tick small.
  if (guests <= 1000) {
    return 20;
  }
  return guests <= 5000 ? 6 : 3;
}

// Polls /status until sync.cycle_count reaches `n`; the cycle's last_result.
json wait_cycle(AgentClient& client, test::Process& agent, std::uint64_t n,
                std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto s = client.sync_state();
    if (s.is_object() && s.value("cycle_count", std::uint64_t{0}) >= n) {
      return s["last_result"];
    }
    if (!bench::sample_process(agent.pid()).ok) {
      broken("the agent exited during cycle " + std::to_string(n) + ":\n" + agent.err_so_far());
    }
    std::this_thread::sleep_for(5ms);  // a poll interval, not a wait for an outcome
  }
  broken("cycle " + std::to_string(n) + " did not finish within " +
         std::to_string(timeout.count()) + " s");
}

void check_ok(const json& result, const std::string& what) {
  const auto status = result.is_object() ? result.value("status", "") : "";
  if (status != "ok") {
    broken(what + " ended with status '" + status +
           "': " + (result.is_object() ? result.value("message", "") : std::string("no result")));
  }
}

int agent_port(test::Process& agent) {
  if (!agent.wait_for_output("\"event\":\"http_listening\"", 60s)) {
    broken("the agent did not start listening:\n" + agent.err_so_far());
  }
  const auto err = agent.err_so_far();
  const auto at = err.find("\"event\":\"http_listening\"");
  const auto start = err.rfind('\n', at);
  const auto end = err.find('\n', at);
  const auto line =
      json::parse(err.substr(start == std::string::npos ? 0 : start + 1,
                             end == std::string::npos ? std::string::npos : end - start - 1),
                  nullptr, false);
  if (line.is_discarded() || !line.contains("port")) {
    broken("no port in the http_listening line: " + err);
  }
  return line["port"].get<int>();
}

std::vector<HttpRow> http_load(AgentClient& client, pid_t pid, int seconds) {
  std::vector<HttpRow> rows;
  for (const auto* path : {"/health", "/status", "/metrics"}) {
    for (const int connections : {1, 32}) {
      std::atomic<bool> done{false};
      long peak = 0;
      std::thread sampler([&] {
        while (!done.load()) {
          peak = std::max(peak, bench::sample_process(pid).rss_kb);
          std::this_thread::sleep_for(50ms);
        }
      });
      std::string error;
      const auto load = bench::run_wrk(client.base(), path, connections, seconds, error);
      done = true;
      sampler.join();
      if (!load) {
        broken(error);
      }
      if (load->requests == 0) {
        broken(std::string("wrk got no answer from ") + path);
      }
      rows.push_back({*load, peak});
      std::fprintf(stderr, "  wrk %s c%d: %.0f req/s\n", path, connections, load->requests_per_s);
    }
  }
  return rows;
}

SizeRun run_size(std::size_t guests, const Options& opt) {
  std::fprintf(stderr, "== %zu guests\n", guests);
  SizeRun run;
  run.guests = guests;
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
  // Timed cycles, heartbeats and health checks far apart: every cycle in the
  // measurement is one the bench triggered, and nothing else runs beside it.
  std::map<std::string, std::string> env = {{"PROXMOX_HOST", pve.host("pve1").url()},
                                            {"PROXMOX_TOKEN_ID", kTokenId},
                                            {"PROXMOX_TOKEN_SECRET", kTokenSecret},
                                            {"PROXMOX_CA_FILE", pve.ca_file()},
                                            {"PROXMOX_NODE_NAME", "pve1"},
                                            {"ACCOUNTDB_URL", adb.url()},
                                            {"ACCOUNTDB_API_KEY", kKey},
                                            {"ACCOUNTDB_NODE_ID", "1"},
                                            {"CREATE_STOPPED_VMS", "true"},
                                            // The first population is what is measured,
                                            // as after an operator's --confirm.
                                            {"CHANGE_BRAKE_MIN", "100000"},
                                            {"UPDATE_INTERVAL", "3600"},
                                            {"WHITELIST_TTL", "3600"},
                                            {"HEARTBEAT_INTERVAL", "3600"},
                                            {"HEALTH_CHECK_INTERVAL", "300"},
                                            // A cycle's cost alone: the change signals'
                                            // reads are freshness_bench's to measure.
                                            {"CHANGE_POLL_INTERVAL", "0"},
                                            // The simulator renders a 20 000-guest list in
                                            // seconds on a busy 2-core machine.
                                            {"PROXMOX_TIMEOUT", "60"},
                                            {"STATE_DIR", dir.path() + "/state"},
                                            {"BIND_ADDRESS", "127.0.0.1"},
                                            {"PORT", "0"},
                                            {"LOG_FORMAT", "json"},
                                            {"LOG_LEVEL", "info"},
                                            {"PATH", "/usr/bin:/bin"}};
  for (const auto& [k, v] : opt.agent_env) {
    env[k] = v;
  }
  const auto timeout = std::chrono::seconds(60 + guests / 50);
  const auto c0 = counters(pve, adb);
  test::Process agent(PHA_AGENT_BINARY, {{}, env, dir.path()});
  AgentClient client(agent_port(agent));

  // The first cycle runs at start-up: its CPU time includes the start.
  check_ok(wait_cycle(client, agent, 1, timeout), "the first cycle");
  const auto c1 = counters(pve, adb);
  run.first = delta(c0, c1, 1);
  run.first.mem = bench::sample_process(agent.pid());
  run.first.cpu_ms = run.first.mem.cpu_s * 1000;
  run.first.cycle_ms = client.sync_state()["last_result"].value("duration_ms", 0.0);
  if (adb.rows_of_node(1).size() != guests) {
    broken("after the first cycle AccountDB has " + std::to_string(adb.rows_of_node(1).size()) +
           " rows for " + std::to_string(guests) + " guests");
  }

  // Steady state: nothing changed since.
  const int k = steady_cycles_for(guests);
  run.steady_cycles = k;
  const auto before = bench::sample_process(agent.pid());
  double cycle_ms = 0;
  for (int i = 1; i <= k; ++i) {
    if (client.request("POST", "/sync/trigger").first != 202) {
      broken("POST /sync/trigger was not accepted");
    }
    const auto result = wait_cycle(client, agent, 1 + static_cast<std::uint64_t>(i), timeout);
    check_ok(result, "steady cycle " + std::to_string(i));
    cycle_ms += result.value("duration_ms", 0.0);
  }
  const auto c2 = counters(pve, adb);
  run.steady = delta(c1, c2, k);
  // The agent hands free heap pages back after recording a cycle: let it finish.
  std::this_thread::sleep_for(300ms);
  run.steady.mem = bench::sample_process(agent.pid());
  run.steady.cpu_ms = (run.steady.mem.cpu_s - before.cpu_s) * 1000 / k;
  run.steady.cycle_ms = cycle_ms / k;
  std::fprintf(stderr, "  first %.0f ms, steady %.1f ms (%.1f ms CPU)\n", run.first.cycle_ms,
               run.steady.cycle_ms, run.steady.cpu_ms);

  if (guests == opt.http_guests) {
    run.http = http_load(client, agent.pid(), opt.wrk_seconds);
  }
  agent.signal(SIGTERM);
  const auto exit = agent.wait(30s);
  if (!opt.agent_log.empty()) {
    std::ofstream(opt.agent_log, std::ios::app) << exit.err;
  }
  if (exit.exit_code != 0) {
    broken("the agent exited with " + std::to_string(exit.exit_code) + ":\n" + exit.err);
  }

  if (guests <= opt.naive_max) {
    NaiveRow naive;
    const auto n0 = counters(pve, adb);
    naive.cycle = bench::run_naive_cycle({.proxmox_url = pve.host("pve1").url(),
                                          .ca_file = pve.ca_file(),
                                          .token_id = kTokenId,
                                          .token_secret = kTokenSecret,
                                          .node = "pve1",
                                          .accountdb_url = adb.url(),
                                          .api_key = kKey,
                                          .node_id = 1});
    if (!naive.cycle.ok) {
      broken("the naive cycle failed: " + naive.cycle.error);
    }
    naive.wire = delta(n0, counters(pve, adb), 1);
    std::fprintf(stderr, "  naive %.0f ms\n", naive.cycle.wall_ms);
    run.naive = naive;
  }
  return run;
}

std::string budget(bool met, const std::string& rule) {
  return " (" + rule + ": " + (met ? "met" : "**missed**") + ")";
}

// v with `decimals` (0 or 1) decimals.
std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void print_sync_table(const std::vector<SizeRun>& runs) {
  std::printf(
      "### Sync cost by node size (the agent process)\n\n"
      "| guests | cycle | cycle ms | CPU ms | Proxmox requests | AccountDB requests | AccountDB "
      "writes | connections | sent KiB | received KiB | peak RSS MB | RSS MB |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : runs) {
    const bool at_budget = r.guests == kBudgetGuests;
    for (const auto* which : {"first", "steady"}) {
      const bool steady = std::string(which) == "steady";
      const auto& c = steady ? r.steady : r.first;
      std::string cpu = fmt(c.cpu_ms, 1);
      std::string pve = fmt(c.pve, 0);
      std::string writes = fmt(c.writes, 0);
      std::string hwm = fmt(mb(c.mem.hwm_kb), 1);
      if (steady) {
        pve += budget(c.pve <= kBudgetProxmoxSteady, "budget 2");
        writes += budget(c.writes <= kBudgetWritesSteady, "budget 0");
        if (at_budget) {
          cpu += budget(c.cpu_ms < kBudgetSteadyCpuMs, "budget < 50");
          hwm += budget(mb(c.mem.hwm_kb) < kBudgetRssMb, "budget < 10");
        }
      }
      std::printf("| %zu | %s%s | %.1f | %s | %s | %.0f | %s | %.0f | %.1f | %.1f | %s | %.1f |\n",
                  r.guests, which,
                  steady ? (" (mean of " + std::to_string(r.steady_cycles) + ")").c_str() : "",
                  c.cycle_ms, cpu.c_str(), pve.c_str(), c.adb, writes.c_str(), c.connections,
                  c.out_kib, c.in_kib, hwm.c_str(), mb(c.mem.rss_kb));
    }
  }
  std::printf(
      "\nFirst: the cycle at start-up (its CPU ms includes the start: settings, TLS set-up, the "
      "first health check). Steady: triggered with POST /sync/trigger after it, nothing changed; "
      "figures per cycle. Peak RSS is VmHWM after the cycle(s), RSS is VmRSS. Connections are the "
      "TCP connections the simulators accepted; bytes are TCP payload (TLS included) as the "
      "simulators' sockets counted them.\n\n");
}

void print_budgets(const std::vector<SizeRun>& runs) {
  std::printf("### Budgets\n\n| budget | figure | result |\n|---|---|---|\n");
  for (const auto& r : runs) {
    std::printf("| steady state at %zu guests: 2 Proxmox list calls | %.0f | %s |\n", r.guests,
                r.steady.pve, r.steady.pve <= kBudgetProxmoxSteady ? "met" : "**missed**");
    std::printf("| steady state at %zu guests: 0 AccountDB writes | %.0f | %s |\n", r.guests,
                r.steady.writes, r.steady.writes <= kBudgetWritesSteady ? "met" : "**missed**");
    if (r.guests == kBudgetGuests) {
      const double hwm = mb(r.steady.mem.hwm_kb);
      std::printf("| peak RSS under 10 MB at 1 000 guests | %.1f MB | %s |\n", hwm,
                  hwm < kBudgetRssMb ? "met" : "**missed**");
      std::printf("| steady-state cycle under 50 ms CPU at 1 000 guests | %.1f ms | %s |\n",
                  r.steady.cpu_ms, r.steady.cpu_ms < kBudgetSteadyCpuMs ? "met" : "**missed**");
    }
  }
  std::printf("\n");
}

void print_memory(const std::vector<SizeRun>& runs) {
  std::printf(
      "### Memory of the agent process (after the steady cycles)\n\n"
      "| guests | VmHWM MB | VmRSS MB | RssAnon MB | RssFile MB | PSS MB | threads |\n"
      "|---|---|---|---|---|---|---|\n");
  for (const auto& r : runs) {
    const auto& m = r.steady.mem;
    std::printf("| %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %d |\n", r.guests, mb(m.hwm_kb),
                mb(m.rss_kb), mb(m.anon_kb), mb(m.file_kb), mb(m.pss_kb), m.threads);
  }
  std::printf("\n");
}

void print_naive(const std::vector<SizeRun>& runs) {
  bool any = false;
  for (const auto& r : runs) {
    any = any || r.naive.has_value();
  }
  if (!any) {
    return;
  }
  std::printf(
      "### The agent beside the naive reference (the old agent's way, same simulators)\n\n"
      "| guests | who | requests (Proxmox + AccountDB) | writes | connections | wall ms | CPU ms "
      "| sent KiB | received KiB |\n|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : runs) {
    if (!r.naive) {
      continue;
    }
    const auto& n = *r.naive;
    const auto row = [&](const char* who, const Cycle& c, double wall, double cpu) {
      std::printf("| %zu | %s | %.0f + %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f |\n",
                  r.guests, who, c.pve, c.adb, c.writes, c.connections, wall, cpu, c.out_kib,
                  c.in_kib);
    };
    row("agent, first cycle", r.first, r.first.cycle_ms, r.first.cpu_ms);
    row("agent, steady cycle", r.steady, r.steady.cycle_ms, r.steady.cpu_ms);
    row("naive, every cycle", n.wire, n.cycle.wall_ms, n.cycle.cpu_ms);
    const auto ratio = [](double a, double b) {
      return b > 0 ? fmt(a / b, a / b < 10 ? 1 : 0) + "×" : std::string("– (agent: 0)");
    };
    std::printf("| %zu | **naive ÷ agent steady** | %s | %s | %s | %s | %s | %s | %s |\n", r.guests,
                ratio(n.wire.pve + n.wire.adb, r.steady.pve + r.steady.adb).c_str(),
                ratio(n.wire.writes, r.steady.writes).c_str(),
                ratio(n.wire.connections, r.steady.connections).c_str(),
                ratio(n.cycle.wall_ms, r.steady.cycle_ms).c_str(),
                ratio(n.cycle.cpu_ms, r.steady.cpu_ms).c_str(),
                ratio(n.wire.out_kib, r.steady.out_kib).c_str(),
                ratio(n.wire.in_kib, r.steady.in_kib).c_str());
  }
  std::printf(
      "\nNaive: list qemu and lxc, then per guest GET config and GET status/current, read the "
      "whitelist and the rows (C, E), PUT every guest; a new connection (and TLS handshake) per "
      "request; libcurl only (bench/naive_sync.cpp). Its CPU ms is the client thread's; the "
      "agent's is the whole agent process's. The bench triggers the agent's steady cycles back "
      "to back, so they reuse the first cycle's connections (kept for 4 s); with the default "
      "UPDATE_INTERVAL of 300 s each cycle opens one connection to each upstream (a TLS "
      "handshake to Proxmox, a few KiB more).\n\n");
}

void print_http(const std::vector<SizeRun>& runs) {
  for (const auto& r : runs) {
    if (r.http.empty()) {
      continue;
    }
    std::printf(
        "### The HTTP API under wrk (%zu guests)\n\n"
        "| endpoint | connections | requests/s | p50 ms | p99 ms | requests | errors | agent "
        "peak VmRSS during it MB |\n|---|---|---|---|---|---|---|---|\n",
        r.guests);
    for (const auto& h : r.http) {
      std::printf("| %s | %d | %.0f | %.3f | %.3f | %lld | %lld | %.1f |\n", h.load.path.c_str(),
                  h.load.connections, h.load.requests_per_s, h.load.p50_ms, h.load.p99_ms,
                  h.load.requests, h.load.errors, mb(h.peak_rss_kb));
    }
    std::printf("\n");
  }
}

void write_svg(const std::vector<SizeRun>& runs, const std::string& path) {
  bench::Panel time{"Cycle time", "guests on the node", "ms", true, {}};
  bench::Panel memory{"Agent memory", "guests on the node", "MB", false, {}};
  bench::Series first{"first cycle (wall)", "#d62728", {}};
  bench::Series steady{"steady cycle (wall)", "#1f77b4", {}};
  bench::Series cpu{"steady cycle (CPU)", "#2ca02c", {}};
  bench::Series naive{"naive cycle (wall)", "#7f7f7f", {}};
  bench::Series hwm{"peak RSS (VmHWM)", "#d62728", {}};
  bench::Series rss{"RSS after steady cycles", "#1f77b4", {}};
  bench::Series anon{"anonymous part of RSS", "#2ca02c", {}};
  for (const auto& r : runs) {
    const auto x = static_cast<double>(r.guests);
    first.points.emplace_back(x, std::max(r.first.cycle_ms, 0.1));
    steady.points.emplace_back(x, std::max(r.steady.cycle_ms, 0.1));
    cpu.points.emplace_back(x, std::max(r.steady.cpu_ms, 0.1));
    if (r.naive) {
      naive.points.emplace_back(x, std::max(r.naive->cycle.wall_ms, 0.1));
    }
    hwm.points.emplace_back(x, mb(r.steady.mem.hwm_kb));
    rss.points.emplace_back(x, mb(r.steady.mem.rss_kb));
    anon.points.emplace_back(x, mb(r.steady.mem.anon_kb));
  }
  time.series = {first, steady, cpu};
  if (!naive.points.empty()) {
    time.series.push_back(naive);
  }
  memory.series = {hwm, rss, anon};
  std::ofstream(path) << bench::svg_chart(
      {time, memory},
      "proxmox-host-agent, scripts/bench.sh: the agent process against the "
      "simulators; see bench/results/README.md for the machine");
}

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const auto piece =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!piece.empty()) {
      out.push_back(static_cast<std::size_t>(std::stoul(piece)));
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        broken(a + " needs a value");
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      opt.sizes = parse_sizes(value());
    } else if (a == "--http-guests") {
      opt.http_guests = std::stoul(value());
    } else if (a == "--wrk-seconds") {
      opt.wrk_seconds = std::stoi(value());
    } else if (a == "--naive-max") {
      opt.naive_max = std::stoul(value());
    } else if (a == "--svg") {
      opt.svg = value();
    } else if (a == "--agent-log") {
      opt.agent_log = value();
    } else if (a == "--agent-env") {
      const auto kv = value();
      const auto eq = kv.find('=');
      if (eq == std::string::npos) {
        broken("--agent-env takes KEY=VALUE");
      }
      opt.agent_env[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      std::fprintf(stderr,
                   "usage: sync_bench [--sizes 100,1000,5000,20000] [--http-guests N] "
                   "[--wrk-seconds S] [--naive-max N] [--svg FILE] [--agent-env K=V]... "
                   "[--agent-log FILE]\n");
      return 2;
    }
  }
  if (opt.sizes.empty()) {
    broken("no sizes");
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<SizeRun> runs;
  for (const auto n : opt.sizes) {
    runs.push_back(run_size(n, opt));
  }
  print_sync_table(runs);
  print_budgets(runs);
  print_naive(runs);
  print_memory(runs);
  print_http(runs);
  if (!opt.svg.empty()) {
    write_svg(runs, opt.svg);
  }
  curl_global_cleanup();
  return 0;
}
