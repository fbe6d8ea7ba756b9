// Generation end to end on the tiny fixtures: greedy continuations and per-step logits against the
// float64 full re-forward reference (tools/make_generation_reference.py), batches of different
// lengths (and padded batches) against single prompts, MTP speculative greedy against plain greedy,
// seeded sampling, stop conditions and bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "generate/generation_config.h"
#include "generate/generator.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/decode_step.h"
#include "model/hf_model.h"
#include "test_util.h"

using namespace nemotron;
using namespace nemotron::generate;
using test::ids_tensor;
using test::max_err_over_std;
using test::model_dir;

namespace {

using Ids = std::vector<int32_t>;

struct Reference {
  std::vector<Ids> prompts, tokens;
  std::vector<Tensor> logits;  // [steps, V]
};

Ids to_ids(const Tensor& t) {
  std::vector<int64_t> v = t.to(DType::I64).contiguous().to_i64_vector();
  return Ids(v.begin(), v.end());
}

Reference load_reference(const std::string& name) {
  io::SafetensorsFile f =
      io::SafetensorsFile::open(std::string(NEMOTRON_TEST_DATA) + "/generate/greedy_" + name + ".safetensors");
  Reference r;
  for (int j = 0; j < 3; ++j) {
    r.prompts.push_back(to_ids(f.tensor("prompt." + std::to_string(j))));
    r.tokens.push_back(to_ids(f.tensor("tokens." + std::to_string(j))));
    r.logits.push_back(f.tensor("logits." + std::to_string(j)).to(DType::F32).contiguous());
  }
  return r;
}

GenerationConfig greedy(int64_t max_new_tokens) {
  GenerationConfig c;
  c.max_new_tokens = max_new_tokens;
  return c;
}

GenerationConfig sampled(uint64_t seed) {
  GenerationConfig c = greedy(20);
  c.sampling.do_sample = true;
  c.sampling.temperature = 0.9;
  c.sampling.top_k = 40;
  c.sampling.seed = seed;
  return c;
}

std::vector<Ids> tokens_of(const std::vector<SequenceOutput>& out) {
  std::vector<Ids> t;
  for (const SequenceOutput& o : out) t.push_back(o.tokens);
  return t;
}

class Greedy : public ::testing::TestWithParam<std::string> {};

TEST_P(Greedy, ContinuationsEqualTheFloat64FullReforwardReference) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const Reference ref = load_reference(GetParam());
  Generator gen(model);
  for (size_t j = 0; j < ref.prompts.size(); ++j) {
    std::vector<SequenceOutput> out = gen.generate({ref.prompts[j]}, greedy(20));
    EXPECT_EQ(out[0].tokens, ref.tokens[j]) << "prompt " << j;
    EXPECT_EQ(out[0].reason, StopReason::MaxNewTokens);
  }
}

TEST_P(Greedy, CachedStepLogitsMatchTheReferenceAtEveryStep) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const Reference ref = load_reference(GetParam());
  double worst = 0;
  for (size_t j = 0; j < ref.prompts.size(); ++j) {
    decode::SequenceCache cache(model);
    decode::SequenceCache* caches[] = {&cache};
    Tensor logits = decode::model_step(model, ids_tensor(ref.prompts[j]), caches).logits;
    for (size_t k = 0; k < ref.tokens[j].size(); ++k) {
      worst = std::max(worst, max_err_over_std(logits.flatten(), ref.logits[j].select(0, k)));
      logits = decode::model_step(model, ids_tensor({ref.tokens[j][k]}), caches).logits;
    }
  }
  std::cout << "  " << GetParam() << " step logits vs float64 reference: max err / std = " << worst << "\n";
  EXPECT_LT(worst, 1e-4);
}

TEST_P(Greedy, BatchesOfDifferentLengthsAndPaddedBatchesEqualEachPromptAlone) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const Reference ref = load_reference(GetParam());
  Generator gen(model);
  EXPECT_EQ(tokens_of(gen.generate(ref.prompts, greedy(20))), ref.tokens);
  EXPECT_EQ(gen.stats().sequences, 3);
  EXPECT_EQ(gen.stats().generated_tokens, 60);
  EXPECT_EQ(gen.stats().decode_tokens, 57);

  // The same prompts as a padded [3, T] batch, padded on the left and on the right with id 0.
  const int64_t T = 19;
  for (bool left : {true, false}) {
    std::vector<int64_t> ids, mask;
    for (const Ids& p : ref.prompts) {
      const int64_t pad = T - static_cast<int64_t>(p.size());
      if (left) ids.insert(ids.end(), pad, 0), mask.insert(mask.end(), pad, 0);
      ids.insert(ids.end(), p.begin(), p.end());
      mask.insert(mask.end(), p.size(), 1);
      if (!left) ids.insert(ids.end(), pad, 0), mask.insert(mask.end(), pad, 0);
    }
    std::vector<Ids> rows = strip_padding(Tensor::from_vector(ids, {3, T}), Tensor::from_vector(mask, {3, T}));
    EXPECT_EQ(rows, ref.prompts);
    EXPECT_EQ(tokens_of(gen.generate(rows, greedy(20))), ref.tokens) << (left ? "left" : "right") << " padding";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Greedy, ::testing::Values("tiny_hybrid_legacy", "tiny_super_mtp", "tiny_hybrid_newcfg"));

TEST(Speculative, GreedyEqualsPlainGreedyForOneTwoAndThreeDrafts) {
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const Reference ref = load_reference("tiny_super_mtp");
  Generator gen(model);
  for (int64_t K : {1, 2, 3}) {
    for (int64_t chunk : {512, 4}) {
      GenerationConfig c = greedy(20);
      c.num_draft_tokens = K;
      c.prefill_chunk_size = chunk;
      EXPECT_EQ(tokens_of(gen.generate(ref.prompts, c)), ref.tokens) << "K = " << K << ", prefill chunk " << chunk;
      const GenerationStats& s = gen.stats();
      std::cout << "  K = " << K << ": " << s.summary() << "\n";
      EXPECT_GT(s.rounds, 0);
      EXPECT_GE(s.mean_accepted_length(), 1.0);
      EXPECT_LE(s.mean_accepted_length(), K + 1.0);
      ASSERT_EQ(s.acceptance_rates().size(), static_cast<size_t>(K));
      for (int64_t j = 1; j < K; ++j) EXPECT_LE(s.accepted_at[j], s.accepted_at[j - 1]);
      // Every round yields 1 + accepted tokens; all but each sequence's first token come from rounds
      // (the rounds' tokens past a stop are cut).
      EXPECT_GE(s.round_tokens, s.decode_tokens);
    }
    for (size_t j = 0; j < ref.prompts.size(); ++j) {
      GenerationConfig c = greedy(20);
      c.num_draft_tokens = K;
      EXPECT_EQ(gen.generate({ref.prompts[j]}, c)[0].tokens, ref.tokens[j]) << "K = " << K << ", prompt " << j;
    }
  }
}

TEST(Speculative, GreedyWithARepetitionPenaltyEqualsPlainGreedyWithIt) {
  // With a penalty the drafts are chosen on the host (without one they stay on the model's device):
  // both ways, speculative greedy output is plain greedy output.
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const Reference ref = load_reference("tiny_super_mtp");
  Generator gen(model);
  GenerationConfig plain = greedy(20);
  plain.sampling.repetition_penalty = 1.3;
  const std::vector<Ids> expected = tokens_of(gen.generate(ref.prompts, plain));
  EXPECT_NE(expected, ref.tokens);  // the penalty changes the output, so the comparison sees it
  for (int64_t K : {1, 3}) {
    GenerationConfig c = plain;
    c.num_draft_tokens = K;
    EXPECT_EQ(tokens_of(gen.generate(ref.prompts, c)), expected) << "K = " << K;
    EXPECT_GT(gen.stats().rounds, 0);
  }
}

// An oracle drafter proposes the reference continuation, wrong at a position that cycles through
// 0..K (K: all right), so every number of accepted drafts occurs, and the rollback of every
// partial acceptance is exercised on every fixture (the MTP block of the fixture, with random
// weights, is almost never right).
class OracleDrafts : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleDrafts, EveryAcceptedLengthGivesThePlainGreedyOutput) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const Reference ref = load_reference(GetParam());
  Generator gen(model);
  for (int64_t K : {1, 2, 4}) {
    for (bool always_right : {true, false}) {
      int64_t round = 0;
      std::vector<int64_t> accepted_counts(K + 1, 0);
      gen.set_drafter([&](size_t seq, std::span<const int32_t> tokens, int64_t count) {
        const size_t done = tokens.size() - ref.prompts[seq].size();  // generated so far, the newest included
        const int64_t wrong_at = always_right ? K : round++ % (K + 1);
        Ids d;
        for (int64_t i = 0; i < count; ++i) {
          const size_t at = done + i;
          const int32_t right = at < ref.tokens[seq].size() ? ref.tokens[seq][at] : 0;
          d.push_back(i == wrong_at ? (right + 1) % 128 : right);
        }
        return d;
      });
      gen.set_round_callback([&](size_t, std::span<const int32_t>, int64_t accepted) { ++accepted_counts[accepted]; });
      GenerationConfig c = greedy(20);
      c.num_draft_tokens = K;
      EXPECT_EQ(tokens_of(gen.generate(ref.prompts, c)), ref.tokens) << "K = " << K;
      const GenerationStats& s = gen.stats();
      if (always_right) {
        // 19 tokens after each first one, K + 1 per round.
        EXPECT_EQ(s.rounds, 3 * ((19 + K) / (K + 1))) << "K = " << K;
        EXPECT_EQ(s.accepted_at[0], s.rounds);
      } else {
        for (int64_t a = 0; a <= K; ++a) EXPECT_GT(accepted_counts[a], 0) << "K = " << K << ", accepted " << a;
      }
    }
  }
  gen.set_drafter({});
}

INSTANTIATE_TEST_SUITE_P(Fixtures, OracleDrafts,
                         ::testing::Values("tiny_hybrid_legacy", "tiny_super_mtp", "tiny_hybrid_newcfg"));

TEST(Speculative, MtpDraftsEqualTheUncachedMtpBlockOnTheWholeSequence) {
  // Each round's drafts, recomputed without caches: d1 from MtpBlock::forward over positions
  // 0..L-1 (main hidden states after norm_f, tokens one ahead); d(j+1) from the same run with one
  // more position holding d(j)'s block output and d(j).
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const Reference ref = load_reference("tiny_super_mtp");
  Generator gen(model);
  struct Round {
    Ids tokens, drafts;
  };
  std::vector<Round> rounds;
  Ids sequence = ref.prompts[2];
  gen.set_round_callback([&](size_t, std::span<const int32_t> drafts, int64_t accepted) {
    (void)accepted;
    rounds.push_back({sequence, Ids(drafts.begin(), drafts.end())});
  });
  GenerationConfig c = greedy(12);
  c.num_draft_tokens = 3;
  gen.generate({ref.prompts[2]}, c, {}, [&](size_t, int32_t id) { sequence.push_back(id); });
  ASSERT_GT(rounds.size(), 3u);
  const MtpBlock& block = model.mtp[0];
  for (const Round& r : rounds) {
    const int64_t L = static_cast<int64_t>(r.tokens.size()) - 1;  // the newest token sits at position L
    Tensor h = model.forward(ids_tensor(Ids(r.tokens.begin(), r.tokens.end() - 1))).final_hidden;  // [1, L, H]
    Ids ahead(r.tokens.begin() + 1, r.tokens.end());
    for (size_t j = 0; j < r.drafts.size(); ++j) {
      Tensor g = block.forward(h, model.embed(ids_tensor(ahead)));
      Tensor last = g.narrow(1, g.size(1) - 1, 1).contiguous();
      EXPECT_EQ(argmax(model.lm_logits(last).to_f32_vector()), r.drafts[j]) << "round at length " << L << ", draft " << j;
      h = ops::cat({h, last}, 1);
      ahead.push_back(r.drafts[j]);
    }
  }
}

TEST(Speculative, StopsAtEosAndAtMaxNewTokensExactlyAsPlainDecoding) {
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const Reference ref = load_reference("tiny_super_mtp");
  ASSERT_EQ(ref.tokens[1][3], 2);  // the reference continuation of prompt 1 produces id 2 at step 3
  Generator gen(model);
  for (int64_t max_new : {1, 2, 5, 7, 20}) {
    GenerationConfig plain = greedy(max_new);
    plain.eos_ids = {2};
    const std::vector<SequenceOutput> expected = gen.generate(ref.prompts, plain);
    EXPECT_EQ(expected[1].tokens.size(), std::min<size_t>(4, max_new));
    EXPECT_EQ(expected[1].reason, max_new >= 4 ? StopReason::Eos : StopReason::MaxNewTokens);
    for (int64_t K : {1, 3}) {
      GenerationConfig spec = plain;
      spec.num_draft_tokens = K;
      const std::vector<SequenceOutput> got = gen.generate(ref.prompts, spec);
      for (size_t j = 0; j < got.size(); ++j) {
        EXPECT_EQ(got[j].tokens, expected[j].tokens) << "max " << max_new << ", K " << K << ", prompt " << j;
        EXPECT_EQ(got[j].reason, expected[j].reason);
      }
    }
  }
}

TEST(Sampling, SeededRunsAreReproducibleAndDependOnTheSeed) {
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const Reference ref = load_reference("tiny_super_mtp");
  Generator gen(model);
  GenerationConfig c = sampled(5);
  c.sampling.top_p = 0.95;
  c.sampling.min_p = 0.02;
  c.sampling.repetition_penalty = 1.2;
  const std::vector<Ids> a = tokens_of(gen.generate(ref.prompts, c));
  EXPECT_EQ(tokens_of(gen.generate(ref.prompts, c)), a);
  EXPECT_NE(a, ref.tokens);  // not greedy
  // Sequence i draws from its own stream: row 0 of a batch equals the prompt alone.
  EXPECT_EQ(gen.generate({ref.prompts[0]}, c)[0].tokens, a[0]);
  c.sampling.seed = 6;
  EXPECT_NE(tokens_of(gen.generate(ref.prompts, c)), a);

  // Speculative sampling is reproducible too (it uses the random numbers differently).
  GenerationConfig s = sampled(5);
  s.num_draft_tokens = 2;
  const std::vector<Ids> b = tokens_of(gen.generate(ref.prompts, s));
  EXPECT_EQ(tokens_of(gen.generate(ref.prompts, s)), b);
  for (const Ids& t : b) EXPECT_EQ(t.size(), 20u);
}

TEST(Sampling, RepetitionPenaltyAppliesToGreedyChoices) {
  // The first greedy token under a penalty is the argmax of the reference logits after the penalty.
  const HybridModel model = load_hf_model(model_dir("tiny_hybrid_newcfg"));
  const Reference ref = load_reference("tiny_hybrid_newcfg");
  Generator gen(model);
  for (double penalty : {1.5, 4.0, 0.5}) {
    for (size_t j = 0; j < ref.prompts.size(); ++j) {
      std::vector<float> l = ref.logits[j].select(0, 0).to_f32_vector();
      apply_repetition_penalty(l, ref.prompts[j], penalty);
      GenerationConfig c = greedy(1);
      c.sampling.repetition_penalty = penalty;
      EXPECT_EQ(gen.generate({ref.prompts[j]}, c)[0].tokens[0], argmax(l)) << "penalty " << penalty << ", prompt " << j;
    }
  }
}

TEST(Generator, StopStringsEndTheSequenceAndTextStreamsInWholeCharacters) {
  const HybridModel model = load_hf_model(model_dir("tiny_super_mtp"));
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_directory(std::string(NEMOTRON_TEST_DATA) + "/generate/tokenizer");
  const Reference ref = load_reference("tiny_super_mtp");
  const Ids& full = ref.tokens[2];
  Generator gen(model, &tok);

  // Without stop strings the streamed pieces add up to the decoded continuation.
  std::string streamed;
  const std::vector<SequenceOutput> out =
      gen.generate({ref.prompts[2]}, greedy(20), [&](size_t, std::string_view piece) { streamed += piece; });
  EXPECT_EQ(out[0].tokens, full);
  EXPECT_EQ(streamed, out[0].text);
  EXPECT_EQ(out[0].text, tok.decode(full));

  // A stop string: the text of an ASCII token of the continuation. Generation ends at the first
  // token whose decoded prefix contains it.
  std::string stop;
  for (size_t k = 2; k < full.size() && stop.empty(); ++k) {
    const std::string piece = tok.decode(Ids{full[k]});
    if (!piece.empty() && std::all_of(piece.begin(), piece.end(), [](char ch) { return ch > ' ' && ch < 127; }))
      stop = piece;
  }
  ASSERT_FALSE(stop.empty());
  size_t expected = 1;
  while (tok.decode(Ids(full.begin(), full.begin() + expected)).find(stop) == std::string::npos) ++expected;
  GenerationConfig c = greedy(20);
  c.stop_strings = {"never appears in this text", stop};
  for (int64_t K : {0, 2}) {
    c.num_draft_tokens = K;
    const SequenceOutput o = gen.generate({ref.prompts[2]}, c)[0];
    EXPECT_EQ(o.tokens, Ids(full.begin(), full.begin() + expected)) << "stop '" << stop << "', K " << K;
    EXPECT_EQ(o.reason, StopReason::StopString);
  }
}

TEST(Generator, BadInputsAreClearErrors) {
  const HybridModel model = load_hf_model(model_dir("tiny_hybrid_legacy"));
  Generator gen(model);
  auto message = [&](const std::vector<Ids>& prompts, const GenerationConfig& c) {
    try {
      gen.generate(prompts, c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{1, 128}}, greedy(4)).find("outside the model's vocabulary"), std::string::npos);
  EXPECT_NE(message({{1, -1}}, greedy(4)).find("outside"), std::string::npos);
  EXPECT_NE(message({{}}, greedy(4)).find("no tokens"), std::string::npos);
  EXPECT_NE(message({}, greedy(4)).find("no prompts"), std::string::npos);
  GenerationConfig spec = greedy(4);
  spec.num_draft_tokens = 2;
  EXPECT_NE(message({{1, 2}}, spec).find("MTP block"), std::string::npos);
  spec.num_draft_tokens = -1;
  EXPECT_NE(message({{1, 2}}, spec).find("draft tokens"), std::string::npos);
  GenerationConfig stop = greedy(4);
  stop.stop_strings = {"x"};
  EXPECT_NE(message({{1, 2}}, stop).find("tokenizer"), std::string::npos);
  GenerationConfig eos = greedy(4);
  eos.eos_ids = {500};
  EXPECT_NE(message({{1, 2}}, eos).find("eos id 500"), std::string::npos);
  EXPECT_NE(message({{1, 2}}, greedy(-1)).find("max new tokens"), std::string::npos);
  GenerationConfig hot = sampled(1);
  hot.sampling.temperature = 0;
  EXPECT_NE(message({{1, 2}}, hot).find("temperature"), std::string::npos);

  const Tensor ids = Tensor::from_vector(std::vector<int64_t>{5, 6, 7, 8}, {2, 2});
  EXPECT_THROW(strip_padding(ids, Tensor::from_vector(std::vector<int64_t>{1, 1, 0, 0}, {2, 2})), Error);  // all pad
  const Tensor ids3 = Tensor::from_vector(std::vector<int64_t>{5, 6, 7}, {1, 3});
  EXPECT_THROW(strip_padding(ids3, Tensor::from_vector(std::vector<int64_t>{1, 0, 1}, {1, 3})), Error);  // gap
  EXPECT_THROW(strip_padding(ids3, Tensor::from_vector(std::vector<int64_t>{0, 2, 1}, {1, 3})), Error);  // not 0/1
  EXPECT_EQ(strip_padding(ids3, Tensor::from_vector(std::vector<int64_t>{0, 1, 0}, {1, 3})), (std::vector<Ids>{{6}}));
}

TEST(GenerationConfig, EosIdsComeFromGenerationConfigElseConfig) {
  EXPECT_EQ(eos_ids_from_model_dir(model_dir("tiny_super_mtp")), (Ids{2}));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "nemotron_test_eos_ids";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"eos_token_id": [2, 11]})";
  EXPECT_EQ(eos_ids_from_model_dir(dir.string()), (Ids{2, 11}));
  std::ofstream(dir / "generation_config.json") << R"({"bos_token_id": 1, "eos_token_id": 11})";
  EXPECT_EQ(eos_ids_from_model_dir(dir.string()), (Ids{11}));
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": "x"})";
  EXPECT_THROW(eos_ids_from_model_dir(dir.string()), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
