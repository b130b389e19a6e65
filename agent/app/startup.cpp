#include "agent/app/startup.hpp"

#include <cstdio>
#include <unistd.h>

#include "agent/core/version.hpp"

namespace pha {

LoadOutcome load_configuration(const CommandLine& cl, const StringMap& environment,
                               SystemAccess& access) {
  LoadInput input;
  input.environment = environment;
  input.cli = cl.values;
  input.scope = cl.mode == Mode::list_guests ? Scope::proxmox_only : Scope::agent;
  if (cl.env_file) {
    auto text = access.read_file(*cl.env_file);
    if (!text) {
      return ConfigErrors{{"--env-file " + *cl.env_file + ": cannot read it: " + text.error()}};
    }
    input.env_file_path = *cl.env_file;
    input.env_file_text = std::move(*text);
  } else if (::access(".env", F_OK) == 0) {
    // The old agent loaded ./.env from its working directory; so does this one.
    auto text = access.read_file(".env");
    if (!text) {
      return ConfigErrors{{"./.env: cannot read it: " + text.error()}};
    }
    input.env_file_path = "./.env";
    input.env_file_text = std::move(*text);
  }
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
