// Leveled logging to stderr. With more than one process every line starts with "[rank R] ".
// The level comes from NEMOTRON_LOG_LEVEL (debug, info, warning, error) or set_log_level().
#pragma once
#include <fmt/format.h>

#include <string>

namespace nemotron {

enum class LogLevel { Debug, Info, Warning, Error };

void set_log_level(LogLevel level);
LogLevel log_level();
// Set once the process group is known; rank < 0 or world_size <= 1 disables the prefix.
void set_log_rank(int rank, int world_size);
void log_line(LogLevel level, const std::string& message);

template <typename... Args>
void log_debug(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::Debug) log_line(LogLevel::Debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::Info) log_line(LogLevel::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warning(fmt::format_string<Args...> f, Args&&... args) {
  if (log_level() <= LogLevel::Warning) log_line(LogLevel::Warning, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_error(fmt::format_string<Args...> f, Args&&... args) {
  log_line(LogLevel::Error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace nemotron
