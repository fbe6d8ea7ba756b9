// Text generation with caches: chunked prefill of each prompt, then one token per step for the whole
// batch, or MTP speculative decoding (spec/model.md §3.11, spec/quant.md §6.3).
//
//   Generator gen(model, &tokenizer);                  // the tokenizer is optional (stop strings, text)
//   GenerationConfig cfg;  cfg.max_new_tokens = 64;  cfg.eos_ids = {2, 11};
//   std::vector<SequenceOutput> out = gen.generate({prompt_ids_a, prompt_ids_b}, cfg, on_text);
//
// Batches: every sequence has its own caches (attention KV, Mamba conv and SSM states), so prompts
// of different lengths need no padding and no state ever sees a pad token. Prefill runs each prompt
// alone, in chunks of `prefill_chunk_size` positions; decoding then steps all unfinished sequences
// together. A padded batch (left or right) is first turned into its unpadded rows by
// strip_padding(). Each row's result is the same as generating it alone.
//
// Speculative decoding (num_draft_tokens = K >= 1, models with an MTP block): each round
//   1. the MTP block catches up on the positions the main model verified last round (their hidden
//      states after norm_f, and the tokens one step ahead, the last being the newest token) and
//      drafts d1 from the last of them;
//   2. it drafts d2..dK one position at a time from its own previous output and draft (the same
//      block reused, as vLLM and Megatron do; its KV cache holds the draft positions);
//   3. the main model runs [newest token, d1..dK] in one step with Mamba checkpoints;
//   4. drafts are accepted left to right — greedy: while the main model's argmax equals the draft;
//      sampling: with probability min(1, p(d)/q(d)), and a rejection draws from max(0, p - q)
//      renormalised (Leviathan et al. 2023), so the output follows the main model's distribution;
//      the first rejection's replacement, or after K acceptances the bonus token, ends the round;
//   5. the main caches keep the accepted positions (Mamba states from the checkpoints), the MTP
//      cache drops its draft positions.
// Devices: the model may live on a GPU (HybridModel::to); caches follow it. The host reads each
// step's logits: for greedy decoding without a repetition penalty only the argmax ids cross the bus,
// otherwise the [B, T, V] logits are copied to the host (sampling, penalties, acceptance tests).
// Greedy MTP drafting without a penalty keeps the drafts on the device: each draft's argmax is the
// next draft step's input id there, the verification step reads them there too, and the host gets
// the drafts together with the verification's argmax in one copy per round.
//
// Greedy speculative output equals plain greedy output. Sampled output has the same distribution as
// plain sampling but uses the random numbers differently, so the same seed gives other text.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "generate/sampling.h"
#include "model/hybrid_model.h"
#include "tokenizer/tokenizer.h"

namespace nemotron::generate {

struct GenerationConfig {
  int64_t max_new_tokens = 32;
  SamplingParams sampling;               // greedy unless sampling.do_sample
  std::vector<int32_t> eos_ids;          // a sequence ends after generating one of these (kept in its tokens)
  std::vector<std::string> stop_strings; // ... or once its text contains one (needs a tokenizer)
  int64_t prefill_chunk_size = 512;
  int64_t num_draft_tokens = 0;          // K > 0: MTP speculative decoding with K drafts per round
  bool skip_special_tokens = false;      // in the text (not the ids)

  void validate() const;
};

enum class StopReason { Eos, StopString, MaxNewTokens };
std::string_view stop_reason_name(StopReason r);

struct SequenceOutput {
  std::vector<int32_t> tokens;  // generated ids, including the eos id that ended the sequence
  std::string text;             // their text (with a tokenizer); an ending eos token is left out
  StopReason reason = StopReason::MaxNewTokens;
};

struct GenerationStats {
  int64_t sequences = 0;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  int64_t generated_tokens = 0;
  int64_t decode_tokens = 0;  // generated after each sequence's first token (which prefill yields)
  double decode_seconds = 0;
  // Speculative decoding: rounds (one per sequence per verification), tokens they produced, and
  // how often draft j (1-based) was accepted together with every draft before it.
  int64_t draft_tokens = 0;
  int64_t rounds = 0;
  int64_t round_tokens = 0;
  std::vector<int64_t> accepted_at;  // [K]

  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;
  double mean_accepted_length() const;       // tokens per round: 1 + accepted drafts
  std::vector<double> acceptance_rates() const;  // accepted_at[j] / rounds
  std::string summary() const;               // the statistics line the CLI prints
};

// Receives text as it becomes final (never a split UTF-8 character): (sequence index, text).
using TextCallback = std::function<void(size_t sequence, std::string_view text)>;
// Receives ids as they are generated: (sequence index, id).
using TokenCallback = std::function<void(size_t sequence, int32_t id)>;
// A deterministic drafter to use instead of the MTP block (prompt lookup, n-grams; oracles in tests):
// given a sequence's tokens so far (the last is the newest), proposes the next `count` tokens. With
// sampling its draft distribution is the point mass on each draft, which keeps the output exact.
using DraftFunction =
    std::function<std::vector<int32_t>(size_t sequence, std::span<const int32_t> tokens, int64_t count)>;
// Reports each speculative round: (sequence index, its drafts, how many were accepted).
using RoundCallback = std::function<void(size_t sequence, std::span<const int32_t> drafts, int64_t accepted)>;

class Generator {
 public:
  // `tok` (may be null) decodes text for stop strings and streaming; it must outlive the generator.
  explicit Generator(const HybridModel& model, const tokenizer::Tokenizer* tok = nullptr);

  // Generates a continuation of each prompt. Errors (empty prompts, ids outside the vocabulary,
  // speculative decoding without an MTP block, ...) are nemotron::Error before any work is done.
  std::vector<SequenceOutput> generate(const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationConfig& config, const TextCallback& on_text = {},
                                       const TokenCallback& on_token = {});

  const GenerationStats& stats() const { return stats_; }

  // Speculative rounds draft with `drafter` instead of the MTP block (an empty function: MTP again).
  void set_drafter(DraftFunction drafter) { drafter_ = std::move(drafter); }
  void set_round_callback(RoundCallback on_round) { on_round_ = std::move(on_round); }

 private:
  struct Sequence;
  class StepLogits;  // a step's logits as the host reads them (generator.cpp)
  void prefill(Sequence& s, const GenerationConfig& config);
  void plain_round(std::vector<Sequence*>& active, const GenerationConfig& config);
  void speculative_round(std::vector<Sequence*>& active, const GenerationConfig& config);
  // Greedy decoding without a penalty: the drafts stay on the model's device until verification.
  bool drafts_stay_on_device(const GenerationConfig& config) const;
  // Drafts K tokens per sequence with the MTP block: into each Sequence::drafts, or, when
  // drafts_stay_on_device, returned as I64 [B, K] on the model's device (Sequence::drafts untouched).
  Tensor draft_with_mtp(std::vector<Sequence*>& active, const GenerationConfig& config);
  // Appends a generated token, streams it, and checks the stop conditions.
  void emit(Sequence& s, int32_t id, const GenerationConfig& config);
  // The next token from position pos of row b of a step's logits.
  int32_t choose(Sequence& s, const StepLogits& logits, int64_t b, int64_t pos,
                 std::span<const int32_t> extra_context, const SamplingParams& params);

  const HybridModel& model_;
  const tokenizer::Tokenizer* tok_;
  TextCallback on_text_;
  TokenCallback on_token_;
  DraftFunction drafter_;
  RoundCallback on_round_;
  GenerationStats stats_;
};

// The rows of a padded batch without their padding. ids I64/I32 [B, T]; attention_mask [B, T] with
// 1 for tokens and 0 for padding, which must sit on the left or the right of a row's tokens (never
// between them).
std::vector<std::vector<int32_t>> strip_padding(const Tensor& ids, const Tensor& attention_mask);

}  // namespace nemotron::generate
