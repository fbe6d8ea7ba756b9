#include <gtest/gtest.h>

#include "cli/args.h"
#include "core/error.h"

using namespace nemotron;
using namespace nemotron::cli;

static const std::vector<FlagSpec> kSpecs = {
    {"hf-model-path", "HF model directory", true, "", {"hf-model"}},
    {"tp", "tensor parallel size", true, "1", {}},
    {"verbose", "more output", false, "", {}},
};

TEST(Args, BothSpellingsAndAliases) {
  Args a({"--hf_model_path", "/m", "--tp=2", "--verbose"}, kSpecs);
  EXPECT_EQ(a.require("hf-model-path"), "/m");
  EXPECT_EQ(a.get_int("tp", 1), 2);
  EXPECT_TRUE(a.flag("verbose"));
  Args b({"--hf-model", "/x"}, kSpecs);
  EXPECT_EQ(b.get_or("hf-model-path", ""), "/x");
  EXPECT_FALSE(b.flag("verbose"));
}

TEST(Args, CollectsOverridesInOrder) {
  Args a({"model.hybrid_override_pattern=\"MEME*ME\"", "+x.y=1", "--tp", "4", "~a.b", "++c=2", "pos"}, kSpecs);
  EXPECT_EQ(a.overrides(),
            (std::vector<std::string>{"model.hybrid_override_pattern=\"MEME*ME\"", "+x.y=1", "~a.b", "++c=2"}));
  EXPECT_EQ(a.positionals(), (std::vector<std::string>{"pos"}));
}

TEST(Args, Errors) {
  EXPECT_THROW(Args({"--hf-modle-path", "x"}, kSpecs), Error);
  try {
    Args({"--hf-modle-path", "x"}, kSpecs);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean '--hf-model-path'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Args({"--tp"}, kSpecs), Error);
  EXPECT_THROW(Args({"--tp", "1", "--tp", "2"}, kSpecs), Error);
  EXPECT_THROW(Args({"--verbose=3"}, kSpecs), Error);
  EXPECT_THROW(Args({"--tp", "x"}, kSpecs).get_int("tp", 1), Error);
  EXPECT_THROW(Args({}, kSpecs).require("hf-model-path"), Error);
}
