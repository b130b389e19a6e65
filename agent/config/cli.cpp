#include "agent/config/cli.hpp"

#include <CLI/CLI.hpp>

#include "agent/core/version.hpp"

namespace pha {

namespace {

std::string describe(const SettingSpec& spec) {
  std::string d = std::string(spec.help) + " [env " + std::string(spec.env) + "; ";
  if (!spec.default_doc.empty()) {
    d += "default " + std::string(spec.default_doc);
  } else if (spec.required) {
    d += "required";
  } else {
    d += "default " +
         (spec.default_value.empty() ? std::string("empty") : std::string(spec.default_value));
  }
  return d + "; " + describe_allowed(spec) + "]";
}

// The options that choose what the program does (one mode at most).
struct ModeFlags {
  std::string env_file;
  CLI::Option* env_file_opt = nullptr;
  CLI::Option *check = nullptr, *required = nullptr, *print = nullptr, *list = nullptr,
              *reload = nullptr, *once = nullptr, *dry_run = nullptr, *explain = nullptr,
              *confirm = nullptr;
};

void add_modes(CLI::App& app, CommandLine& cl, ModeFlags& m) {
  m.env_file_opt =
      app.add_option("--env-file", m.env_file,
                     "Read settings from this file instead of ./.env, then from PATH.d/*.env")
          ->type_name("PATH");
  m.check = app.add_flag("--check-config")
                ->description(
                    "Load and validate the settings, print 'config OK' and the files read, or the "
                    "errors; exit");
  m.required =
      app.add_flag("--check-required")
          ->description(
              "Exit 0 when the required settings are set (the start reports anything else "
              "wrong), else name the missing ones on stderr and exit 1; for ExecCondition=");
  m.print = app.add_flag("--print-config")
                ->description("Print the effective settings as JSON (secrets masked) and exit");
  m.list =
      app.add_flag("--list-guests")
          ->description(
              "Read this node's guests from Proxmox once, print them as JSON (AccountDB field "
              "names) with "
              "the request count, exit 0 (or 1 with the failure); needs only the Proxmox settings");
  m.reload =
      app.add_option("--reload", cl.reload_pid)
          ->description(
              "Send SIGHUP to the agent PID and wait for its verdict: exit 0 when it applied "
              "the new settings, 78 with its errors when it refused them; for ExecReload=")
          ->type_name("PID")
          ->check(CLI::PositiveNumber);
  m.explain = app.add_option("--explain", cl.explain_vmid)
                  ->description(
                      "Ask the running agent (GET /vms/VMID on 127.0.0.1) why this guest is or is "
                      "not in AccountDB and print the answer; exit 0, or 1 when the agent cannot "
                      "be reached or knows no such guest")
                  ->type_name("VMID")
                  ->check(CLI::PositiveNumber);
  m.confirm =
      app.add_option("--confirm", cl.confirm_hold)
          ->description(
              "Show what the running agent's change brake holds (GET /status); with HOLD, the id "
              "it shows, confirm exactly those changes (POST /sync/confirm, the control token): "
              "they are written at once; exit 0, or 1 when not")
          ->type_name("[HOLD]")
          ->expected(0, 1);
  m.once = app.add_flag("--once")->description(
      "Run one sync cycle, print its report as JSON on stdout, exit 0 if it succeeded, 1 if not");
  m.dry_run = app.add_flag("--dry-run")
                  ->description(
                      "Sync as usual but send nothing that writes to AccountDB; the report "
                      "says what would be sent");
  // At most one mode; --once is a mode of its own, --dry-run goes with it or the daemon.
  const std::vector<CLI::Option*> modes = {m.check, m.required, m.print,   m.list,
                                           m.once,  m.reload,   m.explain, m.confirm};
  for (std::size_t i = 0; i < modes.size(); ++i) {
    for (std::size_t j = i + 1; j < modes.size(); ++j) {
      modes[i]->excludes(modes[j]);
    }
  }
}

// One flag per setting that has one; --no-X for a boolean.
void add_setting_flags(CLI::App& app, CommandLine& cl) {
  for (const auto& spec : settings_table()) {
    if (spec.flag.empty()) {
      continue;
    }
    const std::string env(spec.env);
    if (spec.kind == ValueKind::boolean) {
      const std::string names =
          std::string(spec.flag) + ",!--no-" + std::string(spec.flag.substr(2));
      app.add_flag_function(
          names, [&cl, env](std::int64_t count) { cl.values[env] = count > 0 ? "true" : "false"; },
          describe(spec));
    } else {
      app.add_option_function<std::string>(
             std::string(spec.flag), [&cl, env](const std::string& v) { cl.values[env] = v; },
             describe(spec))
          ->type_name(spec.kind == ValueKind::integer || spec.kind == ValueKind::decimal ? "N"
                                                                                         : "VALUE");
    }
  }
}

}  // namespace

std::variant<CommandLine, CliExit> parse_command_line(int argc, const char* const* argv) {
  CommandLine cl;
  CLI::App app{
      "proxmox-host-agent: keeps AccountDB's view of this Proxmox VE node's guests true.\n"
      "Settings come from built-in defaults < env file < its drop-ins (PATH.d/*.env)\n"
      "< environment < flags;\n"
      "secrets (passwords, tokens, the API key) are read from the environment or the\n"
      "env file only, or from a file named by their *_FILE variant.",
      kProgramName};
  app.set_version_flag("--version", std::string(kProgramName) + " " + kVersion);
  app.get_formatter()->column_width(40);

  ModeFlags m;
  add_modes(app, cl, m);
  add_setting_flags(app, cl);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return CliExit{0, app.help(), ""};
  } catch (const CLI::CallForAllHelp&) {
    return CliExit{0, app.help("", CLI::AppFormatMode::All), ""};
  } catch (const CLI::CallForVersion& e) {
    return CliExit{0, std::string(e.what()) + "\n", ""};
  } catch (const CLI::ParseError& e) {
    return CliExit{
        2, "",
        std::string(kProgramName) + ": " + e.what() + "\nRun with --help for more information.\n"};
  }
  if (*m.env_file_opt) {
    cl.env_file = m.env_file;
  }
  cl.once = m.once->count() > 0;
  cl.dry_run = m.dry_run->count() > 0;
  if (*m.check) {
    cl.mode = Mode::check_config;
  } else if (*m.required) {
    cl.mode = Mode::check_required;
  } else if (*m.print) {
    cl.mode = Mode::print_config;
  } else if (*m.list) {
    cl.mode = Mode::list_guests;
  } else if (*m.reload) {
    cl.mode = Mode::reload;
  } else if (*m.explain) {
    cl.mode = Mode::explain;
  } else if (*m.confirm) {
    cl.mode = Mode::confirm;
  }
  return cl;
}

}  // namespace pha
