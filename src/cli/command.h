// A `nemotron` subcommand. All subcommands are listed in one table in commands.cpp.
#pragma once
#include <string>
#include <vector>

#include "cli/args.h"

namespace nemotron::cli {

struct Command {
  std::string name;     // "convert", "pretrain", ...
  std::string summary;  // one line for `nemotron --help`
  std::string usage;    // synopsis and description for `nemotron NAME --help`
  std::vector<FlagSpec> flags;
  // Runs with parsed arguments; returns the process exit code. Errors are thrown as nemotron::Error.
  int (*run)(const Args& args);
};

const std::vector<Command>& all_commands();
const Command* find_command(const std::string& name);
std::string command_help(const Command& c);

}  // namespace nemotron::cli
