// The `nemotron` binary: dispatches to the subcommand named by the first argument.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"

namespace {

void print_overview() {
  std::string out = "nemotron — convert, train, finetune, quantize and run NemotronH models.\n\n"
                    "Usage: nemotron COMMAND [flags] [key=value overrides]\n\nCommands:\n";
  for (const auto& c : nemotron::cli::all_commands()) out += fmt::format("  {:<12} {}\n", c.name, c.summary);
  out += "\nRun `nemotron COMMAND --help` for a command's flags.\n";
  std::fputs(out.c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nemotron;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_overview();
    return args.empty() ? 2 : 0;
  }
  const cli::Command* cmd = cli::find_command(args[0]);
  if (!cmd) {
    std::vector<std::string> names;
    for (const auto& c : cli::all_commands()) names.push_back(c.name);
    log_error("unknown command '{}'{}; run `nemotron --help` for the list", args[0], did_you_mean(args[0], names));
    return 2;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const std::string& a : rest)
    if (a == "--help" || a == "-h") {
      std::fputs(cli::command_help(*cmd).c_str(), stdout);
      return 0;
    }
  try {
    return cmd->run(cli::Args(rest, cmd->flags));
  } catch (const Error& e) {
    log_error("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    log_error("internal error: {}", e.what());
    return 3;
  }
}
