// pve-sim: a simulated Proxmox VE cluster for the demo and the benchmarks.
// Prints one JSON line once every host listens:
//   {"event":"ready","control":"http://127.0.0.1:P","ca_file":"DIR/ca.pem",
//    "hosts":{"pve1":"https://127.0.0.1:P1",...}}
// and runs until SIGTERM or SIGINT (exit 0).

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "tests/sim/pve_control.hpp"
#include "tests/sim/pve_sim.hpp"

namespace {

// "user@realm!name=SECRET"
pha::sim::ApiToken parse_token(const std::string& spec, bool privsep) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || spec.find('!') > eq) {
    throw std::invalid_argument("a token is USER@REALM!NAME=SECRET: " + spec.substr(0, eq));
  }
  pha::sim::ApiToken t;
  t.id = spec.substr(0, eq);
  t.secret = spec.substr(eq + 1);
  t.privsep = privsep;
  if (privsep) {
    t.privileges.clear();
  }
  return t;
}

// "user@realm:password"
pha::sim::User parse_user(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || spec.find('@') > colon) {
    throw std::invalid_argument("a password login is USER@REALM:PASSWORD");
  }
  return {.userid = spec.substr(0, colon), .password = spec.substr(colon + 1)};
}

// "PATH:SUBJECT:ROLES[:0]", as `pveum acl modify PATH --tokens|--users
// SUBJECT --roles ROLES [--propagate 0]`: ROLES is a comma-separated list of
// built-in roles (PVEAuditor) and privileges (names with a dot, VM.Audit).
struct AclSpec {
  std::string subject;
  pha::sim::Acl acl;
};

AclSpec parse_acl(const std::string& spec) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (auto colon = spec.find(':'); colon != std::string::npos; colon = spec.find(':', start)) {
    parts.push_back(spec.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(spec.substr(start));
  if (parts.size() < 3 || parts.size() > 4 || !parts[0].starts_with("/") || parts[1].empty() ||
      (parts.size() == 4 && parts[3] != "0" && parts[3] != "1")) {
    throw std::invalid_argument("an ACL is PATH:SUBJECT:ROLES[:0|1]: " + spec);
  }
  AclSpec a{parts[1], {.path = parts[0], .propagate = parts.size() == 3 || parts[3] == "1"}};
  for (const auto& name : pha::split_list(parts[2], ',')) {
    if (name.find('.') != std::string::npos) {
      a.acl.privileges.insert(name);
    } else if (a.acl.role.empty()) {
      a.acl.role = name;
    } else {
      throw std::invalid_argument("one built-in role per ACL: " + spec);
    }
  }
  return a;
}

// Gives the ACL to the token or user it names (a user it does not list yet is
// added without a password: it then only owns tokens).
void apply_acl(const AclSpec& a, pha::sim::PveSimOptions& options) {
  if (a.subject.find('!') != std::string::npos) {
    for (auto& t : options.tokens) {
      if (t.id == a.subject) {
        t.acls.push_back(a.acl);
        return;
      }
    }
    throw std::invalid_argument("an ACL for a token that is not defined: " + a.subject);
  }
  for (auto& u : options.users) {
    if (u.userid == a.subject) {
      u.acls = u.acls.value_or(std::vector<pha::sim::Acl>{});
      u.acls->push_back(a.acl);
      return;
    }
  }
  options.users.push_back({.userid = a.subject, .acls = std::vector<pha::sim::Acl>{a.acl}});
}

// "user@realm:CODE": the password user gets a TOTP second factor.
void apply_tfa(const std::string& spec, pha::sim::PveSimOptions& options) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || spec.find('@') > colon) {
    throw std::invalid_argument("two-factor is USER@REALM:CODE");
  }
  for (auto& u : options.users) {
    if (u.userid == spec.substr(0, colon)) {
      u.totp = spec.substr(colon + 1);
      return;
    }
  }
  throw std::invalid_argument("two-factor for a user without --password: " + spec.substr(0, colon));
}

// "NAME=PRIV,PRIV": a custom role.
std::pair<std::string, std::set<std::string>> parse_role(const std::string& spec) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument("a role is NAME=PRIVILEGE,PRIVILEGE: " + spec);
  }
  std::set<std::string> privileges;
  for (const auto& p : pha::split_list(spec.substr(eq + 1), ',')) {
    privileges.insert(p);
  }
  return {spec.substr(0, eq), privileges};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Simulated Proxmox VE cluster (HTTPS API per node, plus a control API)"};
  int nodes = 3;
  std::size_t guests = 100;
  std::uint64_t seed = 42;
  std::string dir;
  std::vector<std::string> tokens;
  std::vector<std::string> privsep_tokens;
  std::vector<std::string> passwords;
  std::vector<std::string> acls;
  std::vector<std::string> tfa;
  std::vector<std::string> roles;
  long long auth_delay_ms = 3000;
  bool legacy = false;
  std::string version = "8.4.14";
  std::string cluster_name = "pve-cluster";
  bool one_port_each = false;
  int port = 0;
  app.add_option("--nodes", nodes, "number of nodes (pve1..pveN)")->check(CLI::Range(1, 64));
  app.add_option("--guests", guests, "guests generated from the seed");
  app.add_option("--seed", seed, "seed of the generated guests");
  app.add_option("--dir", dir, "directory for the CA and node certificates (created)")->required();
  app.add_option("--token", tokens, "API token USER@REALM!NAME=SECRET (repeatable)");
  app.add_option("--privsep-token", privsep_tokens,
                 "privilege-separated API token without privileges (repeatable)");
  app.add_option("--password", passwords, "password login USER@REALM:PASSWORD (repeatable)");
  app.add_option("--acl", acls,
                 "ACL entry PATH:SUBJECT:ROLES[:0] (repeatable): SUBJECT a token or user id, "
                 "ROLES built-in roles or privileges, comma-separated; :0 does not propagate. "
                 "A user's ACLs replace its default of every privilege; a token's apply when it "
                 "is privilege-separated");
  app.add_option("--tfa", tfa,
                 "two-factor USER@REALM:CODE (repeatable): the --password user gets a TOTP "
                 "entry whose code is CODE; a login answers NeedTFA with a partial ticket");
  app.add_option("--role", roles,
                 "custom role NAME=PRIVILEGE,PRIVILEGE (repeatable), for --acl ROLES");
  app.add_option("--auth-delay-ms", auth_delay_ms,
                 "delay of failed authentication (Proxmox: 3000)");
  app.add_flag("--legacy", legacy, "answer like PVE 6.4 (string vmids, template \"\")");
  app.add_option("--pve-version", version,
                 "pve-manager version of every node (9.x: the PVE 9 privileges, without "
                 "VM.Monitor)");
  app.add_option("--cluster-name", cluster_name, "cluster name");
  app.add_flag("--one-port-each", one_port_each,
               "every node on 127.0.0.1 with its own port (default: 127.0.0.N, one port)");
  app.add_option("--port", port,
                 "the first node's port, as a real node's 8006 (with a shared port, every "
                 "node's; default: a free one)")
      ->check(CLI::Range(0, 65535));
  CLI11_PARSE(app, argc, argv);

  // Signals are taken with sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    pha::sim::PveSimOptions options;
    std::filesystem::create_directories(dir);
    options.dir = std::filesystem::absolute(dir).string();
    options.nodes.clear();
    for (int i = 1; i <= nodes; ++i) {
      options.nodes.push_back("pve" + std::to_string(i));
    }
    options.guests = guests;
    options.seed = seed;
    options.version = legacy ? "6.4-15" : version;
    options.cluster_name = cluster_name;
    options.auth_failure_delay = std::chrono::milliseconds(auth_delay_ms);
    options.shared_port = !one_port_each;
    options.port = port;
    for (const auto& t : tokens) {
      options.tokens.push_back(parse_token(t, false));
    }
    for (const auto& t : privsep_tokens) {
      options.tokens.push_back(parse_token(t, true));
    }
    for (const auto& p : passwords) {
      options.users.push_back(parse_user(p));
    }
    for (const auto& a : acls) {
      apply_acl(parse_acl(a), options);
    }
    for (const auto& t : tfa) {
      apply_tfa(t, options);
    }
    pha::sim::PveSim sim(options);
    for (const auto& r : roles) {
      auto [name, privileges] = parse_role(r);
      sim.cluster().set_role(name, std::move(privileges));
    }
    pha::sim::PveControlApi control(sim);
    control.start();

    nlohmann::json hosts = nlohmann::json::object();
    for (const auto& n : sim.node_names()) {
      hosts[n] = sim.host(n).url();
    }
    const nlohmann::json ready = {{"event", "ready"},
                                  {"control", control.url()},
                                  {"ca_file", sim.ca_file()},
                                  {"hosts", hosts}};
    std::cout << ready.dump() << std::endl;

    int sig = 0;
    sigwait(&signals, &sig);
    control.stop();
    sim.stop();
  } catch (const std::exception& e) {
    std::cerr << "pve-sim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
