#include "tests/sim/pve_sim.hpp"

#include <stdexcept>

namespace pha::sim {

namespace {

constexpr int kBindAttempts = 20;

std::string loopback(std::size_t index) {
  return "127.0.0." + std::to_string(index + 1);
}

}  // namespace

PveSim::PveSim(PveSimOptions options) : options_(std::move(options)) {
  if (options_.dir.empty()) {
    throw std::invalid_argument("PveSim needs a directory for its certificates");
  }
  if (options_.nodes.empty()) {
    throw std::invalid_argument("PveSim needs at least one node");
  }
  pki_ = std::make_unique<test::TestPki>(options_.dir);
  ca_file_ = pki_->ca_pem_path();
  cluster_ = std::make_unique<PveCluster>(options_.nodes, options_.cluster_name);
  cluster_->set_all_versions(options_.version);
  cluster_->set_auth_failure_delay(options_.auth_failure_delay);
  for (const auto& t : options_.tokens) {
    cluster_->add_token(t);
  }
  for (const auto& u : options_.users) {
    cluster_->add_user(u);
  }
  if (options_.guests > 0) {
    cluster_->generate(options_.guests, options_.seed);
  }
  for (std::size_t i = 0; i < options_.nodes.size(); ++i) {
    const auto& node = options_.nodes[i];
    std::vector<std::string> ips = {"127.0.0.1", "::1"};
    if (i > 0) {
      ips.push_back(loopback(i));
    }
    certs_[node] = pki_->issue(node, {"localhost", node}, ips);
  }
  bool shared = options_.shared_port && options_.nodes.size() > 1;
  for (int attempt = 0;; ++attempt) {
    try {
      start_hosts(shared);
      break;
    } catch (const std::exception&) {
      stop();
      hosts_.clear();
      if (attempt + 1 >= kBindAttempts) {
        throw;
      }
      // Another program holds the common port on one of the addresses: try
      // another port; after a few tries, give every node its own port.
      if (attempt >= 4) {
        shared = false;
      }
    }
  }
}

PveSim::~PveSim() {
  stop();
}

void PveSim::start_hosts(bool shared_port) {
  int port = options_.port;
  for (std::size_t i = 0; i < options_.nodes.size(); ++i) {
    const auto& node = options_.nodes[i];
    const auto& cert = certs_.at(node);
    PveHostOptions ho;
    ho.bind_address = shared_port ? loopback(i) : "127.0.0.1";
    ho.port = shared_port || i == 0 ? port : 0;
    ho.also_ipv6_loopback = options_.also_ipv6_loopback && i == 0;
    ho.cert_pem_path = cert.cert_pem_path;
    ho.key_pem_path = cert.key_pem_path;
    ho.fingerprint = cert.sha256_fingerprint;
    auto host = std::make_unique<PveHost>(*cluster_, node, ho);
    host->start();
    if (i == 0) {
      port = host->port();
    }
    cluster_->set_node_ip(node, ho.bind_address);
    hosts_[node] = std::move(host);
  }
}

PveHost& PveSim::host(const std::string& node) {
  const auto it = hosts_.find(node);
  if (it == hosts_.end()) {
    throw std::out_of_range("no such simulated host: " + node);
  }
  return *it->second;
}

void PveSim::stop() {
  for (auto& [name, h] : hosts_) {
    h->stop();
  }
}

}  // namespace pha::sim
