#pragma once
// The HTTP API over a fake agent: the real store, monitors, host manager,
// endpoint pool and failover log on a fake clock, and fakes for what the
// threads would report (the loop, the server, the whitelist). The unit tests
// of the API and the fuzz target of the server build it the same way; each
// changes the public members to set the scene.

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/http/api.hpp"
#include "tests/support/fake_clock.hpp"

namespace pha::test {

struct ApiWorld {
  FakeClock clock;
  StatusStore store{clock, std::size_t{10}};
  UpstreamMonitor proxmox{"proxmox", clock, HealthSettings{}};
  UpstreamMonitor accountdb{"accountdb", clock, HealthSettings{}};
  std::shared_ptr<const Settings> settings;
  HostManager hosts;
  EndpointPool endpoints;
  FailoverLog failover_log{""};
  int triggers = 0;
  int refreshes = 0;
  LoopState loop{true, false, 0, {}};
  PermissionStatus permissions;
  http::ServerStats server;
  std::vector<std::int64_t> whitelist;
  std::unique_ptr<Api> api;

  // PROXMOX_HOST https://127.0.0.1:8006, one AccountDB endpoint, node 34.
  static Settings defaults() {
    Settings s;
    s.proxmox_host = *parse_url("https://127.0.0.1:8006", {"https", 8006});
    s.accountdb_endpoints = {{*parse_url("http://127.0.0.1:8080", {"http", 80}), 1, 1}};
    s.accountdb_node_id = 34;
    return s;
  }

  explicit ApiWorld(Settings s = defaults())
      : settings(std::make_shared<const Settings>(std::move(s))),
        hosts(
            host_options(*settings), proxmox, clock, [] { return 0.5; }, FailoverSink{}),
        endpoints(PoolOptions{settings->accountdb_endpoints, settings->accountdb_strategy},
                  accountdb, clock, FailoverSink{}),
        api(std::make_unique<Api>(context())) {}

  // The request as the server would pass it on; a job runs at once.
  http::Response call(std::string method, std::string path, bool loopback = true,
                      std::string authorization = "") {
    http::Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.target = r.path;
    r.peer_loopback = loopback;
    r.peer = loopback ? "127.0.0.1" : "192.0.2.7";
    if (!authorization.empty()) {
      r.headers.emplace_back("authorization", std::move(authorization));
    }
    auto d = api->dispatch(r);
    return d.now ? *d.now : d.job();
  }

 private:
  static HostOptions host_options(const Settings& s) {
    HostOptions h;
    h.primary = s.proxmox_host.str();
    for (const auto& host : s.proxmox_hosts) {
      h.configured.push_back(host.str());
    }
    h.primary_node = "pve1";
    return h;
  }

  ApiContext context() {
    ApiContext c;
    c.clock = &clock;
    c.store = &store;
    c.proxmox = &proxmox;
    c.accountdb = &accountdb;
    c.hosts = &hosts;
    c.endpoints = &endpoints;
    c.failover_log = &failover_log;
    c.retry_budgets = [] {
      return std::vector<std::pair<std::string, double>>{{"proxmox", 10.0}, {"accountdb", 7.5}};
    };
    c.version = "1.2.3";
    c.started_at = clock.unix_now();
    c.settings = [this] { return settings; };
    c.config_json = [] { return nlohmann::json{{"settings", nlohmann::json::object()}}; };
    c.loop = [this] { return loop; };
    c.trigger_sync = [this] { ++triggers; };
    c.whitelist_status = [] { return WhitelistStatus{}; };
    c.whitelist_vmids = [this] { return whitelist; };
    c.refresh_whitelist = [this]() -> Result<WhitelistStatus> {
      ++refreshes;
      return Error{ErrorKind::network, "AccountDB: GET /vm-access/node/34/whitelist/agent: 503"};
    };
    c.owner_id = [] { return std::optional<std::int64_t>(2); };
    c.node_name = [] { return std::string("pve1"); };
    c.proxmox_permissions = [this] { return permissions; };
    c.server_stats = [this] { return server; };
    c.responses_by_status = [] { return std::vector<std::pair<int, std::uint64_t>>{{200, 3}}; };
    return c;
  }
};

}  // namespace pha::test
