#pragma once
// Failover events (docs/failover.md "Failover events", docs/http-api.md
// "Failover control"): every change of the Proxmox host or the AccountDB
// endpoint in use, a ring of the last 100, written to the state directory
// atomically after each new event and reloaded at start. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/core/result.hpp"

namespace pha {

// Why the target in use changed: a failure moved it (automatic), the
// preferred target came back (recovery), or an operator moved it (manual).
enum class FailoverKind { automatic, manual, recovery };
std::string_view to_string(FailoverKind k);
// Which upstream's target in use changed.
enum class FailoverTarget { proxmox, accountdb };
std::string_view to_string(FailoverTarget t);
// Whether the change took place (every change the agent makes so far does).
enum class FailoverStatus { completed, failed };
std::string_view to_string(FailoverStatus s);

struct FailoverEvent {
  std::int64_t id = 0;         // 1, 2, ...: increasing across restarts
  std::int64_t timestamp = 0;  // unix seconds
  FailoverTarget target = FailoverTarget::proxmox;
  std::string from;    // URL, "" when none
  std::string to;      // URL
  std::string reason;  // the failure kind and message that caused it, or the operator's action
  FailoverKind kind = FailoverKind::automatic;
  FailoverStatus status = FailoverStatus::completed;
};

nlohmann::json to_json(const FailoverEvent& e);
// The reverse; an error (ErrorKind::invalid) names the first field that is
// missing or of the wrong type.
Result<FailoverEvent> event_from_json(const nlohmann::json& j);

class FailoverLog {
 public:
  // `path`: the state file (STATE_DIR/failover-events.json); empty = no persistence.
  explicit FailoverLog(std::string path, std::size_t capacity = 100);

  // Reads the state file, if any. A missing file is no error; an unreadable
  // or malformed one is skipped with a note (returned, for the log) and the
  // ring starts empty; a malformed entry is skipped with a note. Ids go on
  // from the largest one loaded.
  std::vector<std::string> load();
  // Sets id (the next one), timestamp when 0, appends (dropping the oldest
  // beyond the capacity) and writes the file (temp file, fsync, rename).
  // A write failure is logged once per run of failures (warn, event
  // state_write_failed) and the event is kept in memory. Returns the stored event.
  FailoverEvent record(FailoverEvent e);
  std::vector<FailoverEvent> events() const;  // newest first
  // Events recorded since start, by "target/kind/status" (for /metrics).
  std::map<std::string, std::uint64_t> counts() const;

  // The state file's content: {"version":1,"events":[oldest first...]}.
  nlohmann::json file_json() const;

 private:
  void persist_locked();

  std::string path_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::vector<FailoverEvent> ring_;  // oldest first
  std::int64_t next_id_ = 1;
  std::map<std::string, std::uint64_t> counts_;
  bool write_failing_ = false;
};

}  // namespace pha
