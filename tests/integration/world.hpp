#pragma once
// The world of the integration tests: a two-node Proxmox simulator and an
// AccountDB simulator with one node whose whitelist holds all but one of
// pve1's running guests and one stopped guest; the agent's environment for
// them, and a one-shot run of the real binary.

#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/sim/adb_sim.hpp"
#include "tests/sim/pve_sim.hpp"
#include "tests/support/process.hpp"

namespace pha::test {

using Env = std::map<std::string, std::string>;
using namespace std::chrono_literals;

inline const std::string kTokenId = "agent@pve!sync";
inline const std::string kTokenSecret = "6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b";
inline const std::string kKey = "Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCd";
inline constexpr long long kNode = 34;

struct World {
  test::TempDir dir;
  sim::PveSim pve;
  sim::AdbSim adb;
  std::vector<long long> running;  // pve1's running guests (not templates)
  long long stopped = 0;           // a stopped guest of pve1, whitelisted
  long long outside = 0;           // a running guest of pve1 that is not whitelisted

  explicit World(std::vector<std::string> nodes = {"pve1", "pve2"}, std::size_t guests = 24)
      : pve({.dir = dir.path(),
             .nodes = std::move(nodes),
             .guests = guests,
             .seed = 5,
             .auth_failure_delay = 20ms,
             .tokens = {{.id = kTokenId, .secret = kTokenSecret}}}),
        adb({.nodes = {{.id = kNode, .name = "pha-node-34", .api_key = kKey, .owner_id = 2}}}) {
    for (const auto& g : pve.cluster().guests_on("pve1")) {
      if (g.status == sim::GuestStatus::running) {
        running.push_back(g.vmid);
      } else if (g.status == sim::GuestStatus::stopped && !g.template_ && stopped == 0) {
        stopped = g.vmid;
      }
    }
    REQUIRE(running.size() >= 3);
    REQUIRE(stopped != 0);
    outside = running.back();
    running.pop_back();
    std::vector<long long> whitelist = running;
    whitelist.push_back(stopped);
    adb.set_whitelist(kNode, whitelist);
    std::filesystem::create_directories(dir.path() + "/state");
  }

  Env env() const {
    return {{"PROXMOX_HOST", const_cast<sim::PveSim&>(pve).host("pve1").url()},
            {"PROXMOX_TOKEN_ID", kTokenId},
            {"PROXMOX_TOKEN_SECRET", kTokenSecret},
            {"PROXMOX_CA_FILE", pve.ca_file()},
            {"ACCOUNTDB_URL", adb.url()},
            {"ACCOUNTDB_API_KEY", kKey},
            {"ACCOUNTDB_NODE_ID", std::to_string(kNode)},
            {"STATE_DIR", dir.path() + "/state"},
            {"MISSING_AFTER_CYCLES", "2"},
            // The world's first sync creates its rows at once, as after an
            // operator's confirmation; the change brake has tests of its own
            // (semantic_faults_test.cpp), which set it back.
            {"CHANGE_BRAKE_MIN", "1000"},
            {"RETRY_BASE_DELAY", "0.05"},
            {"RETRY_MAX_DELAY", "2"},
            {"PORT", "0"},  // tests run in parallel: never the fixed default port
            {"BIND_ADDRESS", "127.0.0.1"},
            {"PATH", "/usr/bin:/bin"}};
  }

  struct Once {
    int exit_code = -1;
    nlohmann::json report;
    std::string err;
  };
  Once once(Env extra = {}, std::vector<std::string> args = {"--once"}) {
    auto e = env();
    for (auto& [k, v] : extra) {
      e[k] = v;
    }
    auto r = test::run_process(PHA_AGENT_BINARY, {args, e, dir.path()}, 60s);
    Once o{r.exit_code, nlohmann::json::parse(r.out, nullptr, false), r.err};
    REQUIRE_MESSAGE(!o.report.is_discarded(), r.out, r.err);
    return o;
  }

  std::size_t puts() const { return adb.count("PUT /vms/agent/{id}"); }
  std::vector<sim::AdbRow> rows() const { return adb.rows_of_node(kNode); }
  std::optional<sim::AdbRow> row_of(long long vmid) const {
    for (const auto& r : rows()) {
      if (r.vmid == vmid) {
        return r;
      }
    }
    return std::nullopt;
  }
  void check_no_duplicates() const {
    std::set<long long> seen;
    for (const auto& r : rows()) {
      CHECK_MESSAGE(seen.insert(r.vmid).second, "duplicate row for VMID ", r.vmid);
    }
  }
};

// The agent as a daemon: the real binary started with the world's
// environment, PORT=0 and JSON logs; the port it logs is read back, and
// requests go to it over loopback.
class RunningAgent {
 public:
  // `unset`: variables of the world's environment the agent must not see
  // (e.g. the token when a test logs in with a password from an env file).
  RunningAgent(const World& w, const Env& extra, std::vector<std::string> args = {},
               const std::vector<std::string>& unset = {}) {
    auto e = w.env();
    e["PORT"] = "0";
    e["BIND_ADDRESS"] = "127.0.0.1";
    e["LOG_FORMAT"] = "json";
    for (const auto& [k, v] : extra) {
      e[k] = v;
    }
    for (const auto& k : unset) {
      e.erase(k);
    }
    start(e, w.dir.path(), std::move(args));
  }
  // An agent of another world (several agents, one per node): `env` whole,
  // started in `cwd`.
  RunningAgent(Env env, const std::string& cwd) { start(std::move(env), cwd, {}); }
  ~RunningAgent() { stop(); }

 private:
  void start(Env e, const std::string& cwd, std::vector<std::string> args) {
    process_ = std::make_unique<Process>(PHA_AGENT_BINARY, ProcessOptions{args, e, cwd});
    REQUIRE_MESSAGE(process_->wait_for_output("\"event\":\"http_listening\"", 20s),
                    process_->err_so_far());
    const auto err = process_->err_so_far();
    std::size_t start = err.find("\"event\":\"http_listening\"");
    start = err.rfind('\n', start);
    const auto end = err.find('\n', err.find("\"event\":\"http_listening\""));
    const auto line = nlohmann::json::parse(
        err.substr(start == std::string::npos ? 0 : start + 1,
                   end == std::string::npos ? std::string::npos : end - start - 1),
        nullptr, false);
    REQUIRE_MESSAGE(line.contains("port"), err);
    port_ = line["port"].get<int>();
    REQUIRE(port_ > 0);
    host_ = e["BIND_ADDRESS"].empty() ? "127.0.0.1" : e["BIND_ADDRESS"];
  }

 public:
  int port() const { return port_; }
  std::string url() const { return "http://" + host_ + ":" + std::to_string(port_); }
  Process& process() { return *process_; }

  httplib::Client client() const {
    httplib::Client c(host_, port_);
    c.set_connection_timeout(5s);
    c.set_read_timeout(20s);
    return c;
  }
  // Requests without headers of their own carry these (e.g. the bearer token).
  void set_default_headers(httplib::Headers headers) { default_headers_ = std::move(headers); }
  httplib::Result get(const std::string& path, const httplib::Headers& headers = {}) const {
    auto c = client();
    return c.Get(path, headers.empty() ? default_headers_ : headers);
  }
  httplib::Result post(const std::string& path, const httplib::Headers& headers = {},
                       const std::string& body = "") const {
    auto c = client();
    return c.Post(path, headers.empty() ? default_headers_ : headers, body, "application/json");
  }
  nlohmann::json get_json(const std::string& path) const {
    auto r = get(path);
    REQUIRE_MESSAGE(r, "GET ", path, " failed: ", httplib::to_string(r.error()));
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), r->body);
    return j;
  }
  // Polls /status until `done` holds; false after the timeout.
  bool wait_status(const std::function<bool(const nlohmann::json&)>& done,
                   std::chrono::milliseconds timeout = 30s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = get("/status");
      if (r && r->status == 200) {
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        if (!j.is_discarded() && done(j)) {
          return true;
        }
      }
      std::this_thread::sleep_for(50ms);  // a poll interval, not a wait for an outcome
    }
    return false;
  }
  bool wait_cycles(std::uint64_t n, std::chrono::milliseconds timeout = 30s) const {
    return wait_status(
        [n](const nlohmann::json& s) { return s["sync"]["cycle_count"].get<std::uint64_t>() >= n; },
        timeout);
  }
  ProcessResult stop() {
    if (!process_) {
      return result_;
    }
    process_->signal(SIGTERM);
    result_ = process_->wait(20s);
    process_.reset();
    return result_;
  }

 private:
  std::unique_ptr<Process> process_;
  ProcessResult result_;
  int port_ = 0;
  std::string host_ = "127.0.0.1";
  httplib::Headers default_headers_;
};

// The name a real node lists for a simulated guest: its own, else "VM
// <vmid>" for QEMU and "CT<vmid>" for a container (tests/sim/ renders it so).
inline std::string listed_name(const sim::Guest& g) {
  if (g.name && !g.name->empty()) {
    return *g.name;
  }
  return (g.type == sim::GuestType::qemu ? "VM " : "CT") + std::to_string(g.vmid);
}

// The last lines the agent logged, for failure messages.
inline std::string log_tail(RunningAgent& a, std::size_t bytes = 3000) {
  const auto err = a.process().err_so_far();
  return err.size() > bytes ? err.substr(err.size() - bytes) : err;
}

// Triggers a cycle and waits for it to end; returns /status after it. A
// cycle already running (the reconnect schedule runs some by itself) may have
// started before the caller changed the world: it is waited out first, so the
// cycle this returns began after the call.
inline nlohmann::json cycle(RunningAgent& a,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  std::uint64_t before = 0;
  REQUIRE(a.wait_status(
      [&](const nlohmann::json& s) {
        before = s["sync"]["cycle_count"].get<std::uint64_t>();
        return s["sync"]["is_syncing"] == false;
      },
      timeout));
  auto r = a.post("/sync/trigger");
  REQUIRE(r);
  REQUIRE(r->status == 202);
  REQUIRE_MESSAGE(a.wait_cycles(before + 1, timeout), "no cycle ended in time; the agent's log:\n",
                  log_tail(a));
  return a.get_json("/status");
}

}  // namespace pha::test
