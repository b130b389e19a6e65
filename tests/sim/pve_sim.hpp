#pragma once
// The Proxmox VE simulator as a whole: a PveCluster, one PveHost (pveproxy)
// per node serving HTTPS with certificates of a test CA, and everything torn
// down together. Tests run it in-process; the pve-sim program wraps it with a
// control API.
//
//   pha::test::TempDir dir;
//   pha::sim::PveSim sim({.dir = dir.path(), .nodes = {"pve1", "pve2", "pve3"},
//                         .guests = 200, .seed = 7, .auth_failure_delay = 10ms});
//   sim.cluster().add_token({.id = "agent@pve!sync", .secret = "s3cret"});
//   sim.host("pve1").url();    // https://127.0.0.1:PORT
//   sim.ca_file();             // verifies every host
//   sim.host("pve2").set_fault({.kind = pha::sim::FaultKind::down});
//   sim.cluster().set_node_online("pve3", false);
//   sim.cluster().advance(std::chrono::minutes(6));
//   sim.host("pve1").count("GET /api2/json/nodes/pve1/qemu");

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/sim/pve_cluster.hpp"
#include "tests/sim/pve_host.hpp"
#include "tests/support/test_pki.hpp"

namespace pha::sim {

struct PveSimOptions {
  std::string dir;  // where the CA and the node certificates are written (required)
  std::vector<std::string> nodes = {"pve1"};
  std::size_t guests = 0;  // generated from `seed`
  std::uint64_t seed = 42;
  std::string version = "8.4.14";  // every node's pve-manager version ("6.4-15": legacy typing)
  std::string cluster_name = "pve-cluster";
  std::chrono::milliseconds auth_failure_delay{3000};
  // Nodes listen on 127.0.0.1, 127.0.0.2, ... with one common port, so the
  // `ip` of /cluster/status with the first host's port reaches every node, as
  // on a real cluster (falls back to one port each on 127.0.0.1 when the
  // machine does not allow that). false: one port each on 127.0.0.1.
  bool shared_port = true;
  int port = 0;  // the first node's port (with a shared port, every node's); 0: a free one
  bool also_ipv6_loopback = false;
  std::vector<ApiToken> tokens;
  std::vector<User> users;
};

class PveSim {
 public:
  // Creates the PKI, the cluster and its guests, and starts every host.
  explicit PveSim(PveSimOptions options);
  ~PveSim();
  PveSim(const PveSim&) = delete;
  PveSim& operator=(const PveSim&) = delete;

  PveCluster& cluster() { return *cluster_; }
  // Throws std::out_of_range for an unknown node.
  PveHost& host(const std::string& node);
  std::vector<std::string> node_names() const { return options_.nodes; }
  const std::string& ca_file() const { return ca_file_; }
  const test::CertFiles& cert(const std::string& node) const { return certs_.at(node); }
  // Stops every host (also done by the destructor).
  void stop();

 private:
  void start_hosts(bool shared_port);

  PveSimOptions options_;
  std::unique_ptr<test::TestPki> pki_;
  std::string ca_file_;
  std::unique_ptr<PveCluster> cluster_;
  std::map<std::string, test::CertFiles> certs_;
  std::map<std::string, std::unique_ptr<PveHost>> hosts_;
};

}  // namespace pha::sim
