// The monitoring bundle (monitoring/, docs/monitoring.md) against a real
// Prometheus server, Debian's `prometheus`: it scrapes a running agent every
// second with the shipped alert rules loaded, every `for: Nm` shortened to
// `for: Ns`. An AccountDB outage makes ProxmoxHostAgentAccountDbUnreachable
// fire, and it resolves after recovery; every query of the shipped dashboard
// returns data from that Prometheus.

#include <fstream>
#include <regex>
#include <sstream>

#include <doctest/doctest.h>

#include "tests/integration/webhook_receiver.hpp"
#include "tests/integration/world.hpp"

using namespace pha;
using namespace pha::test;

namespace {

const std::string kPrometheus = "/usr/bin/prometheus";
const std::string kMonitoring = PHA_SOURCE_DIR "/monitoring";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The shipped rules with every `for:` in seconds instead of minutes.
std::string rules_for_test() {
  const auto rules = slurp(kMonitoring + "/alerts.yml");
  const std::regex minutes(R"(for: (\d+)m\b)");
  REQUIRE(std::regex_search(rules, minutes));
  return std::regex_replace(rules, minutes, "for: $1s");
}

// A Prometheus server on 127.0.0.1, port 0, with its data in `dir`, scraping
// `target` (host:port) as the job proxmox-host-agent every second.
class Prometheus {
 public:
  Prometheus(const TempDir& dir, const std::string& target) {
    const auto rules = dir.write("alerts.yml", rules_for_test());
    const auto config = dir.write("prometheus.yml",
                                  "global:\n"
                                  "  scrape_interval: 1s\n"
                                  "  evaluation_interval: 1s\n"
                                  "rule_files: ['" +
                                      rules +
                                      "']\n"
                                      "scrape_configs:\n"
                                      "  - job_name: proxmox-host-agent\n"
                                      "    static_configs:\n"
                                      "      - targets: ['" +
                                      target + "']\n");
    process_ = std::make_unique<Process>(
        kPrometheus,
        ProcessOptions{{"--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/tsdb",
                        "--web.listen-address=127.0.0.1:0"},
                       {{"PATH", "/usr/bin:/bin"}},
                       dir.path()});
    REQUIRE_MESSAGE(process_->wait_for_output("Server is ready to receive web requests", 60s),
                    process_->err_so_far());
    const auto ports = listening_ports(process_->pid());
    REQUIRE_MESSAGE(ports.size() == 1, process_->err_so_far());
    port_ = ports.front();
  }
  ~Prometheus() {
    process_->signal(SIGTERM);
    process_->wait(20s);
  }

  // GET /api/v1/<path>: its `data`, after checking `status` is success.
  nlohmann::json api(const std::string& path, const httplib::Params& params = {}) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(20s);
    auto r = c.Get("/api/v1/" + path, params, {});
    REQUIRE_MESSAGE(r, "GET /api/v1/", path, ": ", httplib::to_string(r.error()));
    const auto j = nlohmann::json::parse(r->body, nullptr, false);
    REQUIRE_MESSAGE((!j.is_discarded() && j.value("status", "") == "success"), path, ": ", r->body);
    return j["data"];
  }
  nlohmann::json query(const std::string& expr) const {
    return api("query", {{"query", expr}})["result"];
  }
  // The state of the alerting rule `name`: inactive, pending or firing.
  std::string alert_state(const std::string& name) const {
    const auto rules = api("rules", {{"type", "alert"}});  // kept: the loop reads into it
    for (const auto& g : rules["groups"]) {
      for (const auto& r : g["rules"]) {
        if (r.value("name", "") == name) {
          return r.value("state", "");
        }
      }
    }
    FAIL("no alerting rule ", name);
    return "";
  }
  std::string log() const { return process_->err_so_far(); }

 private:
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

// Polls `done` every 200 ms, doing `step` before each poll; false after the
// timeout.
bool wait_until(
    const std::function<bool()>& done, std::chrono::seconds timeout,
    const std::function<void()>& step = [] {}) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    step();
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(200ms);  // a poll interval, not a wait for an outcome
  }
  return false;
}

// Every target of every panel of the shipped dashboard, with the Grafana
// variables replaced as Grafana would for `instance`.
std::vector<std::pair<std::string, std::string>> dashboard_queries(const std::string& instance) {
  const auto dashboard = nlohmann::json::parse(slurp(kMonitoring + "/dashboard.json"));
  std::vector<std::pair<std::string, std::string>> out;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& panels) {
    for (const auto& p : panels) {
      for (const auto& t : p.value("targets", nlohmann::json::array())) {
        auto expr = t.value("expr", "");
        for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
                 {"$instance", instance}, {"$__rate_interval", "1m"}, {"$__range", "1h"}}) {
          for (auto at = expr.find(var); at != std::string::npos; at = expr.find(var)) {
            expr.replace(at, var.size(), value);
          }
        }
        out.emplace_back(p.value("title", "") + " " + t.value("refId", ""), expr);
      }
      walk(p.value("panels", nlohmann::json::array()));
    }
  };
  walk(dashboard["panels"]);
  return out;
}

// An agent with a webhook receiver, healthy after its first cycle, and a
// Prometheus that scrapes it and has loaded the rules.
struct Watched {
  World w;
  Receiver receiver;
  RunningAgent agent{w,
                     {{"WEBHOOK_URLS", receiver.url()},
                      {"PROXMOX_NODE_NAME", "pve1"},
                      {"UPDATE_INTERVAL", "3600"},
                      {"HEALTH_CHECK_INTERVAL", "10"}}};
  std::string instance = "127.0.0.1:" + std::to_string(agent.port());
  TempDir dir;
  std::unique_ptr<Prometheus> prom;

  Watched() {
    REQUIRE(agent.wait_status(
        [](const nlohmann::json& s) {
          return s["current"].is_object() && s["current"]["status"] == "ok";
        },
        60s));
    prom = std::make_unique<Prometheus>(dir, instance);
    REQUIRE_MESSAGE(wait_until(
                        [&] {
                          return prom->query("up{job=\"proxmox-host-agent\"} == 1").size() == 1 &&
                                 prom->api("rules")["groups"].size() == 1;
                        },
                        30s),
                    prom->log());
  }
};

// The agent's own view of its AccountDB endpoints, for failure messages.
std::string accountdb_series(const RunningAgent& agent) {
  const auto r = agent.get("/metrics");
  if (!r) {
    return "GET /metrics: " + httplib::to_string(r.error());
  }
  std::istringstream in(r->body);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.find("upstream=\"accountdb\"") != std::string::npos &&
        line.find("upstream_health") != std::string::npos) {
      out += line + "\n";
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    out += " " + w;
  }
  return out;
}

}  // namespace

TEST_CASE("prometheus: every query of the shipped dashboard returns data") {
  Watched s;
  const auto queries = dashboard_queries(s.instance);
  REQUIRE(queries.size() >= 20);
  // A cycle after the first scrapes, so that the rates and increases see a
  // change; then every query, each waited for (bounded).
  cycle(s.agent);
  for (const auto& [panel, expr] : queries) {
    CAPTURE(panel);
    CAPTURE(expr);
    CHECK(wait_until([&] { return !s.prom->query(expr).empty(); }, 20s));
  }
}

TEST_CASE(
    "prometheus: ProxmoxHostAgentAccountDbUnreachable fires during an AccountDB outage and "
    "resolves after it") {
  Watched s;
  const std::string alert = "ProxmoxHostAgentAccountDbUnreachable";
  REQUIRE(s.prom->alert_state(alert) == "inactive");
  s.w.adb.set_fault({.kind = sim::AdbFaultKind::down});
  const auto trigger = [&] { s.agent.post("/sync/trigger"); };
  // for: 10s here (10m shipped): pending first, then firing. Every state
  // seen is kept, in order, for the failure message.
  std::vector<std::string> seen;
  const auto reaches = [&](const std::string& state) {
    return wait_until(
        [&] {
          const auto now = s.prom->alert_state(alert);
          if (seen.empty() || seen.back() != now) {
            seen.push_back(now);
          }
          return now == state;
        },
        60s, trigger);
  };
  REQUIRE_MESSAGE(reaches("pending"), accountdb_series(s.agent), "states seen:", joined(seen));
  REQUIRE_MESSAGE(reaches("firing"), accountdb_series(s.agent), "states seen:", joined(seen));
  const auto alerts = s.prom->api("alerts");
  for (const auto& a : alerts["alerts"]) {
    if (a["labels"].value("alertname", "") == alert) {
      MESSAGE("states seen:", joined(seen), "; the alert: ", a.dump());
    }
  }
  s.w.adb.clear_fault();
  CHECK_MESSAGE(wait_until([&] { return s.prom->alert_state(alert) == "inactive"; }, 90s, trigger),
                accountdb_series(s.agent), log_tail(s.agent));
  CHECK(s.prom
            ->query("proxmox_host_agent_upstream_health{upstream=\"accountdb\",state=\"healthy\"}"
                    " == 1")
            .size() == 1);
}
