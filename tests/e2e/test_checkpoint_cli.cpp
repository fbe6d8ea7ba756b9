// convert / roundtrip / compare as a user runs them, including failures.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "cli_runner.h"

namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(NEMOTRON_TEST_DATA) + "/models";

struct Scratch {
  std::string path;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-e2e-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST(CheckpointCli, RoundtripIsExactAcrossLayouts) {
  for (const char* layout : {"--tp 1 --ep 1", "--tp 2 --ep 4 --pp 2"}) {
    RunResult r = run_nemotron("roundtrip --hf-model-id " + kModels + "/tiny_hybrid_legacy --skip-save " + layout);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "Weight verification: 71/71 tensors identical")) << r.output;
  }
}

TEST(CheckpointCli, ImportExportCompare) {
  Scratch s;
  std::string hf = kModels + "/tiny_super_mtp";
  RunResult imp = run_nemotron("convert import --hf-model " + hf + " --megatron-path " + s.path + "/native --ep 4");
  ASSERT_EQ(imp.exit_code, 0) << imp.output;
  EXPECT_TRUE(contains(imp.output, "Import complete"));
  // The checkpoint saved with EP=4 loads into the single-process model and matches PyTorch.
  RunResult cmp = run_nemotron("compare --hf_model_path " + hf + " --megatron_model_path " + s.path +
                               "/native --reference " + hf + "/reference.safetensors");
  EXPECT_EQ(cmp.exit_code, 0) << cmp.output;
  EXPECT_TRUE(contains(cmp.output, "Token match: True")) << cmp.output;
  EXPECT_TRUE(contains(cmp.output, "PASS")) << cmp.output;
  RunResult ids = run_nemotron("compare --hf-model-path " + hf + " --megatron-model-path " + s.path +
                               "/native/iter_0000000 --input-ids 1,2,3,4");
  EXPECT_EQ(ids.exit_code, 0) << ids.output;
  RunResult exp = run_nemotron("convert export --megatron-path " + s.path + "/native --hf-path " + s.path +
                               "/hf --hf-model " + hf);
  ASSERT_EQ(exp.exit_code, 0) << exp.output;
  EXPECT_TRUE(fs::exists(s.path + "/hf/model.safetensors.index.json"));
  // Exporting onto an existing directory needs --overwrite; the old export survives the refusal.
  RunResult again = run_nemotron("convert export --megatron-path " + s.path + "/native --hf-path " + s.path + "/hf");
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_TRUE(fs::exists(s.path + "/hf/model.safetensors.index.json"));
}

TEST(CheckpointCli, CompareFailsOnADifferentModel) {
  // The reference of another fixture (same vocab, different weights) must fail the comparison.
  std::string a = kModels + "/tiny_hybrid_legacy", b = kModels + "/tiny_hybrid_newcfg";
  Scratch s;
  ASSERT_EQ(run_nemotron("convert import --hf-model " + b + " --megatron-path " + s.path + "/b").exit_code, 0);
  RunResult r = run_nemotron("compare --hf-model-path " + a + " --megatron-model-path " + s.path +
                             "/b --input-ids 1,2,3,4,5");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "the models disagree")) << r.output;
}

TEST(CheckpointCli, BadInputsExitNonZeroWithAMessage) {
  Scratch s;
  RunResult no_dir = run_nemotron("convert import --hf-model " + s.path + "/nothing --megatron-path " + s.path + "/x");
  EXPECT_EQ(no_dir.exit_code, 1);
  EXPECT_TRUE(contains(no_dir.output, "error:")) << no_dir.output;
  RunResult tp = run_nemotron("convert import --hf-model " + kModels + "/tiny_super_mtp --megatron-path " + s.path +
                              "/y --tp 2");
  EXPECT_EQ(tp.exit_code, 1);
  EXPECT_TRUE(contains(tp.output, "num_key_value_heads")) << tp.output;
  EXPECT_FALSE(fs::exists(s.path + "/y/iter_0000000"));
  RunResult ids = run_nemotron("compare --hf-model-path " + kModels + "/tiny_super_mtp --input-ids 1,x");
  EXPECT_EQ(ids.exit_code, 1);
  EXPECT_TRUE(contains(ids.output, "'x' is not an integer")) << ids.output;
  RunResult range = run_nemotron("compare --hf-model-path " + kModels + "/tiny_super_mtp --input-ids 1,100000");
  EXPECT_EQ(range.exit_code, 1) << range.output;
  RunResult sub = run_nemotron("convert sideways");
  EXPECT_EQ(sub.exit_code, 1);
  EXPECT_TRUE(contains(sub.output, "convert import")) << sub.output;
}
