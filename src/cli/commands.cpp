// The one table of `nemotron` subcommands. Each command lives in its own cmd_*.cpp file.
#include "cli/command.h"

#include <fmt/format.h>

namespace nemotron::cli {

Command info_command();
Command tokenize_command();
Command preprocess_command();
Command convert_command();
Command roundtrip_command();
Command compare_command();
Command generate_command();
Command pretrain_command();

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands = {
      info_command(),
      tokenize_command(),
      preprocess_command(),
      convert_command(),
      roundtrip_command(),
      compare_command(),
      generate_command(),
      pretrain_command(),
  };
  return commands;
}

const Command* find_command(const std::string& name) {
  for (const Command& c : all_commands())
    if (c.name == name) return &c;
  return nullptr;
}

std::string command_help(const Command& c) {
  std::string out = fmt::format("nemotron {} — {}\n\n{}\n", c.name, c.summary, c.usage);
  if (!c.flags.empty()) out += "\nFlags (underscores and hyphens are interchangeable):\n";
  for (const FlagSpec& f : c.flags) {
    std::string head = "  --" + f.name + (f.takes_value ? " VALUE" : "");
    for (const auto& a : f.aliases) head += ", --" + a;
    out += fmt::format("{:<34} {}", head, f.help);
    if (!f.default_value.empty()) out += fmt::format(" (default: {})", f.default_value);
    out += "\n";
  }
  return out;
}

}  // namespace nemotron::cli
