// adb-sim: a simulated AccountDB server for the demo and the benchmarks.
// Prints one JSON line once it listens:
//   {"event":"ready","url":"http://127.0.0.1:P","control":"http://127.0.0.1:Q",
//    "urls":["http://127.0.0.1:P", ...]}
// and runs until SIGTERM or SIGINT (exit 0). "url" is endpoint 0; "urls" has
// every endpoint (--endpoints N: N API servers in front of one database).
//
// Nodes come from flags, one group per --node-id (--api-key is required for
// each; --whitelist, --owner-id and --node-name are given for every node or
// not at all), and/or from a JSON seed file:
//   {"nodes": [{"id": 34, "api_key": "...", "name": "pve1", "owner_id": 2,
//               "whitelist": [101, 102]}],
//    "rows":  [{"vmid": 101, "name": "web", "proxmox_node_id": 34, "status": "running"}]}

#include <csignal>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "tests/sim/adb_control.hpp"

namespace {

using nlohmann::json;

std::vector<long long> parse_whitelist(const std::string& text) {
  std::vector<long long> out;
  for (const auto& piece : pha::split_list(text, ',')) {
    const auto v = pha::parse_int(piece);
    if (!v) {
      throw std::invalid_argument("a whitelist is a comma-separated list of VMIDs: " + text);
    }
    out.push_back(*v);
  }
  return out;
}

template <typename T>
std::optional<T> optional_of(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) {
    return std::nullopt;
  }
  return j[key].get<T>();
}

void load_seed(const std::string& path, pha::sim::AdbSimOptions& options) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("cannot read the seed file " + path);
  }
  const auto seed = json::parse(in);
  for (const auto& n : seed.value("nodes", json::array())) {
    pha::sim::AdbNode node;
    node.id = n.at("id").get<long long>();
    node.api_key = n.at("api_key").get<std::string>();
    node.name = n.value("name", std::string());
    node.hostname = n.value("hostname", node.hostname);
    node.port = n.value("port", node.port);
    node.owner_id = n.value("owner_id", node.owner_id);
    node.whitelist = n.value("whitelist", std::vector<long long>());
    options.nodes.push_back(std::move(node));
  }
  for (const auto& r : seed.value("rows", json::array())) {
    pha::sim::AdbRow row;
    row.id = r.value("id", 0LL);
    row.vmid = r.at("vmid").get<long long>();
    row.name = r.value("name", "VM-" + std::to_string(row.vmid));
    row.status = r.value("status", row.status);
    row.cpu_cores = optional_of<long long>(r, "cpu_cores");
    row.cpu_usage_percent = optional_of<double>(r, "cpu_usage_percent");
    row.memory_mb = optional_of<long long>(r, "memory_mb");
    row.disk_gb = optional_of<long long>(r, "disk_gb");
    row.ip_address = optional_of<std::string>(r, "ip_address");
    row.proxmox_node_id = r.at("proxmox_node_id").get<long long>();
    row.template_id = optional_of<long long>(r, "template_id");
    row.notes = optional_of<std::string>(r, "notes");
    row.owner_id = r.value("owner_id", row.owner_id);
    options.rows.push_back(std::move(row));
  }
}

// Each of `values` is given for every node or not at all.
template <typename T>
const T* per_node(const std::vector<T>& values, std::size_t i, std::size_t nodes,
                  const char* flag) {
  if (values.empty()) {
    return nullptr;
  }
  if (values.size() != nodes) {
    throw std::invalid_argument(std::string(flag) +
                                " must be given once per --node-id or not at all");
  }
  return &values[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated AccountDB server (the agent protocol, plus a control API)"};
  std::vector<long long> node_ids;
  std::vector<std::string> api_keys;
  std::vector<std::string> whitelists;
  std::vector<long long> owner_ids;
  std::vector<std::string> node_names;
  std::string seed_file;
  std::size_t rate_limit = 100;
  long long rate_window = 60;
  bool older_server = false;
  bool newer_server = false;
  long long row_owner_id = 1;
  int port = 0;
  std::size_t endpoints = 1;
  app.add_option("--node-id", node_ids, "node id (repeatable: one node per --node-id)");
  app.add_option("--api-key", api_keys, "the node's API key (one per --node-id)");
  app.add_option("--whitelist", whitelists, "the node's VMID whitelist, e.g. 101,102 (per node)");
  app.add_option("--owner-id", owner_ids, "the node's owner id (per node; default 1)");
  app.add_option("--node-name", node_names, "the node's name (per node; default pha-node-ID)");
  app.add_option("--seed", seed_file, "JSON file with {\"nodes\": [...], \"rows\": [...]}");
  app.add_option("--rate-limit", rate_limit,
                 "requests per window per client address and path (0: no limit)");
  app.add_option("--rate-window", rate_window, "rate limit window in seconds")
      ->check(CLI::Range(1LL, 86400LL));
  app.add_flag("--no-whitelist-endpoint", older_server,
               "answer like an older server without GET /vm-access/.../whitelist/agent (404)");
  app.add_flag("--reject-float-disk", newer_server,
               "answer like a newer server (pydantic v2) that rejects a fractional disk_gb");
  app.add_option("--row-owner-id", row_owner_id, "owner_id of rows that PUT /vms/agent creates");
  app.add_option("--port", port, "port of the AccountDB API (default: any free port)");
  app.add_option("--endpoints", endpoints,
                 "API endpoints over the same database (--port is the first's; the others "
                 "take any free port)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));
  CLI11_PARSE(app, argc, argv);

  // Signals are taken with sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    pha::sim::AdbSimOptions options;
    if (api_keys.size() != node_ids.size()) {
      throw std::invalid_argument("every --node-id needs its --api-key");
    }
    for (std::size_t i = 0; i < node_ids.size(); ++i) {
      pha::sim::AdbNode node;
      node.id = node_ids[i];
      node.api_key = api_keys[i];
      if (const auto* w = per_node(whitelists, i, node_ids.size(), "--whitelist")) {
        node.whitelist = parse_whitelist(*w);
      }
      if (const auto* o = per_node(owner_ids, i, node_ids.size(), "--owner-id")) {
        node.owner_id = *o;
      }
      if (const auto* n = per_node(node_names, i, node_ids.size(), "--node-name")) {
        node.name = *n;
      }
      options.nodes.push_back(std::move(node));
    }
    if (!seed_file.empty()) {
      load_seed(seed_file, options);
    }
    if (options.nodes.empty()) {
      throw std::invalid_argument("no node: give --node-id and --api-key, or --seed");
    }
    options.rate_limit = rate_limit;
    options.rate_window = std::chrono::seconds(rate_window);
    options.whitelist_endpoint = !older_server;
    options.reject_float_disk = newer_server;
    options.created_row_owner_id = row_owner_id;
    options.port = port;

    pha::sim::AdbSim sim(std::move(options));
    while (sim.endpoints() < endpoints) {
      sim.add_endpoint();
    }
    pha::sim::AdbControlApi control(sim);
    control.start();

    nlohmann::ordered_json ready = {
        {"event", "ready"}, {"url", sim.url()}, {"control", control.url()}};
    ready["urls"] = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < sim.endpoints(); ++i) {
      ready["urls"].push_back(sim.url(i));
    }
    std::cout << ready.dump() << std::endl;

    int sig = 0;
    sigwait(&signals, &sig);
    control.stop();
    sim.stop();
  } catch (const std::exception& e) {
    std::cerr << "adb-sim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
