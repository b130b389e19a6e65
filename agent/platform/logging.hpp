#pragma once
// Logs are for operators: one line per event, a stable event name, fields,
// never a secret. Text ("time level event: message key=value") or JSON (one
// object per line with time, level, event, message and the fields), through
// spdlog, to stderr; under systemd, when stderr is the journal stream, one
// journal entry per event with the fields as journal fields (journal.hpp).
// A filter in the sink masks secrets as a second line of defence, in the line
// and in every journal field: the value of any api_key= in a URL,
// PVEAuthCookie= values, and the configured secret values themselves.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace spdlog {
class logger;
}

namespace pha::log {

enum class Level { trace, debug, info, warning, error, critical };
enum class Format { text, json };

struct Field {
  std::string key;
  nlohmann::json value;
};
using Fields = std::vector<Field>;

// One journal entry: "NAME=value" strings (MESSAGE=..., PRIORITY=6, ...).
using JournalFields = std::vector<std::string>;
// Sends an entry; 0, or a negative errno (the line then goes to stderr).
using JournalWriter = std::function<int(const JournalFields&)>;

struct Options {
  Level level = Level::info;
  Format format = Format::text;
  // stderr is the journal stream (stderr_is_journal()): each event is sent
  // as a journal entry through `journal_writer`. Should that fail, the line
  // goes to stderr with a syslog priority prefix ("<6>") and no timestamp,
  // which the journal adds.
  bool journal = false;
  std::vector<std::string> secrets;
  JournalWriter journal_writer;  // empty: sd_journal_sendv
};

// Adds `fields` to every event this thread writes while it lives (the sync
// loop's cycle number, say). Scopes nest; the innermost field comes last.
class ScopedFields {
 public:
  explicit ScopedFields(const Fields& fields);
  ~ScopedFields();
  ScopedFields(const ScopedFields&) = delete;
  ScopedFields& operator=(const ScopedFields&) = delete;

 private:
  std::size_t outer_size_;
};
// This thread's scoped fields, to carry them to a worker thread.
Fields scoped_fields();

// Replaces secrets in a rendered log line with "***".
std::string mask_secrets(std::string_view line, const std::vector<std::string>& secrets);

// Sets up the process-wide logger writing to stderr (or to `sink_target` in tests).
void init(const Options& options);
void set_level(Level level);
// From the next line on (a reload of LOG_FORMAT).
void set_format(Format format);
void set_secrets(std::vector<std::string> secrets);
Level parse_level(std::string_view name);  // trace..critical; unknown -> info

// Redirects every line to `lines` (for tests); pass nullptr to return to stderr.
void capture_for_test(std::vector<std::string>* lines);

void write(Level level, std::string_view event, std::string_view message,
           const Fields& fields = {});

inline void trace(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::trace, e, m, f);
}
inline void debug(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::debug, e, m, f);
}
inline void info(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::info, e, m, f);
}
inline void warn(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::warning, e, m, f);
}
inline void error(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::error, e, m, f);
}
inline void critical(std::string_view e, std::string_view m, const Fields& f = {}) {
  write(Level::critical, e, m, f);
}

}  // namespace pha::log
