#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/error.h"
#include "core/strings.h"
#include "core/thread_pool.h"

using namespace nemotron;

TEST(ThreadPool, CoversEveryIndexOnce) {
  std::vector<std::atomic<int>> hits(10007);
  parallel_for(10007, 13, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, NestedCallsRunSerially) {
  std::atomic<int64_t> total{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(100, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
  });
  EXPECT_EQ(total.load(), 800);
}

TEST(ThreadPool, RethrowsErrors) {
  EXPECT_THROW(parallel_for(1000, 1,
                            [&](int64_t b, int64_t) {
                              if (b > 500) fail("boom at {}", b);
                            }),
               Error);
  // The pool still works afterwards.
  std::atomic<int64_t> n{0};
  parallel_for(100, 1, [&](int64_t b, int64_t e) { n += e - b; });
  EXPECT_EQ(n.load(), 100);
}

TEST(Strings, EditDistanceAndSuggestions) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  std::vector<std::string> keys{"train.train_iters", "train.global_batch_size", "model.hidden_size"};
  EXPECT_EQ(closest_match("train.train_iter", keys), "train.train_iters");
  EXPECT_EQ(closest_match("zzzzzz", keys), "");
  EXPECT_EQ(split("a.b..c", '.'), (std::vector<std::string>{"a", "b", "", "c"}));
}
