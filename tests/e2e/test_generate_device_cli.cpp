// `nemotron generate --device auto|cpu|cuda --dtype f32|bf16`: the CPU path gives the float64 greedy
// reference whichever way it is asked for, and the flags' mistakes are clear errors. Where no GPU is
// usable (CI), asking for one is an error too.
#include <gtest/gtest.h>

#include "cli_runner.h"

namespace {

const std::string kData = NEMOTRON_TEST_DATA;
const std::string kBase = "generate --hf-model " + kData + "/models/tiny_super_mtp";
// The float64 greedy continuation of tiny_super_mtp prompt 2 (greedy_tiny_super_mtp.safetensors,
// tools/make_generation_reference.py), as in test_generate_cli.cpp.
const std::string kPrompt = " --input-ids 69,115,75,101,6,113,31,43,126,94,30,120,112,91,26,99,33,98,45";
const std::string kTokens = "[102, 84, 30, 58, 85, 18, 47, 85, 52, 84, 58, 84, 11, 58, 58, 84, 85, 115, 23, 83]";

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

bool gpu_usable() { return run_nemotron(kBase + " --device cuda --input-ids 1 --max-new-tokens 1").exit_code == 0; }

}  // namespace

TEST(GenerateDeviceCli, CpuGreedyOutputIsTheReference) {
  for (const std::string flags : {" --device cpu", " --device cpu --dtype f32", " --device cpu --speculative mtp"}) {
    RunResult r = run_nemotron(kBase + kPrompt + " --max-new-tokens 20 --ignore-eos" + flags);
    ASSERT_EQ(r.exit_code, 0) << flags << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, kTokens + "\n")) << flags << "\n" << r.output;
  }
}

TEST(GenerateDeviceCli, BadDeviceOrDtypeIsAClearError) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kBase + " --input-ids 1,2 --device tpu", "unknown device 'tpu': use auto, cpu or cuda"},
      {kBase + " --input-ids 1,2 --dtype fp8", "--dtype must be f32 or bf16, got 'fp8'"},
      {kBase + " --input-ids 1,2 --device cpu --dtype bf16", "--dtype bf16 computes on a GPU only"},
  };
  for (const auto& [args, message] : cases) {
    RunResult r = run_nemotron(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, message)) << args << "\n" << r.output;
  }
}

TEST(GenerateDeviceCli, WithoutAGpuCudaIsAnErrorAndAutoIsTheCpu) {
  if (gpu_usable()) GTEST_SKIP() << "a GPU is usable here";
  RunResult r = run_nemotron(kBase + " --input-ids 1,2 --device cuda");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "--device cuda: no usable GPU")) << r.output;
  r = run_nemotron(kBase + " --input-ids 1,2 --dtype bf16");  // auto: the CPU here
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "GPU only")) << r.output;
  EXPECT_TRUE(contains(r.output, "--device auto found no GPU")) << r.output;
  r = run_nemotron(kBase + kPrompt + " --max-new-tokens 20 --ignore-eos --device auto");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, kTokens + "\n")) << r.output;
}
