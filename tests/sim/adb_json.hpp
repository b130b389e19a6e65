#pragma once
// The AccountDB simulator's state as JSON: as the server shows it, as the
// control API and state_json() show it, and read back from control requests.

#include <optional>

#include <nlohmann/json.hpp>

#include "tests/sim/adb_fault.hpp"
#include "tests/sim/adb_store.hpp"

namespace pha::sim {

struct AdbRecordedRequest;

// The value, or null.
template <typename Json = nlohmann::json, typename T>
Json optional_json(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

// A node as node_info answers it, in the server's order.
nlohmann::ordered_json node_columns(const AdbNode& n);
// Every column of a row, in the table's order.
nlohmann::ordered_json row_columns(const AdbRow& r);

nlohmann::json node_json(const AdbNode& n);  // node_columns and the key
nlohmann::json row_json(const AdbRow& r);
nlohmann::json fault_json(const std::optional<AdbFault>& f);  // null when none
nlohmann::json settings_json(const AdbSettings& s);
nlohmann::json request_json(const AdbRecordedRequest& r);

// The fields `j` has, into `r` (a null clears an optional field).
void apply_row_json(const nlohmann::json& j, AdbRow& r);
// A row to add: its id when given, on `node_id` unless it says another,
// named "VM-<vmid>" unless it has a name.
AdbRow new_row_from_json(const nlohmann::json& j, long long node_id);
AdbNode node_from_json(const nlohmann::json& j);
// Throws ControlError 400 for an unknown kind or call.
AdbFault fault_from_json(const nlohmann::json& j);

}  // namespace pha::sim
