#pragma once
// Turning the process's inputs (argv, the env files, the environment) into a
// validated configuration. Used at start and again on SIGHUP.

#include "agent/config/cli.hpp"
#include "agent/config/loader.hpp"

namespace pha {

// The env file the command line names, else ./.env when it exists, else none.
std::optional<std::string> env_file_in_use(const CommandLine& cl);

// Reads the env file in use and its drop-ins, and loads the settings: the one
// way the start, SIGHUP and every mode load them. `environment` is the
// process environment as a map.
LoadOutcome load_configuration(const CommandLine& cl, const StringMap& environment,
                               SystemAccess& access);

// Prints the errors for an operator, one per line, on stderr.
void print_config_errors(const ConfigErrors& errors);

}  // namespace pha
