#pragma once
// The command line: one flag per setting that has one (from the settings
// table), plus the flags that select a mode.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "agent/config/loader.hpp"

namespace pha {

enum class Mode {
  run,
  check_config,
  check_required,
  print_config,
  list_guests,
  reload,
  explain,
  confirm
};

struct CommandLine {
  Mode mode = Mode::run;
  std::optional<std::string> env_file;  // --env-file
  StringMap values;                     // setting env name -> raw text of its flag
  bool once = false;                    // --once
  bool dry_run = false;                 // --dry-run
  int reload_pid = 0;                   // --reload PID
  std::int64_t explain_vmid = 0;        // --explain VMID
  std::string confirm_hold;             // --confirm [HOLD]: "" shows what is held
};

// --help, --version and usage errors end the program with this.
struct CliExit {
  int code = 0;  // 0 for --help/--version, 2 for wrong usage
  std::string out;
  std::string err;
};

std::variant<CommandLine, CliExit> parse_command_line(int argc, const char* const* argv);

}  // namespace pha
