// Runs the `nemotron` binary the way a user does and captures its exit code and output.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

struct RunResult {
  int exit_code;
  std::string output;  // stdout and stderr
};

inline RunResult run_nemotron(const std::string& args) {
  std::string cmd = std::string(NEMOTRON_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}
