#include "agent/proxmox/tasks.hpp"

#include <charconv>

#include "agent/proxmox/json_fields.hpp"

namespace pha {

using namespace pve_json;

std::optional<std::int64_t> ProxmoxTask::vmid() const {
  std::int64_t v = 0;
  const auto* end = id.data() + id.size();
  const auto [ptr, ec] = std::from_chars(id.data(), end, v);
  if (id.empty() || ec != std::errc() || ptr != end || v <= 0) {
    return std::nullopt;
  }
  return v;
}

namespace {

// One entry, or nullopt when it is not a task (a field of the wrong kind
// included: a task list is read for hints, so one odd entry must not hide
// the others).
std::optional<ProxmoxTask> read_task(const nlohmann::json& e) {
  if (!e.is_object()) {
    return std::nullopt;
  }
  // The id is text ("101"); a number is taken as its text.
  nlohmann::json entry = e;
  if (const auto it = entry.find("id"); it != entry.end() && it->is_number_integer()) {
    *it = std::to_string(it->get<std::int64_t>());
  }
  const auto& f = entry;
  auto upid = string_field(f, "upid");
  auto node = string_field(f, "node");
  auto type = string_field(f, "type");
  auto id = string_field(f, "id");
  auto user = string_field(f, "user");
  auto status = string_field(f, "status");
  auto start = int_field(f, "starttime");
  auto end = int_field(f, "endtime");
  if (!upid || !node || !type || !id || !user || !status || !start || !end || !upid->has_value() ||
      !node->has_value() || !type->has_value() || !start->has_value()) {
    return std::nullopt;
  }
  ProxmoxTask t;
  t.upid = **upid;
  t.node = **node;
  t.type = **type;
  t.id = id->value_or("");
  t.user = user->value_or("");
  t.status = status->value_or("");
  t.starttime = **start;
  t.endtime = *end;
  // The shape of a task's own status (GET .../tasks/{upid}/status) says
  // "stopped" and puts the result in exitstatus.
  if (auto exit = string_field(f, "exitstatus");
      exit && exit->has_value() && t.status == "stopped") {
    t.status = **exit;
  }
  // A running task carries status "RUNNING" (with source=active) or none:
  // it has not ended either way.
  if (t.status == "RUNNING" || t.status == "running") {
    t.status.clear();
    t.endtime.reset();
  }
  return t;
}

}  // namespace

Result<TaskList> parse_task_list(std::string_view body) {
  auto data = data_array(body);
  if (!data) {
    return data.error();
  }
  TaskList list;
  for (const auto& e : *data) {
    if (auto t = read_task(e)) {
      list.tasks.push_back(std::move(*t));
    } else {
      ++list.skipped;
    }
  }
  return list;
}

std::optional<std::string> migrated_from(const std::vector<ProxmoxTask>& tasks, std::int64_t vmid,
                                         std::string_view here, std::int64_t since) {
  const ProxmoxTask* newest = nullptr;
  for (const auto& t : tasks) {
    if (t.is_migration() && (t.finished_ok() || !t.endtime) && t.vmid() == vmid && t.node != here &&
        t.starttime >= since && (newest == nullptr || t.starttime > newest->starttime)) {
      newest = &t;
    }
  }
  if (newest == nullptr) {
    return std::nullopt;
  }
  return newest->node;
}

}  // namespace pha
