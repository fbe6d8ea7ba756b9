// Conversion streams: the anonymous memory it uses stays near the largest tensor, not the model size
// (Megatron-Bridge users hit rank-0 memory limits here).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "checkpoint/conversion.h"
#include "io/hf_checkpoint.h"

using namespace nemotron;
namespace fs = std::filesystem;

namespace {

// Resident anonymous memory of this process (heap, not the page cache of mapped files), in bytes.
int64_t rss_anon_bytes() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "RssAnon:") {
      int64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
    f.ignore(1 << 20, '\n');
  }
  return -1;
}

// Samples rss_anon_bytes() every millisecond while alive and remembers the peak.
class PeakSampler {
 public:
  PeakSampler() : thread_([this] {
      while (!stop_) {
        peak_ = std::max<int64_t>(peak_, rss_anon_bytes());
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }) {}
  int64_t stop() {
    stop_ = true;
    thread_.join();
    return peak_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> peak_{0};
  std::thread thread_;
};

}  // namespace

TEST(StreamingConversion, PeakMemoryFollowsTheLargestTensorNotTheModel) {
  if (rss_anon_bytes() < 0) GTEST_SKIP() << "no /proc/self/status RssAnon";
  std::string tmpl = (fs::temp_directory_path() / "nemotron-stream-XXXXXX").string();
  std::string dir = mkdtemp(tmpl.data());
  // ~140 MB of bf16 weights in 32-expert MoE layers; the largest tensor is ~2.4 MB.
  json::Value cfg = json::parse(R"({"model_type": "nemotron_h", "vocab_size": 1024, "hidden_size": 512,
    "hybrid_override_pattern": "MEMEMEME", "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 2,
    "head_dim": 64, "mamba_num_heads": 16, "mamba_head_dim": 64, "ssm_state_size": 64, "n_groups": 2,
    "chunk_size": 64, "conv_kernel": 4, "n_routed_experts": 32, "num_experts_per_tok": 4,
    "moe_intermediate_size": 512, "moe_shared_expert_intermediate_size": 512, "n_shared_experts": 1,
    "intermediate_size": 1024, "mlp_hidden_act": "relu2", "layer_norm_epsilon": 1e-5})");
  ModelConfig mc = ModelConfig::from_json(cfg, "synthetic");
  HybridModel shapes(mc);
  std::vector<io::TensorDecl> decls;
  size_t largest = 0, total = 0;
  for (Param* p : shapes.params()) {
    DType dt = p->name.ends_with("e_score_correction_bias") ? DType::F32 : DType::BF16;
    decls.push_back({p->name, dt, p->full_shape});
    size_t n = dtype_nbytes(dt, static_cast<size_t>(shape_numel(p->full_shape)));
    largest = std::max(largest, n);
    total += n;
  }
  {
    io::HfCheckpointWriter w(dir + "/hf", io::plan_hf_shards(decls, 40'000'000), cfg);
    for (const io::TensorDecl& d : decls) w.write(d.name, Tensor::zeros(d.shape, d.dtype));
    w.finish();
  }
  ASSERT_GT(total, 50 * largest);
  int64_t before = rss_anon_bytes();
  PeakSampler sampler;
  checkpoint::ImportOptions o;
  o.layout = {1, 4, 2};
  checkpoint::import_hf(dir + "/hf", dir + "/native", o);
  checkpoint::ExportOptions eo;
  checkpoint::export_hf(checkpoint::Reader::open(dir + "/native"), dir + "/out", eo);
  int64_t grew = sampler.stop() - before;
  fs::remove_all(dir);
  // A few copies of the largest tensor plus bookkeeping; far below the model's size.
  std::printf("model %zu bytes, largest tensor %zu, anonymous memory grew by %lld\n", total, largest, static_cast<long long>(grew));
  EXPECT_LT(grew, static_cast<int64_t>(8 * largest + (16 << 20))) << "model " << total << " bytes, largest tensor "
                                                                   << largest << ", anonymous memory grew " << grew;
}
