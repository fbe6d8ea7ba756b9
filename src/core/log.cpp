#include "core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace nemotron {

namespace {
LogLevel level_from_env() {
  const char* e = std::getenv("NEMOTRON_LOG_LEVEL");
  if (!e) return LogLevel::Info;
  if (!std::strcmp(e, "debug")) return LogLevel::Debug;
  if (!std::strcmp(e, "warning")) return LogLevel::Warning;
  if (!std::strcmp(e, "error")) return LogLevel::Error;
  return LogLevel::Info;
}
LogLevel g_level = level_from_env();
int g_rank = -1;
std::mutex g_mu;
}  // namespace

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }
void set_log_rank(int rank, int world_size) { g_rank = world_size > 1 ? rank : -1; }

void log_line(LogLevel level, const std::string& message) {
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::string prefix = g_rank >= 0 ? fmt::format("[rank {}] ", g_rank) : "";
  if (level != LogLevel::Info) prefix += fmt::format("{}: ", names[static_cast<int>(level)]);
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "%s%s\n", prefix.c_str(), message.c_str());
  std::fflush(stderr);
}

}  // namespace nemotron
