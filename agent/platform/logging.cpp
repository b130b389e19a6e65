#include "agent/platform/logging.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "agent/core/text.hpp"
#include "agent/platform/journal.hpp"

namespace pha::log {

namespace {

constexpr std::string_view kMask = "***";

std::string_view level_name(Level l) {
  switch (l) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
    case Level::critical:
      return "critical";
  }
  return "info";
}

spdlog::level::level_enum to_spdlog(Level l) {
  switch (l) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warning:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::critical:
      return spdlog::level::critical;
  }
  return spdlog::level::info;
}

Level from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return Level::trace;
    case spdlog::level::debug:
      return Level::debug;
    case spdlog::level::warn:
      return Level::warning;
    case spdlog::level::err:
      return Level::error;
    case spdlog::level::critical:
      return Level::critical;
    default:
      return Level::info;
  }
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  const std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

// Masks the value after each occurrence of `key` up to a delimiter.
void mask_after(std::string& line, std::string_view key) {
  std::size_t pos = 0;
  while ((pos = line.find(key, pos)) != std::string::npos) {
    const auto start = pos + key.size();
    auto end = start;
    while (end < line.size() &&
           std::string_view("&; \t\r\n\"'<>,)}]\\").find(line[end]) == std::string_view::npos) {
      ++end;
    }
    if (end == start || line.compare(start, end - start, kMask) == 0) {
      pos = end;
      continue;
    }
    line.replace(start, end - start, kMask);
    pos = start + kMask.size();
  }
}

struct State {
  std::mutex mutex;
  Format format = Format::text;
  bool journal = false;
  std::vector<std::string> secrets;
  JournalWriter journal_writer;
  std::vector<std::string>* capture = nullptr;
};

thread_local Fields scoped;  // this thread's ScopedFields, innermost last

State& state() {
  static State s;
  return s;
}

class MaskingSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto& st = state();
    std::lock_guard lock(st.mutex);
    const Level level = from_spdlog(msg.level);
    std::string line;
    if (st.journal) {
      line = "<" + std::to_string(syslog_priority(level)) + ">";
    }
    if (st.format == Format::text) {
      if (!st.journal) {
        line += iso_time(msg.time) + " ";
      }
      line += std::string(level_name(level)) + " ";
    }
    line.append(msg.payload.data(), msg.payload.size());
    line = mask_secrets(line, st.secrets);
    if (st.capture != nullptr) {
      st.capture->push_back(line);
      return;
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = std::make_shared<spdlog::logger>("agent", std::make_shared<MaskingSink>());
    lg->set_level(spdlog::level::info);
    lg->flush_on(spdlog::level::trace);
    return lg;
  }();
  return l;
}

std::string text_value(const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (!s.empty() && s.find_first_of(" \t\"=") == std::string::npos) {
      return s;
    }
  }
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The line, without the time and level the sink adds to text.
std::string render(Format format, Level level, std::string_view event, std::string_view message,
                   const Fields& fields) {
  if (format == Format::json) {
    nlohmann::json j = {{"time", iso_time(std::chrono::system_clock::now())},
                        {"level", level_name(level)},
                        {"event", event},
                        {"message", message}};
    for (const auto& f : fields) {
      j[f.key] = f.value;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  auto payload = std::string(event) + ": " + std::string(message);
  for (const auto& f : fields) {
    payload += " " + f.key + "=" + text_value(f.value);
  }
  return payload;
}

// Under the journal: the event as an entry. False when not under the
// journal, or when the entry could not be sent (the line goes to stderr).
bool sent_to_journal(Level level, std::string_view event, std::string_view line,
                     const Fields& fields) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  if (!st.journal) {
    return false;
  }
  const auto entry = journal_entry(level, event, line, fields, st.secrets);
  return (st.journal_writer ? st.journal_writer(entry) : send_to_journal(entry)) >= 0;
}

}  // namespace

std::string mask_secrets(std::string_view in, const std::vector<std::string>& secrets) {
  std::string line(in);
  mask_after(line, "api_key=");
  mask_after(line, "PVEAuthCookie=");
  mask_after(line, "PVEAPIToken=");
  for (const auto& secret : secrets) {
    if (secret.size() < 4) {
      continue;  // too short to find without masking ordinary words
    }
    std::size_t pos = 0;
    while ((pos = line.find(secret, pos)) != std::string::npos) {
      line.replace(pos, secret.size(), kMask);
      pos += kMask.size();
    }
  }
  return line;
}

void init(const Options& options) {
  {
    auto& st = state();
    std::lock_guard lock(st.mutex);
    st.format = options.format;
    st.journal = options.journal;
    st.secrets = options.secrets;
    st.journal_writer = options.journal_writer;
  }
  set_level(options.level);
}

void set_level(Level level) {
  logger()->set_level(to_spdlog(level));
}

void set_format(Format format) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.format = format;
}

void set_secrets(std::vector<std::string> secrets) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.secrets = std::move(secrets);
}

Level parse_level(std::string_view name) {
  for (auto l :
       {Level::trace, Level::debug, Level::info, Level::warning, Level::error, Level::critical}) {
    if (iequals(level_name(l), name)) {
      return l;
    }
  }
  return Level::info;
}

void capture_for_test(std::vector<std::string>* lines) {
  auto& st = state();
  std::lock_guard lock(st.mutex);
  st.capture = lines;
}

ScopedFields::ScopedFields(const Fields& fields) : outer_size_(scoped.size()) {
  scoped.insert(scoped.end(), fields.begin(), fields.end());
}

ScopedFields::~ScopedFields() {
  scoped.resize(outer_size_);
}

Fields scoped_fields() {
  return scoped;
}

void write(Level level, std::string_view event, std::string_view message, const Fields& fields) {
  auto& lg = logger();
  const auto lvl = to_spdlog(level);
  if (!lg->should_log(lvl)) {
    return;
  }
  Fields all = fields;
  all.insert(all.end(), scoped.begin(), scoped.end());
  Format format = Format::text;
  {
    auto& st = state();
    std::lock_guard lock(st.mutex);
    format = st.format;
  }
  const auto payload = render(format, level, event, message, all);
  if (!sent_to_journal(level, event, payload, all)) {
    lg->log(lvl, spdlog::string_view_t(payload.data(), payload.size()));
  }
}

}  // namespace pha::log
