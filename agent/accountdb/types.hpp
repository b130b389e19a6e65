#pragma once
// What AccountDB answers, as the agent uses it (docs/accountdb.md).

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.hpp"

namespace pha {

// Call A: the node object.
struct AccountDbNode {
  std::int64_t id = 0;
  std::string name;
  std::string status;
  std::optional<std::int64_t> owner_id;
  std::vector<std::int64_t> whitelist;
};

// A row of list_vms.
struct AccountDbRow {
  std::int64_t id = 0;  // AccountDB's key, the path of an update
  std::int64_t vmid = 0;
  std::string name;
  std::string status;
  std::optional<std::int64_t> cpu_cores;
  std::optional<double> cpu_usage_percent;
  std::optional<std::int64_t> memory_mb;
  std::optional<std::int64_t> disk_gb;
  std::optional<std::string> ip_address;
  std::optional<std::int64_t> owner_id;
  // The AccountDB node the row belongs to; a row of another node in this
  // node's list_vms is a wrong answer (the plan leaves it out).
  std::optional<std::int64_t> proxmox_node_id;
  std::string created_at;
  std::string updated_at;
  bool operator==(const AccountDbRow&) const = default;
};

Result<AccountDbNode> parse_node(std::string_view body);
// whitelist: a bare JSON array of VMIDs.
Result<std::set<std::int64_t>> parse_whitelist_c(std::string_view body);
// whitelist_legacy: {"node_id", "vmids": [...], "success", "message"}.
Result<std::set<std::int64_t>> parse_whitelist_d(std::string_view body);
// list_vms: {"vms": [row...], "count", "node_id"}. A row that cannot be
// understood fails the whole answer: list_vms decides what gets created, and a
// missing row would become a duplicate.
Result<std::vector<AccountDbRow>> parse_rows(std::string_view body);

}  // namespace pha
