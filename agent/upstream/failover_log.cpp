#include "agent/upstream/failover_log.hpp"

#include <algorithm>
#include <ctime>

#include "agent/platform/files.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

bool read_integer(const nlohmann::json& j, const char* key, std::int64_t& out, std::string& error) {
  if (!j.contains(key)) {
    error = std::string("missing field ") + key;
    return false;
  }
  if (!j[key].is_number_integer()) {
    error = std::string("field ") + key + " is not an integer";
    return false;
  }
  out = j[key].get<std::int64_t>();
  return true;
}

bool read_string(const nlohmann::json& j, const char* key, std::string& out, std::string& error) {
  if (!j.contains(key)) {
    error = std::string("missing field ") + key;
    return false;
  }
  if (!j[key].is_string()) {
    error = std::string("field ") + key + " is not a string";
    return false;
  }
  out = j[key].get<std::string>();
  return true;
}

void keep_newest(std::vector<FailoverEvent>& ring, std::size_t capacity) {
  if (ring.size() > capacity) {
    ring.erase(ring.begin(), ring.end() - static_cast<std::ptrdiff_t>(capacity));
  }
}

nlohmann::json file_json_of(const std::vector<FailoverEvent>& ring) {
  auto events = nlohmann::json::array();
  for (const auto& e : ring) {
    events.push_back(to_json(e));
  }
  return {{"version", 1}, {"events", std::move(events)}};
}

}  // namespace

nlohmann::json to_json(const FailoverEvent& e) {
  return {{"id", e.id}, {"timestamp", e.timestamp}, {"target", e.target}, {"from", e.from},
          {"to", e.to}, {"reason", e.reason},       {"kind", e.kind},     {"status", e.status}};
}

bool from_json(const nlohmann::json& j, FailoverEvent& out, std::string& error) {
  if (!j.is_object()) {
    error = "not an object";
    return false;
  }
  FailoverEvent e;
  // Filled into a copy so that `out` is untouched on error.
  if (!read_integer(j, "id", e.id, error) || !read_integer(j, "timestamp", e.timestamp, error) ||
      !read_string(j, "target", e.target, error) || !read_string(j, "from", e.from, error) ||
      !read_string(j, "to", e.to, error) || !read_string(j, "reason", e.reason, error) ||
      !read_string(j, "kind", e.kind, error) || !read_string(j, "status", e.status, error)) {
    return false;
  }
  out = std::move(e);
  return true;
}

FailoverLog::FailoverLog(std::string path, std::size_t capacity)
    : path_(std::move(path)), capacity_(capacity) {}

std::vector<std::string> FailoverLog::load() {
  if (path_.empty()) {
    return {};
  }
  auto text = read_text_file(path_);
  if (!text) {
    if (text.error().kind == ErrorKind::not_found) {
      return {};
    }
    return {"cannot read " + path_ + ": " + text.error().message};
  }
  const auto doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("version") || doc["version"] != 1 ||
      !doc.contains("events") || !doc["events"].is_array()) {
    return {path_ + " is not a failover events file; ignored"};
  }
  std::vector<std::string> notes;
  std::vector<FailoverEvent> loaded;
  for (std::size_t i = 0; i < doc["events"].size(); ++i) {
    FailoverEvent e;
    std::string error;
    if (from_json(doc["events"][i], e, error)) {
      loaded.push_back(std::move(e));
    } else {
      notes.push_back(path_ + ": event " + std::to_string(i) + " skipped: " + error);
    }
  }
  std::lock_guard lock(mutex_);
  ring_ = std::move(loaded);
  keep_newest(ring_, capacity_);
  for (const auto& e : ring_) {
    next_id_ = std::max(next_id_, e.id + 1);
  }
  return notes;
}

FailoverEvent FailoverLog::record(FailoverEvent e) {
  std::lock_guard lock(mutex_);
  e.id = next_id_++;
  if (e.timestamp == 0) {
    e.timestamp = static_cast<std::int64_t>(std::time(nullptr));
  }
  ring_.push_back(e);
  keep_newest(ring_, capacity_);
  ++counts_[e.target + "/" + e.kind + "/" + e.status];
  persist_locked();
  return e;
}

std::vector<FailoverEvent> FailoverLog::events() const {
  std::lock_guard lock(mutex_);
  return {ring_.rbegin(), ring_.rend()};
}

std::map<std::string, std::uint64_t> FailoverLog::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

nlohmann::json FailoverLog::file_json() const {
  std::lock_guard lock(mutex_);
  return file_json_of(ring_);
}

void FailoverLog::persist_locked() {
  if (path_.empty()) {
    return;
  }
  auto written = write_file_atomic(path_, file_json_of(ring_).dump() + "\n");
  if (written) {
    write_failing_ = false;
    return;
  }
  // Once per run of failures: a full disk must not turn every failover into a log line.
  if (!write_failing_) {
    log::warn("state_write_failed", "cannot persist the failover events",
              {{"error", written.error().message}});
  }
  write_failing_ = true;
}

}  // namespace pha
