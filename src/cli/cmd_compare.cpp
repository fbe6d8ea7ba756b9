// `nemotron compare`: Megatron-Bridge's compare_hf_and_megatron/compare.py. Runs the HF-format model
// through the plain single-process fp32 path and the native checkpoint through the configured
// execution, prints the Bridge's metrics, and — unlike the Bridge — fails when they disagree.
#include <cmath>
#include <cstdio>
#include <optional>

#include "checkpoint/conversion.h"
#include "cli/command.h"
#include "cli/common.h"
#include "core/log.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/hf_model.h"
#include "tokenizer/tokenizer.h"

namespace nemotron::cli {

namespace {

struct Agreement {
  double max_abs = 0, mean_abs = 0, cosine = 0, rel_to_std = 0;
  bool argmax_match = true;
};

// Logits a and b: F32 [n, V] rows.
Agreement agree(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  Agreement r;
  double dot = 0, na = 0, nb = 0, sum = 0, sum_sq = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double d = std::fabs(double(a[i]) - b[i]);
    r.max_abs = std::max(r.max_abs, d);
    r.mean_abs += d;
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
    sum += b[i];
    sum_sq += double(b[i]) * b[i];
  }
  double n = static_cast<double>(a.size());
  r.mean_abs /= n;
  r.cosine = dot / std::sqrt(na * nb);
  double var = sum_sq / n - (sum / n) * (sum / n);
  r.rel_to_std = r.max_abs / std::sqrt(std::max(var, 1e-30));
  for (size_t row = 0; row * vocab < a.size(); ++row) {
    auto am = std::max_element(a.begin() + row * vocab, a.begin() + (row + 1) * vocab) - (a.begin() + row * vocab);
    auto bm = std::max_element(b.begin() + row * vocab, b.begin() + (row + 1) * vocab) - (b.begin() + row * vocab);
    r.argmax_match = r.argmax_match && am == bm;
  }
  return r;
}

std::string top5(const std::vector<float>& row, const std::optional<tokenizer::Tokenizer>& tok) {
  std::vector<int64_t> idx(row.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + std::min<size_t>(5, idx.size()), idx.end(),
                    [&](int64_t x, int64_t y) { return row[x] > row[y] || (row[x] == row[y] && x < y); });
  std::string s;
  for (size_t i = 0; i < 5 && i < idx.size(); ++i) {
    std::string text;
    if (tok) text = fmt::format(" {:?}", tok->decode(std::vector<int32_t>{static_cast<int32_t>(idx[i])}));
    s += fmt::format("{}{}({:.4f}) ", idx[i], text, row[idx[i]]);
  }
  return s;
}

std::vector<float> last_position(const Tensor& logits, int64_t b) {
  return logits.select(0, b).select(0, logits.size(1) - 1).to_f32_vector();
}

int run_compare(const Args& args) {
  checkpoint::Layout layout = layout_from_args(args);
  NT_CHECK(layout.tp == 1 && layout.ep == 1 && layout.pp == 1,
           "running the model with TP/EP/PP > 1 needs one process per rank (torchrun/mpirun); this build runs "
           "one process, so use --tp 1 --ep 1 --pp 1 (a checkpoint saved with any layout is resharded on load)");
  double min_cosine = args.get_double("min-cosine", 0.99);
  std::string hf_dir = args.require("hf-model-path");

  Tensor input_ids;
  Tensor reference_logits;
  if (args.has("reference")) {
    io::SafetensorsFile ref = io::SafetensorsFile::open(args.require("reference"));
    input_ids = ref.tensor("input_ids").to(DType::I64).contiguous();
    reference_logits = ref.tensor("logits").to(DType::F32).contiguous();
  }
  if (args.has("input-ids")) input_ids = parse_input_ids(args.require("input-ids"));
  std::optional<tokenizer::Tokenizer> tok;
  if (io::path_exists(io::join_path(hf_dir, "tokenizer.json"))) tok = tokenizer::Tokenizer::from_directory(hf_dir);
  if (args.has("prompt")) {
    NT_CHECK(!input_ids.defined(), "give either --prompt or --input-ids/--reference, not both");
    NT_CHECK(tok.has_value(), "--prompt needs {}/tokenizer.json; pass --input-ids instead", hf_dir);
    // As the Bridge script: the tokenizer's own special tokens, no chat template.
    std::vector<int32_t> ids = tok->encode(args.require("prompt"));
    NT_CHECK(!ids.empty(), "--prompt encodes to no tokens");
    input_ids = Tensor::from_vector(std::vector<int64_t>(ids.begin(), ids.end()), {1, static_cast<int64_t>(ids.size())});
  }
  NT_CHECK(input_ids.defined(), "give the tokens to run: --prompt TEXT, --input-ids 1,2,3 or --reference FILE");

  HybridModel hf_model = load_hf_model(hf_dir);
  Tensor hf_logits = hf_model.forward(input_ids).logits;

  Tensor native_logits;
  std::string native_name = "native (converted in memory)";
  if (args.has("megatron-model-path")) {
    checkpoint::Reader reader = checkpoint::Reader::open(args.require("megatron-model-path"));
    HybridModel model(checkpoint::native_model_config(reader));
    checkpoint::load_native_weights(model, reader);
    native_logits = model.forward(input_ids).logits;
    native_name = fmt::format("native {} (saved with TP={} EP={} PP={})", reader.dir(), reader.layout().tp,
                              reader.layout().ep, reader.layout().pp);
  } else {
    native_logits = hf_logits;
  }
  int64_t V = hf_logits.size(-1);
  bool ok = true;
  std::printf("HF model: %s\nNative model: %s\ninput_ids: %s\n", hf_dir.c_str(), native_name.c_str(),
              shape_str(input_ids.shape()).c_str());
  for (int64_t b = 0; b < input_ids.size(0); ++b) {
    std::vector<float> h = last_position(hf_logits, b), n = last_position(native_logits, b);
    Agreement a = agree(n, h, V);
    std::printf("[sequence %lld, last position]\n", static_cast<long long>(b));
    std::printf("  HF top-5:     %s\n  Native top-5: %s\n", top5(h, tok).c_str(), top5(n, tok).c_str());
    std::printf("  Token match: %s\n  Logits diff - max: %.6g, mean: %.6g\n  Cosine similarity: %.8f %s\n",
                a.argmax_match ? "True" : "False", a.max_abs, a.mean_abs, a.cosine, a.cosine >= min_cosine ? "OK" : "FAIL");
    ok = ok && a.argmax_match && a.cosine >= min_cosine;
  }
  Agreement all = agree(native_logits.to_f32_vector(), hf_logits.to_f32_vector(), V);
  std::printf("[all positions] max |diff| / std: %.3g, cosine: %.8f, argmax match: %s\n", all.rel_to_std, all.cosine,
              all.argmax_match ? "True" : "False");
  if (reference_logits.defined()) {
    NT_CHECK(reference_logits.shape() == native_logits.shape(), "reference logits are {}, the model produced {}",
             shape_str(reference_logits.shape()), shape_str(native_logits.shape()));
    Agreement r = agree(native_logits.to_f32_vector(), reference_logits.to_f32_vector(), V);
    std::printf("[reference %s] max |diff| / std: %.3g, cosine: %.8f, argmax match: %s\n",
                args.require("reference").c_str(), r.rel_to_std, r.cosine, r.argmax_match ? "True" : "False");
    double max_rel = args.get_double("max-rel-error", 1e-4);
    ok = ok && r.argmax_match && r.cosine >= min_cosine && r.rel_to_std <= max_rel;
  }
  if (!ok) {
    log_error("the models disagree (thresholds: cosine >= {}, argmax equal{})", min_cosine,
              reference_logits.defined() ? ", max |diff| / std <= --max-rel-error" : "");
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}

}  // namespace

Command compare_command() {
  std::vector<FlagSpec> flags = {
      {"hf-model-path", "HF model directory (run through the plain fp32 path)", true, "", {"hf-model"}},
      {"megatron-model-path", "native checkpoint to compare (default: the HF weights converted in memory)", true, "",
       {"megatron-path"}},
      {"prompt", "text to run (needs the tokenizer)", true, "", {}},
      {"input-ids", "token ids to run: 1,2,3 (several equal-length sequences: 1,2;3,4)", true, "", {}},
      {"reference", "safetensors with input_ids [B,T] and logits [B,T,V] saved by PyTorch", true, "",
       {"hf-logits-path"}},
      {"min-cosine", "fail below this cosine similarity", true, "0.99", {}},
      {"max-rel-error", "with --reference: fail above this max |diff| / std of the reference logits", true, "1e-4",
       {}},
      {"trust-remote-code", "accepted for compatibility with the Bridge script", false, "", {}},
  };
  append_layout_flags(flags);
  return {"compare", "compare the native model's logits with the HF model's (and saved PyTorch logits)",
          "Usage: nemotron compare --hf-model-path DIR [--megatron-model-path DIR] (--input-ids 1,2,3 | --reference FILE)\n\n"
          "Prints, per sequence, the Bridge's metrics for the last position (token match, max and mean\n"
          "absolute logit difference, cosine similarity, top-5), then all positions. Exits 1 when the argmax\n"
          "differs or the cosine similarity is below --min-cosine (and, with --reference, when the error\n"
          "exceeds --max-rel-error).",
          flags, run_compare};
}

}  // namespace nemotron::cli
