// proxmox-host-agent: parse the settings, set up logging, run the Agent, and
// map the outcome to an exit code (docs/settings.md "Exit codes").

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "agent/app/agent.hpp"
#include "agent/app/confirm.hpp"
#include "agent/app/explain.hpp"
#include "agent/app/list_guests.hpp"
#include "agent/app/startup.hpp"
#include "agent/config/docs.hpp"
#include "agent/core/text.hpp"
#include "agent/core/version.hpp"
#include "agent/platform/files.hpp"
#include "agent/platform/journal.hpp"
#include "agent/platform/logging.hpp"
#include "agent/platform/memory.hpp"
#include "agent/platform/reload.hpp"
#include "agent/platform/signals.hpp"

extern char** environ;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitConfig = 78;  // EX_CONFIG
// --reload: applied, except start-only settings that wait for a restart.
constexpr int kExitRestartNeeded = 3;
// docs/settings.md "Signals": an in-flight AccountDB request may finish, within 10 s.
constexpr auto kStopGrace = std::chrono::seconds(10);
// A reload reads a few small files; past this the agent is stuck (the unit's
// TimeoutStartSec= bounds ExecReload= as well, at 90 s by default).
constexpr auto kReloadTimeout = std::chrono::seconds(30);

pha::StringMap process_environment() {
  pha::StringMap env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos) {
      env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
    }
  }
  return env;
}

void setup_logging(const pha::Settings& s) {
  pha::log::Options options;
  options.level = pha::log::parse_level(s.log_level);
  options.format =
      s.log_format == pha::LogFormat::json ? pha::log::Format::json : pha::log::Format::text;
  options.journal = pha::log::stderr_is_journal();
  options.secrets = s.secrets();
  pha::log::init(options);
}

// --check-required, the unit's ExecCondition=: 0 lets the start go ahead (and
// meet any other error, exit 78), 1 skips it while the node is not configured.
// Never 255, which systemd takes for a failure.
int check_required(const pha::LoadOutcome& outcome, const pha::CommandLine& cl) {
  const auto message = pha::missing_required_message(outcome, pha::env_file_in_use(cl));
  if (!message) {
    return 0;
  }
  std::fprintf(stderr, "%s: %s\n", pha::kProgramName, message->c_str());
  return kExitFailure;
}

// --reload PID, the unit's ExecReload=: the agent's own verdict on SIGHUP.
int reload_running_agent(int pid) {
  const auto r = pha::request_reload(
      pid, pha::reload_verdict_path(std::getenv("RUNTIME_DIRECTORY")), kReloadTimeout);
  if (!r.message.empty()) {
    std::fprintf(stderr, "%s: %s\n", pha::kProgramName, r.message.c_str());
  }
  switch (r.outcome) {
    case pha::ReloadRequest::Outcome::applied:
      return 0;
    case pha::ReloadRequest::Outcome::partial:
      return kExitRestartNeeded;
    case pha::ReloadRequest::Outcome::refused:
      return kExitConfig;  // as a start with the same settings would
    case pha::ReloadRequest::Outcome::failed:
      break;
  }
  return kExitFailure;
}

// --check-config's second line: what it read, so that an operator sees a
// drop-in that is missing or one that should not be there.
void print_files_read(const pha::LoadedConfig& config) {
  std::printf("read: %s\n",
              config.env_files.empty() ? "no env file" : pha::join_list(config.env_files).c_str());
}

// The stop ran out of time: threads still use the stack of Agent::run(), so
// the only safe way out is to end the process without unwinding it. A
// daemon's stop is still a normal stop (0); a --once cycle did not finish (1).
[[noreturn]] void exit_past_deadline(bool once) {
  const int code = once ? kExitFailure : 0;
  pha::log::warn("stop_deadline",
                 "the stop took longer than " + std::to_string(kStopGrace.count()) +
                     " s (a request is still in flight); exiting without waiting for it",
                 {{"grace_s", kStopGrace.count()}, {"exit_code", code}});
  std::_Exit(code);
}

// SIGHUP: the settings are loaded again; a bad set is refused and the old one stays.
void reload_settings(pha::Agent& agent, const pha::CommandLine& cl, pha::SystemAccess& access,
                     pha::ReloadRecorder& verdicts) {
  auto reloaded = pha::load_configuration(cl, process_environment(), access);
  if (auto* errors = std::get_if<pha::ConfigErrors>(&reloaded)) {
    for (const auto& e : errors->errors) {
      pha::log::error("config_reload_rejected",
                      "the new configuration is invalid; keeping the old one", {{"error", e}});
    }
    verdicts.reloaded(false, errors->errors);
    return;
  }
  auto& fresh = std::get<pha::LoadedConfig>(reloaded);
  for (const auto& w : fresh.warnings) {
    pha::log::warn("config_warning", w);
  }
  const auto files = pha::join_list(fresh.env_files);
  auto applied = agent.reload(std::move(fresh));
  if (!applied) {
    verdicts.reloaded(false, {applied.error().message});  // the agent logged why
    return;
  }
  pha::log::info("config_reloaded", "configuration reloaded (SIGHUP)",
                 {{"env_files", files}, {"restart_needed", pha::join_list(*applied)}});
  verdicts.reloaded(true, {}, std::move(*applied));
}

// The daemon (or --once): runs until a stop signal, reloading on SIGHUP.
int run_agent(const pha::CommandLine& cl, pha::LoadedConfig config, pha::SystemAccess& access) {
  pha::SystemClock clock;
  pha::StopDeadline deadline(clock, kStopGrace, [once = cl.once] { exit_past_deadline(once); });
  pha::Agent agent(std::move(config), clock, {cl.once, cl.dry_run});
  pha::ReloadRecorder verdicts(pha::reload_verdict_path(std::getenv("RUNTIME_DIRECTORY")));
  verdicts.started();  // before READY=1: a reload can only come after it
  pha::SignalWatcher watcher(
      [&agent, &deadline](int sig) {
        pha::log::info("signal", "stop requested",
                       {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
        agent.stop();
        deadline.arm();
      },
      [&agent, &cl, &access, &verdicts] { reload_settings(agent, cl, access, verdicts); });
  return agent.run();
}

int run(int argc, char** argv) {
  pha::limit_malloc_arenas();  // before any thread starts (platform/memory.hpp)
  pha::block_signals();
  auto parsed = pha::parse_command_line(argc, argv);
  if (auto* exit = std::get_if<pha::CliExit>(&parsed)) {
    std::fputs(exit->out.c_str(), stdout);
    std::fputs(exit->err.c_str(), stderr);
    return exit->code;
  }
  const auto& cl = std::get<pha::CommandLine>(parsed);
  if (cl.mode == pha::Mode::reload) {
    return reload_running_agent(cl.reload_pid);
  }
  pha::RealSystemAccess access;
  auto outcome = pha::load_configuration(cl, process_environment(), access);
  if (cl.mode == pha::Mode::check_required) {
    return check_required(outcome, cl);
  }
  if (auto* errors = std::get_if<pha::ConfigErrors>(&outcome)) {
    pha::print_config_errors(*errors);
    return kExitConfig;
  }
  auto& config = std::get<pha::LoadedConfig>(outcome);
  setup_logging(config.settings);
  for (const auto& w : config.warnings) {
    pha::log::warn("config_warning", w);
  }
  if (cl.mode == pha::Mode::print_config) {
    std::puts(pha::print_config_json(config).dump(2).c_str());
    return 0;
  }
  if (cl.mode == pha::Mode::check_config) {
    std::puts("config OK");
    print_files_read(config);
    return 0;
  }
  if (cl.mode == pha::Mode::list_guests) {
    return pha::run_list_guests(config.settings);
  }
  if (cl.mode == pha::Mode::explain) {
    return pha::run_explain(config.settings, cl.explain_vmid);
  }
  if (cl.mode == pha::Mode::confirm) {
    return pha::run_confirm(config.settings, cl.confirm_hold, cl.env_file);
  }

  return run_agent(cl, std::move(config), access);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    pha::log::critical("fatal", "unexpected failure", {{"error", e.what()}});
    return kExitFailure;
  }
}
