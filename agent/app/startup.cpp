#include "agent/app/startup.hpp"

#include <cstdio>
#include <unistd.h>

#include "agent/core/version.hpp"

namespace pha {

std::optional<std::string> env_file_in_use(const CommandLine& cl) {
  if (cl.env_file) {
    return cl.env_file;
  }
  // The old agent loaded ./.env from its working directory; so does this one.
  if (::access(".env", F_OK) == 0) {
    return "./.env";
  }
  return std::nullopt;
}

LoadOutcome load_configuration(const CommandLine& cl, const StringMap& environment,
                               SystemAccess& access) {
  LoadInput input;
  input.env_file = env_file_in_use(cl);
  input.env_file_named = cl.env_file.has_value();
  input.environment = environment;
  input.cli = cl.values;
  input.scope = cl.mode == Mode::list_guests ? Scope::proxmox_only : Scope::agent;
  return load_settings(input, access);
}

void print_config_errors(const ConfigErrors& errors) {
  std::fprintf(stderr, "%s: configuration error%s:\n", kProgramName,
               errors.errors.size() == 1 ? "" : "s");
  for (const auto& e : errors.errors) {
    std::fprintf(stderr, "  %s\n", e.c_str());
  }
}

}  // namespace pha
