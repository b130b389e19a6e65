#pragma once
// The reference the agent is measured against: a sync cycle done the way the
// old Python agent did it, written here with libcurl alone (none of the
// agent's code): list the node's guests, then one config and one
// status/current call per guest, read the whitelist and what AccountDB has,
// and PUT every guest again, each request on a new connection (a new TLS
// handshake for every Proxmox call).

#include <cstdint>
#include <string>

namespace pha::bench {

struct NaiveTarget {
  std::string proxmox_url;  // https://127.0.0.1:PORT
  std::string ca_file;
  std::string token_id;
  std::string token_secret;
  std::string node;
  std::string accountdb_url;  // http://127.0.0.1:PORT
  std::string api_key;
  long long node_id = 0;
};

struct NaiveCycle {
  bool ok = false;     // every request answered 2xx
  std::string error;   // the first failure
  double wall_ms = 0;  // the cycle, start to end
  double cpu_ms = 0;   // CPU of the thread that ran it (client side only)
  long long proxmox_requests = 0;
  long long accountdb_requests = 0;
  long long writes = 0;
};

// Runs one cycle on the calling thread.
NaiveCycle run_naive_cycle(const NaiveTarget& t);

}  // namespace pha::bench
