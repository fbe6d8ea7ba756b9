#include <gtest/gtest.h>

#include "core/error.h"
#include "parallel/parallel_state.h"

using namespace nemotron;

TEST(ParallelState, ShardRangeSplitsEvenly) {
  EXPECT_EQ(shard_range(12, 1, 0, "x"), (Range{0, 12}));
  EXPECT_EQ(shard_range(12, 4, 0, "x"), (Range{0, 3}));
  EXPECT_EQ(shard_range(12, 4, 3, "x"), (Range{9, 3}));
  EXPECT_EQ(shard_range(12, 4, 3, "x").end(), 12);
}

TEST(ParallelState, ShardRangeErrorsNameTheDimension) {
  try {
    shard_range(10, 4, 0, "attention KV heads");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("attention KV heads"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not divisible"), std::string::npos) << msg;
  }
  EXPECT_THROW(shard_range(8, 2, 2, "x"), Error);
  EXPECT_THROW(shard_range(8, 0, 0, "x"), Error);
}

TEST(ParallelState, ShardBlocksTakesTheRanksPartOfEveryBlock) {
  // Mamba in_proj rows [z 8 | x 8 | B 4 | C 4 | dt 2] at TP=2, rank 1.
  std::vector<Range> r = shard_blocks({8, 8, 4, 4, 2}, 2, 1, "in_proj");
  std::vector<Range> expected = {{4, 4}, {12, 4}, {18, 2}, {22, 2}, {25, 1}};
  EXPECT_EQ(r, expected);
  // The ranks' parts tile the dimension exactly once.
  std::vector<int> covered(26, 0);
  for (int rank = 0; rank < 2; ++rank)
    for (const Range& x : shard_blocks({8, 8, 4, 4, 2}, 2, rank, "in_proj"))
      for (int64_t i = x.begin; i < x.end(); ++i) covered[i]++;
  for (int c : covered) EXPECT_EQ(c, 1);
}

TEST(ParallelState, ValidateAndDerivedStates) {
  ParallelState ps;
  EXPECT_TRUE(ps.is_single());
  ps.tp_size = 2;
  EXPECT_FALSE(ps.is_single());
  EXPECT_NO_THROW(ps.validate());
  EXPECT_EQ(ps.with_tp_rank(1).tp_rank, 1);
  EXPECT_THROW(ps.with_tp_rank(2), Error);
  ps.ep_rank = 1;  // ep_size is 1
  EXPECT_THROW(ps.validate(), Error);
  EXPECT_EQ(ParallelState{}.tp_shard(6, "x"), (Range{0, 6}));
}
