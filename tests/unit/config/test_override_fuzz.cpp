// Fuzz-style test of the override path: thousands of mutated and random tokens, each of which must
// either apply or throw nemotron::Error — never crash, hang or throw anything else. Seeded, so a
// failure reproduces; the failing token is printed.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "config/config.h"
#include "config/override.h"
#include "config/recipes.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

const std::vector<std::string> kCorpus = {
    "model.hybrid_override_pattern=\"MEME*ME\"",
    "model.hybrid_override_pattern=MEME*ME",
    "model.num_layers=7",
    "checkpoint.save_interval=100",
    "model.sequence_parallel=True",
    "train.train_iters=100",
    "train.global_batch_size=128",
    "scheduler.lr_warmup_iters=10",
    "mixed_precision=bf16_mixed",
    "mixed_precision=\"bf16-mixed\"",
    "model.recompute_modules=[core_attn]",
    "dataset.offline_packing_specs={packed_sequence_size:32768,pad_seq_to_mult:4}",
    "++tokenizer.hf_tokenizer_kwargs.revision=\"abc\"",
    "+tokenizer.hf_tokenizer_kwargs.extra={a: [1, 2.5e-3, null], b: 'x,y'}",
    "~checkpoint.load",
    "~train.micro_batch_size=2",
    "optimizer.lr=4.5e-4",
    "optimizer.min_lr=3.0E+2",
    "dataset.blend=[[/data/a, /data/b], [0.3, 0.7]]",
    "dataset.split='9999,8,2'",
    "peft=lora",
    "++peft.dim=16",
    "model.moe_router_topk_scaling_factor=inf",
    "logger.wandb_exp_name='it\\'s'",
    "dataset.data_path=a\\ b\\,c",
    "model={num_layers: 6, hidden_size: 64}",
};

// Fragments that exercise the grammar's edges when spliced in.
const std::vector<std::string> kFragments = {
    "[", "]", "{", "}", "'", "\"", "\\", ",", ":", "=", "+", "++", "~", ".", "..", "@", "/", "(", ")", "${", "$",
    " ", "\t", "\n", "\x01", "\x7f", "null", "true", "1e309", "-", "_", "é", "→", "\xf0\x9f\x98\x80", "\xff",
    "\xc3", "\xe2\x82", "\0", "[[[[[[", "]]]]", "{a:{b:{c:", "'''", "\\\\\\'", "9223372036854775808", "nan",
};

std::string mutate(std::string s, std::mt19937_64& rng) {
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 6) {
      case 0:  // delete a run
        if (!s.empty() && pos < s.size()) s.erase(pos, 1 + rng() % 4);
        break;
      case 1:  // insert a fragment
        s.insert(pos, kFragments[rng() % kFragments.size()]);
        break;
      case 2:  // random byte
        s.insert(pos, 1, static_cast<char>(rng() % 256));
        break;
      case 3:  // duplicate a slice (unbalances brackets and quotes)
        if (!s.empty()) {
          size_t from = rng() % s.size();
          s.insert(pos, s.substr(from, 1 + rng() % 8));
        }
        break;
      case 4:  // splice with another corpus entry
        s = s.substr(0, pos) + kCorpus[rng() % kCorpus.size()].substr(rng() % 10);
        break;
      default:  // truncate
        s.resize(pos);
        break;
    }
  }
  return s;
}

std::string random_token(std::mt19937_64& rng) {
  std::string s;
  size_t n = rng() % 40;
  for (size_t i = 0; i < n; ++i)
    s += rng() % 3 ? kFragments[rng() % kFragments.size()] : std::string(1, static_cast<char>(' ' + rng() % 95));
  return s;
}

// Applies one token to a fresh copy of the config; anything but success or nemotron::Error fails.
void check_token(const Config& base, const std::string& token, int& applied, int& rejected) {
  Config cfg = base;
  try {
    apply_override(cfg, token);
    // What applied must still print and reload (checked for every 8th, which keeps the test fast).
    if (applied++ % 8 != 0) return;
    Config reloaded;
    merge_yaml(reloaded, to_yaml(cfg), "printed.yaml");
    ASSERT_EQ(reloaded, cfg) << "token: " << ::testing::PrintToString(token);
  } catch (const Error& e) {
    ++rejected;
    ASSERT_NE(std::string(e.what()), "") << "token: " << ::testing::PrintToString(token);
  } catch (const std::exception& e) {
    FAIL() << "non-nemotron exception " << e.what() << " for token " << ::testing::PrintToString(token);
  }
}

TEST(OverrideFuzz, MutatedAndRandomTokensApplyOrErrorCleanly) {
  auto start = std::chrono::steady_clock::now();
  std::mt19937_64 rng(20240601);
  const Config base = tiny();
  int applied = 0, rejected = 0;
  // Every corpus entry applies as written.
  for (const std::string& token : kCorpus) {
    Config cfg = base;
    EXPECT_NO_THROW(apply_override(cfg, token)) << token;
  }
  for (int i = 0; i < 6000; ++i) {
    const std::string& seed = kCorpus[rng() % kCorpus.size()];
    // Half the time keep the key intact so the mutated value reaches the typed tree.
    size_t eq = seed.find('=');
    std::string token = (i % 2 == 0 && eq != std::string::npos)
                            ? seed.substr(0, eq + 1) + mutate(seed.substr(eq + 1), rng)
                            : mutate(seed, rng);
    check_token(base, token, applied, rejected);
    if (HasFatalFailure()) return;
  }
  for (int i = 0; i < 2000; ++i) {
    check_token(base, random_token(rng), applied, rejected);
    if (HasFatalFailure()) return;
  }
  // Very long tokens: huge values, keys, nesting and quotes.
  for (const std::string& token :
       {"train.train_iters=" + std::string(100000, '9'), "model." + std::string(100000, 'k') + "=1",
        "a=" + std::string(50000, '[') + std::string(50000, ']'), "a=\"" + std::string(100000, 'x'),
        "dataset.blend=[" + std::string(20000, 'x') + ", " + std::string(20000, 'y') + "]",
        "logger.wandb_exp_name='" + std::string(100000, '\\') + "'",
        "+tokenizer.hf_tokenizer_kwargs.k={" + std::string(30000, ' ') + "}"}) {
    check_token(base, token, applied, rejected);
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Both outcomes occur, so the fuzzer reaches past the parser into the typed tree.
  EXPECT_GT(applied, 300);
  EXPECT_GT(rejected, 2000);
  EXPECT_LT(seconds, 5.0);
  std::printf("override fuzz: %d applied, %d rejected in %.2f s\n", applied, rejected, seconds);
}

}  // namespace
}  // namespace nemotron::config
