#pragma once
// The AccountDB simulator's database: the `proxmox_nodes` and `vms` tables,
// the server's settings and its clock, shared by every endpoint. Thread-safe.

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agent/core/clock.hpp"

namespace pha::sim {

// A row of `proxmox_nodes` with its API key.
struct AdbNode {
  long long id = 0;
  std::string name;  // "" = "pha-node-<id>"
  std::string hostname = "127.0.0.1";
  int port = 8006;
  std::string api_key;  // accepted for this node id only
  long long owner_id = 1;
  std::vector<long long> whitelist;
  std::string status = "disconnected";   // node_info and heartbeat make it "connected"
  std::optional<std::string> last_seen;  // set by node_info and heartbeat
  std::string created_at;                // ISO 8601; "" = when it is added
  std::string updated_at;
};

// A row of `vms`. The server does not store uptime_seconds or proxmox_node.
struct AdbRow {
  long long id = 0;  // add_row: 0 = the next serial
  long long vmid = 0;
  std::string name;
  std::string status = "stopped";
  std::optional<long long> cpu_cores;
  std::optional<double> cpu_usage_percent;
  std::optional<long long> memory_mb;
  std::optional<long long> disk_gb;
  std::optional<std::string> ip_address;
  long long proxmox_node_id = 0;
  std::optional<long long> template_id;
  std::optional<std::string> notes;
  long long owner_id = 1;
  std::string created_at;  // ISO 8601; "" = when it is added
  std::string updated_at;
};

// How the server behaves (AdbSimOptions explains each).
struct AdbSettings {
  std::size_t rate_limit = 100;
  std::chrono::seconds rate_window{60};
  bool whitelist_endpoint = true;
  bool reject_float_disk = false;
  long long created_row_owner_id = 1;
};

// What put_vm writes: the fields of its body after validation.
struct AdbVmFields {
  long long vmid = 0;
  std::string name;
  std::optional<std::string> ip_address;
  std::string status = "stopped";
  std::optional<long long> cpu_cores;
  std::optional<double> cpu_usage_percent;
  std::optional<long long> memory_mb;
  std::optional<long long> disk_gb;
  std::optional<long long> template_id;
  std::optional<std::string> notes;
};

enum class AdbKeyCheck { ok, no_such_node, wrong_key };

class AdbStore {
 public:
  // `clock` (not owned) nullptr: the system clock.
  AdbStore(AdbSettings settings, const Clock* clock);

  // --- time: the clock plus everything advanced ---
  void advance(Clock::Duration d);
  Clock::TimePoint now() const;

  // --- settings ---
  AdbSettings settings() const;
  void set_settings(const AdbSettings& settings);

  // --- nodes (see AdbSim) ---
  void add_node(AdbNode node);
  std::optional<AdbNode> node(long long id) const;
  std::vector<AdbNode> nodes() const;
  bool set_whitelist(long long node_id, std::vector<long long> vmids);
  std::string rotate_key(long long node_id, std::string new_key);
  AdbKeyCheck check_key(long long node_id, const std::string& key) const;
  // Marks the node connected, seen now; the node as it was before.
  std::optional<AdbNode> mark_connected(long long node_id);

  // --- rows (see AdbSim) ---
  AdbRow add_row(AdbRow row);
  bool edit_row(long long id, const std::function<void(AdbRow&)>& edit);
  bool delete_row(long long id);
  std::optional<AdbRow> row(long long id) const;
  std::vector<AdbRow> rows() const;
  std::vector<AdbRow> rows_of_node(long long node_id) const;
  // put_vm: updates row `id` (a null field keeps the stored value) and moves
  // it to `node_id`, or inserts a new row with the next serial when there is
  // no row `id`. Returns the stored row.
  AdbRow put_vm(long long id, long long node_id, const AdbVmFields& vm);

  // A random request id (16 hex digits).
  std::string request_id();

 private:
  std::string stamp_locked();  // a strictly increasing ISO 8601 timestamp

  const Clock* clock_;
  mutable std::mutex mutex_;
  AdbSettings settings_;
  Clock::Duration offset_{};
  long long last_stamp_us_ = 0;
  std::map<long long, AdbNode> nodes_;
  std::map<long long, AdbRow> rows_;
  std::map<long long, unsigned long long> row_writes_;  // id -> write sequence (list_vms' order)
  unsigned long long write_seq_ = 0;
  long long next_row_id_ = 1;
  std::mt19937_64 rng_;
};

}  // namespace pha::sim
