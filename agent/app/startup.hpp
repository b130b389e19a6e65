#pragma once
// Turning the process's inputs (argv, the env file, the environment) into a
// validated configuration. Used at start and again on SIGHUP.

#include "agent/config/cli.hpp"
#include "agent/config/loader.hpp"

namespace pha {

// Reads the env file the command line names (or ./.env when it exists) and
// loads the settings. `environment` is the process environment as a map.
LoadOutcome load_configuration(const CommandLine& cl, const StringMap& environment,
                               SystemAccess& access);

// Prints the errors for an operator, one per line, on stderr.
void print_config_errors(const ConfigErrors& errors);

}  // namespace pha
