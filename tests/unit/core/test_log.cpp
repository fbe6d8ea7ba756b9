#include <gtest/gtest.h>

#include "core/log.h"

using namespace nemotron;

TEST(Log, LevelsAndRankPrefix) {
  LogLevel saved = log_level();
  set_log_level(LogLevel::Info);
  ::testing::internal::CaptureStderr();
  log_debug("hidden {}", 1);
  log_info("plain {}", 2);
  log_warning("careful");
  set_log_rank(3, 8);
  log_info("from a rank");
  log_error("bad {}", "thing");
  set_log_rank(0, 1);  // one process: no prefix
  log_info("alone");
  std::string out = ::testing::internal::GetCapturedStderr();
  set_log_level(saved);
  EXPECT_EQ(out, "plain 2\nwarning: careful\n[rank 3] from a rank\n[rank 3] error: bad thing\nalone\n");
}
