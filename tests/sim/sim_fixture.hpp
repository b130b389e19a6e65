#pragma once
// A simulated cluster in a temporary directory, with an API token, a password
// user and a short authentication delay, plus request helpers.

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/sim/pve_sim.hpp"
#include "tests/sim/sim_client.hpp"
#include "tests/support/process.hpp"

namespace pha::simtest {

inline const std::string kTokenId = "agent@pve!sync";
inline const std::string kTokenSecret = "6f1c2d3e-4b5a-4978-8a9b-0c1d2e3f4a5b";
inline const std::string kTokenHeader =
    "Authorization: PVEAPIToken=" + kTokenId + "=" + kTokenSecret;
inline const std::string kUser = "root@pam";
inline const std::string kPassword = "correct horse";
constexpr std::chrono::milliseconds kAuthDelay{20};

inline sim::PveSimOptions sim_options(const std::string& dir, sim::PveSimOptions o) {
  o.dir = dir;
  o.auth_failure_delay = kAuthDelay;
  if (o.tokens.empty()) {
    o.tokens.push_back({.id = kTokenId, .secret = kTokenSecret});
  }
  if (o.users.empty()) {
    o.users.push_back({.userid = kUser, .password = kPassword});
  }
  return o;
}

struct SimCluster {
  explicit SimCluster(sim::PveSimOptions o = {}) : sim(sim_options(dir.path(), std::move(o))) {}

  sim::PveCluster& cluster() { return sim.cluster(); }
  sim::PveHost& host(const std::string& node) { return sim.host(node); }
  std::string url(const std::string& node, const std::string& api_path) {
    return sim.host(node).url() + "/api2/json" + api_path;
  }
  Request request(const std::string& node, const std::string& api_path,
                  std::vector<std::string> headers = {kTokenHeader}) {
    Request r;
    r.url = url(node, api_path);
    r.ca_file = sim.ca_file();
    r.headers = std::move(headers);
    return r;
  }
  // GET with the API token on a fresh connection.
  Reply get(const std::string& node, const std::string& api_path,
            std::vector<std::string> headers = {kTokenHeader}) {
    return fetch(request(node, api_path, std::move(headers)));
  }

  test::TempDir dir;
  sim::PveSim sim;
};

// Polls `done` every few milliseconds until it holds or `timeout` passes.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded by `timeout`
  }
  return done();
}

}  // namespace pha::simtest
