// Errors: every failure a user can cause is an nemotron::Error with a message that says what went
// wrong, where, and how to fix it. The CLI catches it, prints it and exits non-zero.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace nemotron {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace nemotron

// NT_CHECK(cond, "format {}", args...): throws nemotron::Error with the formatted message.
#define NT_CHECK(cond, ...)                    \
  do {                                         \
    if (!(cond)) ::nemotron::fail(__VA_ARGS__); \
  } while (0)
