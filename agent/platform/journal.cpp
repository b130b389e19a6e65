#include "agent/platform/journal.hpp"

#include <array>
#include <charconv>
#include <cstdlib>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "agent/core/version.hpp"

namespace pha::log {

namespace {

constexpr std::size_t kMaxFieldName = 64;  // the journal's limit

// Fields the entry sets itself, or the journal gives a meaning of its own.
constexpr std::array<std::string_view, 12> kReserved = {
    "MESSAGE",   "MESSAGE_ID", "PRIORITY", "EVENT", "CODE_FILE", "CODE_LINE",
    "CODE_FUNC", "ERRNO",      "TID",      "UNIT",  "USER_UNIT", "INVOCATION_ID"};

bool reserved(std::string_view name) {
  for (const auto r : kReserved) {
    if (name == r) {
      return true;
    }
  }
  return name.starts_with("SYSLOG_");
}

std::string value_text(const nlohmann::json& v) {
  if (v.is_string()) {
    return v.get<std::string>();
  }
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, out);
  return !s.empty() && r.ec == std::errc() && r.ptr == end;
}

}  // namespace

bool journal_stream_matches(std::string_view journal_stream, std::uint64_t dev, std::uint64_t ino) {
  const auto colon = journal_stream.find(':');
  std::uint64_t want_dev = 0;
  std::uint64_t want_ino = 0;
  return colon != std::string_view::npos &&
         parse_number(journal_stream.substr(0, colon), want_dev) &&
         parse_number(journal_stream.substr(colon + 1), want_ino) && want_dev == dev &&
         want_ino == ino;
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (stream == nullptr || fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  return journal_stream_matches(stream, st.st_dev, st.st_ino);
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::trace:
    case Level::debug:
      return 7;
    case Level::info:
      return 6;
    case Level::warning:
      return 4;
    case Level::error:
      return 3;
    case Level::critical:
      return 2;
  }
  return 6;
}

std::string journal_field_name(std::string_view key) {
  if (key == "kind") {
    return "ERROR_KIND";
  }
  if (key == "host") {
    return "TARGET";
  }
  std::string name;
  for (const char c : key) {
    if (c >= 'a' && c <= 'z') {
      name += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      name += c;
    } else {
      name += '_';
    }
  }
  if (name.empty() || name.front() == '_' || (name.front() >= '0' && name.front() <= '9')) {
    name.insert(0, "F");
  }
  if (reserved(name)) {
    name.insert(0, "FIELD_");
  }
  return name.substr(0, kMaxFieldName);
}

JournalFields journal_entry(Level level, std::string_view event, std::string_view line,
                            const Fields& fields, const std::vector<std::string>& secrets) {
  JournalFields entry;
  entry.reserve(fields.size() + 4);
  entry.push_back("MESSAGE=" + mask_secrets(line, secrets));
  entry.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
  entry.push_back(std::string("SYSLOG_IDENTIFIER=") + kProgramName);
  entry.push_back("EVENT=" + mask_secrets(event, secrets));
  for (const auto& f : fields) {
    entry.push_back(journal_field_name(f.key) + "=" + mask_secrets(value_text(f.value), secrets));
  }
  return entry;
}

int send_to_journal(const JournalFields& fields) {
  std::vector<iovec> iov;
  iov.reserve(fields.size());
  for (const auto& f : fields) {
    // sd_journal_sendv only reads the buffers.
    iov.push_back({const_cast<char*>(f.data()), f.size()});
  }
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace pha::log
