#include "generate/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "generate/text_stream.h"
#include "kernels/ops.h"
#include "model/decode_step.h"

namespace nemotron::generate {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Tensor ids_tensor(const std::vector<std::vector<int32_t>>& rows) {
  const int64_t cols = static_cast<int64_t>(rows.front().size());
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return Tensor::from_vector(flat, {static_cast<int64_t>(rows.size()), cols});
}

// I64 token ids [B, n_i] joined along dim 0 or 1, on their device (ops::cat keeps the dtype on a
// GPU; its CPU op computes in F32, so the host joins them here).
Tensor cat_ids(const std::vector<Tensor>& parts, int64_t dim) {
  if (!parts[0].device().is_cpu()) return ops::cat(parts, dim);
  std::vector<std::vector<int64_t>> values;
  int64_t rows = 0, cols = 0;
  for (const Tensor& p : parts) {
    values.push_back(p.to(DType::I64).contiguous().to_i64_vector());
    rows = dim == 0 ? rows + p.size(0) : p.size(0);
    cols = dim == 0 ? p.size(1) : cols + p.size(1);
  }
  std::vector<int64_t> out;
  if (dim == 0) {
    for (const auto& v : values) out.insert(out.end(), v.begin(), v.end());
  } else {
    for (int64_t r = 0; r < rows; ++r)
      for (size_t i = 0; i < parts.size(); ++i) {
        const int64_t n = parts[i].size(1);
        out.insert(out.end(), values[i].begin() + r * n, values[i].begin() + (r + 1) * n);
      }
  }
  return Tensor::from_vector(out, {rows, cols});
}

// Logits after the repetition penalty over `seen` (the sequence so far) and `extra` (the drafts before
// this position).
std::vector<float> penalized(std::span<const float> logits, const std::vector<int32_t>& seen,
                             std::span<const int32_t> extra, const SamplingParams& params) {
  std::vector<float> l(logits.begin(), logits.end());
  if (params.repetition_penalty != 1.0) {
    std::vector<int32_t> context = seen;
    context.insert(context.end(), extra.begin(), extra.end());
    apply_repetition_penalty(l, context, params.repetition_penalty);
  }
  return l;
}

}  // namespace

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop string";
    case StopReason::MaxNewTokens: return "max new tokens";
  }
  return "?";
}

void GenerationConfig::validate() const {
  NT_CHECK(max_new_tokens >= 0, "max new tokens must be >= 0, got {}", max_new_tokens);
  NT_CHECK(prefill_chunk_size >= 1, "prefill chunk size must be >= 1, got {}", prefill_chunk_size);
  NT_CHECK(num_draft_tokens >= 0, "the number of draft tokens must be >= 0 (0: no speculative decoding), got {}",
           num_draft_tokens);
  for (const std::string& s : stop_strings) NT_CHECK(!s.empty(), "a stop string is empty");
  sampling.validate();
}

double GenerationStats::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0;
}
double GenerationStats::decode_tokens_per_second() const {
  return decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0;
}
double GenerationStats::mean_accepted_length() const {
  return rounds > 0 ? static_cast<double>(round_tokens) / static_cast<double>(rounds) : 0.0;
}
std::vector<double> GenerationStats::acceptance_rates() const {
  std::vector<double> r;
  for (int64_t a : accepted_at) r.push_back(rounds > 0 ? static_cast<double>(a) / static_cast<double>(rounds) : 0.0);
  return r;
}

std::string GenerationStats::summary() const {
  std::string s = fmt::format(
      "[stats] sequences {} | prefill {} tokens in {:.3f} s ({:.1f} tokens/s) | decode {} tokens in {:.3f} s ({:.1f} "
      "tokens/s)",
      sequences, prompt_tokens, prefill_seconds, prefill_tokens_per_second(), decode_tokens, decode_seconds,
      decode_tokens_per_second());
  if (draft_tokens > 0) {
    s += fmt::format(" | speculative, {} drafts: {} rounds, mean accepted length {:.3f}, acceptance per position [",
                     draft_tokens, rounds, mean_accepted_length());
    std::vector<double> rates = acceptance_rates();
    for (size_t j = 0; j < rates.size(); ++j) s += fmt::format("{}{:.3f}", j ? ", " : "", rates[j]);
    s += "]";
  }
  return s;
}

// A step's logits [B, T, V] where the host reads them. Greedy decoding without a repetition penalty
// needs only each position's argmax: for logits on a GPU that is computed there, and B·T ids cross
// the bus instead of B·T·V floats. Everything else (sampling, penalties) copies the logits to the
// host (B·T·V floats per step: 8 MB for 16 rows of a 131k vocabulary).
class Generator::StepLogits {
 public:
  StepLogits(const Tensor& logits, const SamplingParams& params) {
    if (!params.do_sample && params.repetition_penalty == 1.0 && !logits.device().is_cpu()) {
      positions_ = logits.size(1);
      argmax_ = ops::argmax(logits, -1).to(Device::cpu()).to(DType::I64).contiguous().to_i64_vector();
    } else {
      host_ = logits.to(Device::cpu()).to(DType::F32).contiguous();
    }
  }
  // Argmax ids already on the host: [B, positions] row-major.
  StepLogits(std::vector<int64_t> argmax, int64_t positions) : argmax_(std::move(argmax)), positions_(positions) {}
  // Only the argmax is at hand (then the caller decodes greedily without a penalty).
  bool argmax_only() const { return !host_.defined(); }
  int32_t argmax(int64_t b, int64_t pos) const { return static_cast<int32_t>(argmax_[b * positions_ + pos]); }
  // Row b at position pos, when !argmax_only().
  std::span<const float> row(int64_t b, int64_t pos) const {
    const int64_t V = host_.size(2);
    return {host_.data<float>() + (b * host_.size(1) + pos) * V, static_cast<size_t>(V)};
  }

 private:
  Tensor host_;  // F32 [B, T, V] on the host
  std::vector<int64_t> argmax_;
  int64_t positions_ = 0;
};

struct Generator::Sequence {
  Sequence(const HybridModel& model, size_t index, const std::vector<int32_t>& prompt, const SamplingParams& sampling)
      : index(index),
        tokens(prompt),
        prompt_length(prompt.size()),
        cache(model),
        rng(sampling.seed, index) {}

  size_t index;
  std::vector<int32_t> tokens;  // prompt, then generated; the last one is not yet in the main caches
  size_t prompt_length;
  decode::SequenceCache cache;
  Rng rng;
  // Distinct ids seen so far (for the repetition penalty).
  std::vector<uint8_t> seen;
  std::vector<int32_t> seen_ids;
  std::optional<TextStream> stream;
  size_t stop_checked = 0;  // text bytes already searched for stop strings
  SequenceOutput out;
  bool done = false;
  // Speculative decoding: main-model hidden states (after norm_f) of the positions the MTP block has
  // not run on yet, positions cache.mtp_length .. cache.length - 1: [n, H].
  Tensor mtp_pending;
  // The current round's drafts and their distributions (sampling only).
  std::vector<int32_t> drafts;
  std::vector<std::vector<float>> draft_probs;

  void mark_seen(int32_t id) {
    if (seen.empty()) return;
    if (!seen[id]) seen_ids.push_back(id);
    seen[id] = 1;
  }
};

Generator::Generator(const HybridModel& model, const tokenizer::Tokenizer* tok) : model_(model), tok_(tok) {}

int32_t Generator::choose(Sequence& s, const StepLogits& logits, int64_t b, int64_t pos,
                          std::span<const int32_t> extra_context, const SamplingParams& params) {
  if (logits.argmax_only()) return logits.argmax(b, pos);  // greedy without a penalty
  const std::vector<float> l = penalized(logits.row(b, pos), s.seen_ids, extra_context, params);
  if (!params.do_sample) return argmax(l);
  return sample(sampling_distribution(l, params), s.rng);
}

void Generator::emit(Sequence& s, int32_t id, const GenerationConfig& config) {
  if (s.done) return;
  s.tokens.push_back(id);
  s.out.tokens.push_back(id);
  s.mark_seen(id);
  ++stats_.generated_tokens;
  if (on_token_) on_token_(s.index, id);
  if (std::find(config.eos_ids.begin(), config.eos_ids.end(), id) != config.eos_ids.end()) {
    s.done = true;
    s.out.reason = StopReason::Eos;
  } else if (s.stream) {
    std::string piece = s.stream->push(id);
    if (!piece.empty() && on_text_) on_text_(s.index, piece);
    const std::string& text = s.stream->text();
    for (const std::string& stop : config.stop_strings) {
      const size_t from = s.stop_checked >= stop.size() ? s.stop_checked - stop.size() + 1 : 0;
      if (text.find(stop, from) != std::string::npos) {
        s.done = true;
        s.out.reason = StopReason::StopString;
      }
    }
    s.stop_checked = text.size();
  }
  if (!s.done && static_cast<int64_t>(s.out.tokens.size()) >= config.max_new_tokens) {
    s.done = true;
    s.out.reason = StopReason::MaxNewTokens;
  }
  if (s.done && s.stream) {
    std::string rest = s.stream->finish();
    if (!rest.empty() && on_text_) on_text_(s.index, rest);
    s.out.text = s.stream->text();
  }
}

void Generator::prefill(Sequence& s, const GenerationConfig& config) {
  const int64_t n = static_cast<int64_t>(s.prompt_length), chunk = config.prefill_chunk_size;
  const bool mtp_drafting = config.num_draft_tokens > 0 && !drafter_;  // the MTP block reads the hidden states
  std::vector<Tensor> hidden;
  decode::SequenceCache* caches[] = {&s.cache};
  Tensor logits;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    std::vector<int32_t> part(s.tokens.begin() + start, s.tokens.begin() + start + len);
    const bool last = start + len == n;
    decode::StepOutput out = decode::model_step(model_, ids_tensor({part}), caches,
                                                {.logits = last ? decode::LogitsAt::Last : decode::LogitsAt::None});
    if (mtp_drafting) hidden.push_back(out.final_hidden.select(0, 0));
    if (last) logits = out.logits;
  }
  if (mtp_drafting) s.mtp_pending = hidden.size() == 1 ? hidden[0].contiguous() : ops::cat(hidden, 0);
  emit(s, choose(s, StepLogits(logits, config.sampling), 0, 0, {}, config.sampling), config);
}

void Generator::plain_round(std::vector<Sequence*>& active, const GenerationConfig& config) {
  std::vector<std::vector<int32_t>> ids;
  std::vector<decode::SequenceCache*> caches;
  for (Sequence* s : active) {
    ids.push_back({s->tokens.back()});
    caches.push_back(&s->cache);
  }
  decode::StepOutput out = decode::model_step(model_, ids_tensor(ids), caches);
  const StepLogits logits(out.logits, config.sampling);
  for (size_t b = 0; b < active.size(); ++b)
    emit(*active[b], choose(*active[b], logits, static_cast<int64_t>(b), 0, {}, config.sampling), config);
}

bool Generator::drafts_stay_on_device(const GenerationConfig& config) const {
  return !drafter_ && !config.sampling.do_sample && config.sampling.repetition_penalty == 1.0;
}

Tensor Generator::draft_with_mtp(std::vector<Sequence*>& active, const GenerationConfig& config) {
  const int64_t K = config.num_draft_tokens;
  const SamplingParams& params = config.sampling;
  const bool on_device = drafts_stay_on_device(config);

  // A draft from MTP logits read by the host, processed as the main model's (penalty, temperature,
  // filters).
  auto draft = [&](Sequence& s, const StepLogits& logits, int64_t b) {
    if (logits.argmax_only()) {
      s.drafts.push_back(logits.argmax(b, 0));
      return;
    }
    const std::vector<float> l = penalized(logits.row(b, 0), s.seen_ids, s.drafts, params);
    if (!params.do_sample) {
      s.drafts.push_back(argmax(l));
    } else {
      s.draft_probs.push_back(sampling_distribution(l, params));
      s.drafts.push_back(sample(s.draft_probs.back(), s.rng));
    }
  };

  // 1. Catch up on the positions verified last round (grouped by their count, as a step needs equal
  //    lengths): position p reads the main hidden state at p and token p+1. The last one drafts d1.
  std::map<int64_t, std::vector<size_t>> by_count;  // count -> indices into `active`
  for (size_t i = 0; i < active.size(); ++i) by_count[active[i]->mtp_pending.size(0)].push_back(i);
  // The whole batch's input to the next draft step: the MTP output [B, 1, H] and (on the device) the
  // draft ids [B, 1]; per row while the groups are apart.
  Tensor hidden, ids;
  std::vector<Tensor> hidden_rows(active.size()), id_rows(active.size());
  for (auto& [n, group] : by_count) {
    std::vector<Tensor> pending;
    std::vector<std::vector<int32_t>> next;
    std::vector<decode::SequenceCache*> caches;
    for (size_t i : group) {
      Sequence* s = active[i];
      const int64_t first = s->cache.mtp_length;
      NT_CHECK(first + n == s->cache.length, "internal: MTP cache at {} + {} pending, main cache at {}", first, n,
               s->cache.length);
      pending.push_back(s->mtp_pending.unsqueeze(0));
      next.emplace_back(s->tokens.begin() + first + 1, s->tokens.begin() + first + 1 + n);
      caches.push_back(&s->cache);
    }
    decode::StepOutput out = decode::mtp_step(model_, ops::cat(pending, 0), ids_tensor(next), caches);
    const Tensor last_hidden = out.final_hidden.narrow(1, n - 1, 1).contiguous();  // [group, 1, H]
    const Tensor drafted = on_device ? ops::argmax(out.logits, -1) : Tensor();     // [group, 1]
    if (by_count.size() == 1) {
      hidden = last_hidden;
      ids = drafted;
    } else {
      for (size_t b = 0; b < group.size(); ++b) {
        hidden_rows[group[b]] = last_hidden.narrow(0, static_cast<int64_t>(b), 1);
        if (on_device) id_rows[group[b]] = drafted.narrow(0, static_cast<int64_t>(b), 1);
      }
    }
    if (!on_device) {
      const StepLogits logits(out.logits, params);
      for (size_t b = 0; b < group.size(); ++b) draft(*active[group[b]], logits, static_cast<int64_t>(b));
    }
  }
  if (by_count.size() > 1) {
    hidden = ops::cat(hidden_rows, 0);
    if (on_device) ids = cat_ids(id_rows, 0);
  }

  // 2. Drafts 2..K: one MTP position at a time for the whole batch, from the previous output and draft.
  //    On the device each draft's argmax is the next step's input id as it is, with no host round trip.
  std::vector<decode::SequenceCache*> caches;
  for (Sequence* s : active) caches.push_back(&s->cache);
  std::vector<Tensor> drafted = {ids};
  for (int64_t j = 1; j < K; ++j) {
    Tensor next = ids;
    if (!on_device) {
      std::vector<std::vector<int32_t>> rows;
      for (Sequence* s : active) rows.push_back({s->drafts.back()});
      next = ids_tensor(rows);
    }
    decode::StepOutput out = decode::mtp_step(model_, hidden, next, caches);
    hidden = out.final_hidden;
    if (on_device) {
      ids = ops::argmax(out.logits, -1);
      drafted.push_back(ids);
    } else {
      const StepLogits logits(out.logits, params);
      for (size_t b = 0; b < active.size(); ++b) draft(*active[b], logits, static_cast<int64_t>(b));
    }
  }
  if (!on_device) return Tensor();
  return drafted.size() == 1 ? drafted[0] : cat_ids(drafted, 1);
}

void Generator::speculative_round(std::vector<Sequence*>& active, const GenerationConfig& config) {
  const int64_t K = config.num_draft_tokens, V = model_.config.vocab_size;
  const SamplingParams& params = config.sampling;
  for (Sequence* s : active) {
    s->drafts.clear();
    s->draft_probs.clear();
  }
  if (drafter_) {
    for (Sequence* s : active) {
      s->drafts = drafter_(s->index, s->tokens, K);
      NT_CHECK(static_cast<int64_t>(s->drafts.size()) == K, "the drafter proposed {} tokens, {} were asked for",
               s->drafts.size(), K);
      for (int32_t d : s->drafts) {
        NT_CHECK(d >= 0 && d < V, "the drafter proposed token id {}, outside the vocabulary [0, {})", d, V);
        if (params.do_sample) {  // a deterministic draft: its distribution is the point mass on it
          s->draft_probs.emplace_back(V, 0.0f);
          s->draft_probs.back()[d] = 1.0f;
        }
      }
    }
  }
  const Tensor device_drafts = drafter_ ? Tensor() : draft_with_mtp(active, config);  // [B, K] or undefined

  // 3. The main model on [newest token, d1..dK], keeping Mamba checkpoints.
  std::vector<std::vector<int32_t>> ids;
  std::vector<decode::SequenceCache*> caches;
  for (Sequence* s : active) {
    ids.push_back({s->tokens.back()});
    ids.back().insert(ids.back().end(), s->drafts.begin(), s->drafts.end());  // none yet if on the device
    caches.push_back(&s->cache);
  }
  const Tensor verify_ids = device_drafts.defined()
                                ? cat_ids({ids_tensor(ids).to(device_drafts.device()), device_drafts}, 1)
                                : ids_tensor(ids);
  decode::StepOutput out = decode::model_step(model_, verify_ids, caches,
                                              {.logits = decode::LogitsAt::All, .keep_checkpoints = true});
  std::optional<StepLogits> step_logits;
  if (device_drafts.defined()) {
    // The round's one copy to the host: the drafts and the verification's argmax, [B, K + K+1].
    const std::vector<int64_t> host =
        cat_ids({device_drafts, ops::argmax(out.logits, -1)}, 1).to(Device::cpu()).contiguous().to_i64_vector();
    std::vector<int64_t> verified;
    for (size_t b = 0; b < active.size(); ++b) {
      const auto row = host.begin() + static_cast<int64_t>(b) * (2 * K + 1);
      active[b]->drafts.assign(row, row + K);
      verified.insert(verified.end(), row + K, row + 2 * K + 1);
    }
    step_logits.emplace(std::move(verified), K + 1);
  } else {
    step_logits.emplace(out.logits, params);
  }
  const StepLogits& logits = *step_logits;

  // 4. Accept left to right; 5. roll back (all rows' Mamba states at once), emit.
  std::vector<int64_t> kept_positions;
  for (size_t b = 0; b < active.size(); ++b) {
    Sequence& s = *active[b];
    const int64_t verified = s.cache.length - (K + 1);  // the main length before this round
    int64_t accepted = 0;
    int32_t last = -1;
    for (; accepted < K; ++accepted) {
      const int32_t d = s.drafts[accepted];
      const std::span<const int32_t> before(s.drafts.data(), static_cast<size_t>(accepted));
      bool kept = false;
      if (!params.do_sample) {
        last = choose(s, logits, static_cast<int64_t>(b), accepted, before, params);
        kept = last == d;
      } else {
        const std::vector<float> p =
            sampling_distribution(penalized(logits.row(static_cast<int64_t>(b), accepted), s.seen_ids, before, params),
                                  params);
        last = accept_or_resample(p, s.draft_probs[accepted], d, s.rng, &kept);
      }
      if (!kept) break;
    }
    if (accepted == K) last = choose(s, logits, static_cast<int64_t>(b), K, s.drafts, params);  // the bonus token

    ++stats_.rounds;
    stats_.round_tokens += accepted + 1;
    for (int64_t j = 0; j < accepted; ++j) ++stats_.accepted_at[j];
    if (on_round_) on_round_(s.index, s.drafts, accepted);

    kept_positions.push_back(accepted + 1);
    if (!drafter_) {
      s.cache.truncate_mtp(verified);
      s.mtp_pending = out.final_hidden.select(0, b).narrow(0, 0, accepted + 1).contiguous();
    }
    for (int64_t j = 0; j < accepted; ++j) emit(s, s.drafts[j], config);
    emit(s, last, config);
  }
  decode::keep_first(caches, kept_positions);
}

std::vector<SequenceOutput> Generator::generate(const std::vector<std::vector<int32_t>>& prompts,
                                                const GenerationConfig& config, const TextCallback& on_text,
                                                const TokenCallback& on_token) {
  config.validate();
  const int64_t V = model_.config.vocab_size;
  NT_CHECK(!prompts.empty(), "nothing to generate from: no prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    NT_CHECK(!prompts[i].empty(), "prompt {} has no tokens", i);
    for (size_t t = 0; t < prompts[i].size(); ++t) {
      const int32_t id = prompts[i][t];
      NT_CHECK(id >= 0 && id < V, "prompt {}: token id {} at position {} is outside the model's vocabulary [0, {})", i,
               id, t, V);
    }
  }
  for (int32_t id : config.eos_ids)
    NT_CHECK(id >= 0 && id < V, "eos id {} is outside the model's vocabulary [0, {})", id, V);
  NT_CHECK(config.stop_strings.empty() || tok_ != nullptr, "stop strings need a tokenizer to see the text");
  const int64_t K = config.num_draft_tokens;
  if (K > 0 && !drafter_) {
    NT_CHECK(!model_.mtp.empty(),
             "speculative decoding with MTP needs a model with an MTP block, and this one has none (config "
             "'num_nextn_predict_layers' is 0)");
    for (const Block& b : model_.mtp[0].layers)
      NT_CHECK(b.kind() != LayerKind::Mamba,
               "speculative decoding needs an MTP block without Mamba layers (its drafts could not be undone)");
  }

  on_text_ = on_text;
  on_token_ = on_token;
  stats_ = GenerationStats{};
  stats_.sequences = static_cast<int64_t>(prompts.size());
  stats_.draft_tokens = K;
  stats_.accepted_at.assign(K, 0);

  std::vector<std::unique_ptr<Sequence>> seqs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto s = std::make_unique<Sequence>(model_, i, prompts[i], config.sampling);
    if (config.sampling.repetition_penalty != 1.0) {
      s->seen.assign(V, 0);
      for (int32_t id : prompts[i]) s->mark_seen(id);
    }
    if (tok_) s->stream.emplace(*tok_, prompts[i], config.skip_special_tokens);
    const int64_t positions = static_cast<int64_t>(prompts[i].size()) + config.max_new_tokens + K + 1;
    s->cache.reserve(positions, positions);
    seqs.push_back(std::move(s));
  }
  if (config.max_new_tokens == 0) {
    std::vector<SequenceOutput> out;
    for (auto& s : seqs) out.push_back(s->out);
    return out;
  }

  const auto t_prefill = Clock::now();
  for (auto& s : seqs) {
    prefill(*s, config);
    stats_.prompt_tokens += static_cast<int64_t>(s->prompt_length);
  }
  stats_.prefill_seconds = seconds_since(t_prefill);
  const int64_t after_prefill = stats_.generated_tokens;

  const auto t_decode = Clock::now();
  std::vector<Sequence*> active;
  for (auto& s : seqs)
    if (!s->done) active.push_back(s.get());
  while (!active.empty()) {
    if (K > 0)
      speculative_round(active, config);
    else
      plain_round(active, config);
    std::erase_if(active, [](Sequence* s) { return s->done; });
  }
  stats_.decode_seconds = seconds_since(t_decode);
  stats_.decode_tokens = stats_.generated_tokens - after_prefill;

  std::vector<SequenceOutput> out;
  for (auto& s : seqs) out.push_back(std::move(s->out));
  return out;
}

std::vector<std::vector<int32_t>> strip_padding(const Tensor& ids_in, const Tensor& mask_in) {
  NT_CHECK(ids_in.dim() == 2, "input ids must be [batch, seq], got {}", ids_in.str());
  NT_CHECK(mask_in.shape() == ids_in.shape(), "the attention mask {} must have the ids' shape {}", mask_in.str(),
           ids_in.str());
  const std::vector<int64_t> ids = ids_in.to(DType::I64).contiguous().to_i64_vector();
  const std::vector<int64_t> mask = mask_in.to(DType::I64).contiguous().to_i64_vector();
  const int64_t B = ids_in.size(0), T = ids_in.size(1);
  std::vector<std::vector<int32_t>> rows;
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = T, last = -1, count = 0;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t m = mask[b * T + t];
      NT_CHECK(m == 0 || m == 1, "attention mask row {} has {} at position {}: only 0 and 1 are allowed", b, m, t);
      if (m) {
        first = std::min(first, t);
        last = t;
        ++count;
      }
    }
    NT_CHECK(count > 0, "row {} of the batch is all padding", b);
    NT_CHECK(last - first + 1 == count,
             "row {} of the batch has padding between its tokens; padding must be on the left or on the right", b);
    std::vector<int32_t> r;
    for (int64_t t = first; t <= last; ++t) r.push_back(static_cast<int32_t>(ids[b * T + t]));
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace nemotron::generate
