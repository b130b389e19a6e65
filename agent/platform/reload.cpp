#include "agent/platform/reload.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/core/text.hpp"
#include "agent/platform/files.hpp"
#include "agent/platform/logging.hpp"

namespace pha {

namespace {

using Outcome = ReloadRequest::Outcome;
// How often --reload looks for the verdict: a reload takes milliseconds.
constexpr auto kPollInterval = std::chrono::milliseconds(20);

std::optional<ReloadVerdict> read_verdict(const std::string& path) {
  const auto text = read_text_file(path, 1 << 16);
  return text ? parse_verdict(*text) : std::nullopt;
}

}  // namespace

std::string verdict_json(const ReloadVerdict& v) {
  return nlohmann::json{{"generation", v.generation},
                        {"applied", v.applied},
                        {"errors", v.errors},
                        {"restart_needed", v.restart_needed}}
      .dump();
}

std::optional<ReloadVerdict> parse_verdict(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("generation") || !j["generation"].is_number_unsigned() ||
      !j.contains("applied") || !j["applied"].is_boolean() || !j.contains("errors") ||
      !j["errors"].is_array()) {
    return std::nullopt;
  }
  ReloadVerdict v;
  v.generation = j["generation"].get<std::uint64_t>();
  v.applied = j["applied"].get<bool>();
  for (const auto& e : j["errors"]) {
    if (!e.is_string()) {
      return std::nullopt;
    }
    v.errors.push_back(e.get<std::string>());
  }
  if (j.contains("restart_needed")) {
    if (!j["restart_needed"].is_array()) {
      return std::nullopt;
    }
    for (const auto& name : j["restart_needed"]) {
      if (!name.is_string()) {
        return std::nullopt;
      }
      v.restart_needed.push_back(name.get<std::string>());
    }
  }
  return v;
}

std::optional<std::string> reload_verdict_path(const char* runtime_directory) {
  if (runtime_directory == nullptr) {
    return std::nullopt;
  }
  const std::string_view all(runtime_directory);
  const auto first = all.substr(0, all.find(':'));
  if (first.empty()) {
    return std::nullopt;
  }
  return std::string(first) + "/reload.json";
}

ReloadRecorder::ReloadRecorder(std::optional<std::string> path) : path_(std::move(path)) {}

void ReloadRecorder::started() {
  write({generation_, true, {}, {}});
}

void ReloadRecorder::reloaded(bool applied, std::vector<std::string> errors,
                              std::vector<std::string> restart_needed) {
  write({++generation_, applied, std::move(errors), std::move(restart_needed)});
}

void ReloadRecorder::write(const ReloadVerdict& v) {
  if (!path_) {
    return;
  }
  if (const auto w = write_file_atomic(*path_, verdict_json(v)); !w) {
    log::warn("reload_verdict_unwritten",
              "cannot record the reload's outcome; systemctl reload will time out",
              {{"path", *path_}, {"error", w.error().message}});
  }
}

ReloadRequest request_reload(pid_t pid, const std::optional<std::string>& path,
                             std::chrono::milliseconds timeout) {
  if (!path) {
    return {Outcome::failed,
            "--reload needs RUNTIME_DIRECTORY (RuntimeDirectory= of the unit), where the agent "
            "records each reload's outcome"};
  }
  const auto before = read_verdict(*path);
  if (!before) {
    return {Outcome::failed, "no reload record at " + *path + ": is process " +
                                 std::to_string(pid) + " an agent that has started?"};
  }
  if (::kill(pid, SIGHUP) != 0) {
    return {Outcome::failed,
            "cannot signal process " + std::to_string(pid) + ": " + std::strerror(errno)};
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto now = read_verdict(*path);
    if (now && now->generation > before->generation) {
      if (now->applied && now->restart_needed.empty()) {
        return {Outcome::applied, ""};
      }
      if (now->applied) {
        return {Outcome::partial,
                "the agent applied the new configuration except " + join_list(now->restart_needed) +
                    ": only a start applies " + (now->restart_needed.size() == 1 ? "it" : "them") +
                    ", and until then the running value stays in force (systemctl restart "
                    "proxmox-host-agent)"};
      }
      std::string message = "the agent refused the new configuration and keeps the old one:";
      for (const auto& e : now->errors) {
        message += "\n  " + e;
      }
      return {Outcome::refused, message};
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return {Outcome::failed, "process " + std::to_string(pid) + " did not answer the reload within " +
                               std::to_string(timeout.count() / 1000) + " s"};
}

}  // namespace pha
