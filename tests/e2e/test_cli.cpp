// Drives the `nemotron` binary the way a user does.
#include <gtest/gtest.h>

#include "cli_runner.h"

static RunResult run(const std::string& args) { return run_nemotron(args); }

TEST(Cli, HelpListsCommands) {
  RunResult r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("info"), std::string::npos);
  RunResult none = run("");
  EXPECT_EQ(none.exit_code, 2);
}

TEST(Cli, UnknownCommandSuggests) {
  RunResult r = run("inf");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("did you mean 'info'"), std::string::npos) << r.output;
}

TEST(Cli, UnknownFlagIsAnError) {
  RunResult r = run("info --bogus 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown flag '--bogus'"), std::string::npos) << r.output;
}

TEST(Cli, CommandHelp) {
  RunResult r = run("info --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("nemotron info"), std::string::npos);
}
