#include "tests/sim/pve_tasks.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <regex>

#include "agent/core/text.hpp"

namespace pha::sim {

namespace {

using nlohmann::json;

// index becomes index.1 past this size (RESTEnvironment.pm active_workers: "about 1000 entries").
constexpr std::size_t kIndexMaxBytes = 50000;
// Running plus recent finished tasks a node broadcasts (active_workers $MAX_FINISHED).
constexpr std::size_t kBroadcastTasks = 25;
// pve-cluster src/PVE/Cluster.pm broadcast_tasklist drops the oldest past this.
constexpr std::size_t kBroadcastMaxBytes = 32 * 1024;

std::string hex8(long long v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08llX", static_cast<unsigned long long>(v));
  return buf;
}

// "user@realm!token" -> {"user@realm", "token"}; nullopt for a plain user
// (pve-access-control AccessControl.pm pve_verify_tokenid, split_tokenid).
std::optional<std::pair<std::string, std::string>> split_token(const std::string& user) {
  const auto bang = user.find('!');
  const auto at = user.find('@');
  if (bang == std::string::npos || at == std::string::npos || at > bang) {
    return std::nullopt;
  }
  return std::pair{user.substr(0, bang), user.substr(bang + 1)};
}

// The decoded UPID's members (src/PVE/UPID.pm decode) plus upid.
json decoded(const Task& t) {
  return {{"upid", upid_of(t)},       {"node", t.node}, {"pid", t.pid}, {"pstart", t.pstart},
          {"starttime", t.starttime}, {"type", t.type}, {"id", t.id},   {"user", t.user}};
}

// Tasks.pm / Cluster.pm: a token's tasks show user and tokenid apart.
void split_user(json& entry) {
  if (const auto s = split_token(entry["user"].get<std::string>())) {
    entry["user"] = s->first;
    entry["tokenid"] = s->second;
  }
}

// src/PVE/UPID.pm normalize_status_type.
std::string status_type(const std::string& status) {
  static const std::regex kWarnings("^WARNINGS: \\d+$");
  if (status.empty() || status == "unexpected status") {
    return "unknown";
  }
  if (status == "OK") {
    return "ok";
  }
  return std::regex_match(status, kWarnings) ? "warning" : "error";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Tasks.pm $filter_task without start/limit: whether the list shows `entry`.
bool matches(const json& entry, const std::string& status, const NodeTaskQuery& q,
             const TaskReader& who) {
  const auto user = entry["user"].get<std::string>();
  if (!q.userfilter.empty() && lower(user).find(lower(q.userfilter)) == std::string::npos) {
    return false;
  }
  // $check_task_user: a token sees its own tasks, a user its own and its tokens'.
  const bool own =
      entry.contains("tokenid")
          ? who.authid == user + "!" + entry["tokenid"].get<std::string>() || who.authid == user
          : who.authid == user;
  if (!who.audit && !own) {
    return false;
  }
  if (!q.typefilter.empty() && entry["type"] != q.typefilter) {
    return false;
  }
  if (!q.vmid.empty() && entry["id"] != q.vmid) {
    return false;
  }
  const auto starttime = entry["starttime"].get<long long>();
  if ((q.since && starttime < *q.since) || (q.until && starttime > *q.until)) {
    return false;
  }
  const auto type = status_type(status);
  if (q.errors) {
    return type != "ok";
  }
  return !q.statusfilter || q.statusfilter->contains(type);
}

}  // namespace

std::string upid_of(const Task& t) {
  return "UPID:" + t.node + ":" + hex8(t.pid) + ":" + hex8(t.pstart) + ":" + hex8(t.starttime) +
         ":" + t.type + ":" + t.id + ":" + t.user + ":";
}

std::optional<Task> parse_upid(const std::string& upid) {
  static const std::regex kUpid(
      "^UPID:([a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
      "([0-9A-Fa-f]{8}):([^:\\s/]+):([^:\\s/]*):([^:\\s/]+):$");
  std::smatch m;
  if (!std::regex_match(upid, m, kUpid)) {
    return std::nullopt;
  }
  Task t;
  t.node = m[1];
  t.pid = std::stoll(m[3], nullptr, 16);
  t.pstart = std::stoll(m[4], nullptr, 16);
  t.starttime = std::stoll(m[5], nullptr, 16);
  t.type = m[6];
  t.id = m[7];
  t.user = m[8];
  return t;
}

void TaskFiles::add(Task t) {
  auto& f = nodes_[t.node];
  if (t.endtime) {
    archive(f, std::move(t));
  } else {
    f.active.push_back(std::move(t));
  }
}

void TaskFiles::archive(Files& f, Task t) {
  f.index_bytes += upid_of(t).size() + 1 + 8 + 1 + t.status.size() + 1;
  f.index.push_back(std::move(t));
  if (f.index_bytes > kIndexMaxBytes) {
    f.index1 = std::move(f.index);
    f.index.clear();
    f.index_bytes = 0;
  }
}

bool TaskFiles::end(const std::string& upid, long long endtime, const std::string& status) {
  for (auto& [node, f] : nodes_) {
    const auto it = std::find_if(f.active.begin(), f.active.end(),
                                 [&](const Task& t) { return upid_of(t) == upid; });
    if (it != f.active.end()) {
      Task t = std::move(*it);
      f.active.erase(it);
      t.endtime = endtime;
      t.status = status;
      archive(f, std::move(t));
      return true;
    }
  }
  return false;
}

std::vector<Task> TaskFiles::active(const std::string& node) const {
  const auto it = nodes_.find(node);
  return it == nodes_.end() ? std::vector<Task>{} : it->second.active;
}

std::vector<Task> TaskFiles::archive(const std::string& node) const {
  std::vector<Task> out;
  const auto it = nodes_.find(node);
  if (it != nodes_.end()) {
    out.insert(out.end(), it->second.index.rbegin(), it->second.index.rend());
    out.insert(out.end(), it->second.index1.rbegin(), it->second.index1.rend());
  }
  return out;
}

std::vector<Task> TaskFiles::all(const std::string& node) const {
  auto out = active(node);
  const auto finished = archive(node);
  out.insert(out.end(), finished.rbegin(), finished.rend());
  return out;
}

std::vector<Task> TaskFiles::all() const {
  std::vector<Task> out;
  for (const auto& [node, f] : nodes_) {
    const auto tasks = all(node);
    out.insert(out.end(), tasks.begin(), tasks.end());
  }
  return out;
}

json node_task_param_errors(const std::map<std::string, std::string>& params) {
  json errors = json::object();
  const auto integer = [&](const char* key, std::optional<long long> minimum,
                           std::optional<long long> maximum) {
    const auto it = params.find(key);
    if (it == params.end()) {
      return;
    }
    const auto v = parse_int(it->second);
    if (!v) {
      errors[key] = "type check ('integer') failed - got '" + it->second + "'";
    } else if (minimum && *v < *minimum) {
      errors[key] = "value must have a minimum value of " + std::to_string(*minimum);
    } else if (maximum && *v > *maximum) {
      errors[key] = "value must have a maximum value of " + std::to_string(*maximum);
    }
  };
  integer("start", 0, std::nullopt);
  integer("limit", 0, std::nullopt);
  integer("since", std::nullopt, std::nullopt);
  integer("until", std::nullopt, std::nullopt);
  integer("vmid", 100, 999999999);  // pve-vmid
  if (const auto it = params.find("errors"); it != params.end() && !parse_bool(it->second)) {
    errors["errors"] = "type check ('boolean') failed - got '" + it->second + "'";
  }
  if (const auto it = params.find("source"); it != params.end() && it->second != "archive" &&
                                             it->second != "active" && it->second != "all") {
    errors["source"] = "value '" + it->second +
                       "' does not have a value in the enumeration 'archive, active, all'";
  }
  return errors;
}

NodeTaskQuery node_task_query(const std::map<std::string, std::string>& params) {
  NodeTaskQuery q;
  const auto get = [&](const char* key) -> std::optional<std::string> {
    const auto it = params.find(key);
    return it == params.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  q.start = parse_int(get("start").value_or("0")).value_or(0);
  q.limit = parse_int(get("limit").value_or("50")).value_or(50);
  q.userfilter = get("userfilter").value_or("");
  q.typefilter = get("typefilter").value_or("");
  // The vmid as the id field reads it ("0100" means VM 100).
  if (const auto v = get("vmid")) {
    q.vmid = std::to_string(parse_int(*v).value_or(0));
  }
  q.errors = parse_bool(get("errors").value_or("0")).value_or(false);
  q.source = get("source").value_or("archive");
  if (const auto v = get("since")) {
    q.since = parse_int(*v);
  }
  if (const auto v = get("until")) {
    q.until = parse_int(*v);
  }
  // statusfilter counts only without errors (Tasks.pm).
  if (const auto v = get("statusfilter"); v && !q.errors) {
    q.statusfilter.emplace();
    for (const auto& s : split_list(*v)) {
      q.statusfilter->insert(lower(s));
    }
  }
  return q;
}

NodeTaskList node_tasks_data(const std::vector<Task>& active, const std::vector<Task>& archive,
                             const NodeTaskQuery& q, const TaskReader& who) {
  NodeTaskList out;
  long long limit = q.limit;
  const auto take = [&](json entry, const std::string& status) {
    if (!matches(entry, status, q, who) || out.total++ < q.start || limit <= 0) {
      return;
    }
    out.data.push_back(std::move(entry));
    --limit;
  };
  if (q.source == "active" || q.source == "all") {
    // Read from the active file: `saved` "0", the user as in the UPID.
    for (const auto& t : active) {
      // Filtered without a status (unknown), then shown as "RUNNING".
      auto entry = decoded(t);
      entry["saved"] = "0";
      entry["status"] = "RUNNING";
      take(std::move(entry), "");
    }
  }
  if (q.source != "active") {
    for (const auto& t : archive) {
      auto entry = decoded(t);
      entry["endtime"] = *t.endtime;
      if (!t.status.empty()) {
        entry["status"] = t.status;
      }
      split_user(entry);
      take(std::move(entry), t.status);
    }
  }
  return out;
}

json broadcast_list(const std::vector<Task>& tasks, long long as_of) {
  std::vector<const Task*> running;
  std::vector<const Task*> finished;
  for (const auto& t : tasks) {
    if (t.starttime > as_of) {
      continue;
    }
    (t.endtime && *t.endtime <= as_of ? finished : running).push_back(&t);
  }
  std::stable_sort(running.begin(), running.end(),
                   [](const Task* a, const Task* b) { return a->starttime < b->starttime; });
  std::stable_sort(finished.begin(), finished.end(),
                   [](const Task* a, const Task* b) { return a->starttime > b->starttime; });
  json out = json::array();
  for (const auto* t : running) {
    auto entry = decoded(*t);
    entry.erase("pstart");
    entry["saved"] = "0";
    out.push_back(std::move(entry));
  }
  for (const auto* t : finished) {
    if (out.size() >= kBroadcastTasks) {
      break;
    }
    auto entry = decoded(*t);
    entry.erase("pstart");
    entry.erase("pid");
    entry["saved"] = "1";
    entry["endtime"] = *t->endtime;
    entry["status"] = t->status;
    out.push_back(std::move(entry));
  }
  while (!out.empty() && out.dump().size() >= kBroadcastMaxBytes) {
    out.erase(out.size() - 1);
  }
  return out;
}

json cluster_tasks_data(const std::vector<json>& broadcasts, const TaskReader& who) {
  json out = json::array();
  for (const auto& list : broadcasts) {
    for (auto entry : list) {
      split_user(entry);
      if (who.audit || entry["user"] == who.authid) {
        out.push_back(std::move(entry));
      }
    }
  }
  return out;
}

}  // namespace pha::sim
