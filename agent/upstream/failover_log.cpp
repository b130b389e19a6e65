#include "agent/upstream/failover_log.hpp"

#include <algorithm>
#include <ctime>

#include "agent/platform/files.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

// Every value of an enum with a to_string, to read it back by name.
template <class E>
struct Names;
template <>
struct Names<FailoverKind> {
  static constexpr FailoverKind all[] = {FailoverKind::automatic, FailoverKind::manual,
                                         FailoverKind::recovery};
};
template <>
struct Names<FailoverTarget> {
  static constexpr FailoverTarget all[] = {FailoverTarget::proxmox, FailoverTarget::accountdb};
};
template <>
struct Names<FailoverStatus> {
  static constexpr FailoverStatus all[] = {FailoverStatus::completed, FailoverStatus::failed};
};

// The fields of an event, read in order; the first problem is kept.
class FieldReader {
 public:
  explicit FieldReader(const nlohmann::json& j) : j_(j) {}

  void integer(const char* key, std::int64_t& out) {
    if (const auto* v = field(key, "an integer", &nlohmann::json::is_number_integer)) {
      out = v->get<std::int64_t>();
    }
  }
  void text(const char* key, std::string& out) {
    if (const auto* v = field(key, "a string", &nlohmann::json::is_string)) {
      out = v->get<std::string>();
    }
  }
  template <class E>
  void name(const char* key, E& out) {
    std::string text_value;
    text(key, text_value);
    if (!error_.empty()) {
      return;
    }
    const auto& all = Names<E>::all;
    const auto* found = std::find_if(std::begin(all), std::end(all),
                                     [&](E e) { return to_string(e) == text_value; });
    if (found != std::end(all)) {
      out = *found;
      return;
    }
    error_ = std::string("field ") + key + " is not ";
    const auto count = std::size(all);
    for (std::size_t i = 0; i < count; ++i) {
      error_ += (i == 0 ? "" : i + 1 == count ? " or " : ", ") + std::string(to_string(all[i]));
    }
  }
  const std::string& error() const { return error_; }

 private:
  const nlohmann::json* field(const char* key, const char* type,
                              bool (nlohmann::json::*is)() const noexcept) {
    if (!error_.empty()) {
      return nullptr;
    }
    if (!j_.contains(key)) {
      error_ = std::string("missing field ") + key;
      return nullptr;
    }
    if (!(j_[key].*is)()) {
      error_ = std::string("field ") + key + " is not " + type;
      return nullptr;
    }
    return &j_[key];
  }

  const nlohmann::json& j_;
  std::string error_;
};

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

std::string_view to_string(FailoverTarget t) {
  return t == FailoverTarget::proxmox ? "proxmox" : "accountdb";
}

std::string_view to_string(FailoverStatus s) {
  return s == FailoverStatus::completed ? "completed" : "failed";
}

std::string_view to_string(FailoverKind k) {
  switch (k) {
    case FailoverKind::automatic:
      return "automatic";
    case FailoverKind::manual:
      return "manual";
    case FailoverKind::recovery:
      break;
  }
  return "recovery";
}

nlohmann::json to_json(const FailoverEvent& e) {
  return {{"id", e.id},
          {"timestamp", e.timestamp},
          {"target", to_string(e.target)},
          {"from", e.from},
          {"to", e.to},
          {"reason", e.reason},
          {"kind", to_string(e.kind)},
          {"status", to_string(e.status)}};
}

Result<FailoverEvent> event_from_json(const nlohmann::json& j) {
  if (!j.is_object()) {
    return Error{ErrorKind::invalid, "not an object"};
  }
  FailoverEvent e;
  FieldReader read(j);
  read.integer("id", e.id);
  read.integer("timestamp", e.timestamp);
  read.name("target", e.target);
  read.text("from", e.from);
  read.text("to", e.to);
  read.text("reason", e.reason);
  read.name("kind", e.kind);
  read.name("status", e.status);
  if (!read.error().empty()) {
    return Error{ErrorKind::invalid, read.error()};
  }
  return e;
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
    if (auto e = event_from_json(doc["events"][i])) {
      loaded.push_back(std::move(*e));
    } else {
      notes.push_back(path_ + ": event " + std::to_string(i) + " skipped: " + e.error().message);
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
  ++counts_[std::string(to_string(e.target)) + "/" + std::string(to_string(e.kind)) + "/" +
            std::string(to_string(e.status))];
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
