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
  auto upid = string_field(e, "upid");
  auto node = string_field(e, "node");
  auto type = string_field(e, "type");
  auto id = string_field(e, "id");
  auto user = string_field(e, "user");
  auto status = string_field(e, "status");
  auto start = int_field(e, "starttime");
  auto end = int_field(e, "endtime");
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
  // A running task carries status "RUNNING" (/nodes/{node}/tasks with
  // source=active) or none (/cluster/tasks): it has not ended either way.
  if (t.status == "RUNNING") {
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
                                         std::string_view here) {
  const ProxmoxTask* newest = nullptr;
  for (const auto& t : tasks) {
    if (t.is_migration() && (t.finished_ok() || !t.endtime) && t.vmid() == vmid && t.node != here &&
        (newest == nullptr || t.starttime > newest->starttime)) {
      newest = &t;
    }
  }
  if (newest == nullptr) {
    return std::nullopt;
  }
  return newest->node;
}

}  // namespace pha
