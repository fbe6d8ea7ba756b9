// `nemotron generate`: Megatron-Bridge's ptq_generate.py and more — text generation with caches,
// sampling and MTP speculative decoding (src/generate/generator.h).
#include <cstdio>

#include "checkpoint/conversion.h"
#include "cli/command.h"
#include "cli/common.h"
#include "core/strings.h"
#include "generate/generation_config.h"
#include "generate/generator.h"
#include "io/file_util.h"
#include "io/json.h"
#include "model/hf_model.h"
#include "tokenizer/chat_template.h"

namespace nemotron::cli {

namespace {

using Ids = std::vector<int32_t>;

// "1,2,3" or "[1, 2, 3]"; several sequences, of any lengths, separated by ';'.
std::vector<Ids> parse_ragged_ids(const std::string& text) {
  std::vector<Ids> rows;
  for (const std::string& row : split(text, ';')) {
    Ids ids;
    for (std::string tok : split(row, ',')) {
      std::erase_if(tok, [](char c) { return c == '[' || c == ']' || c == ' ' || c == '\n' || c == '\t'; });
      if (tok.empty()) continue;
      char* end = nullptr;
      const long long v = std::strtoll(tok.c_str(), &end, 10);
      NT_CHECK(end && *end == '\0' && v >= INT32_MIN && v <= INT32_MAX,
               "--input-ids: '{}' is not a token id (expected e.g. 1,2,3 or 1,2;3,4,5)", tok);
      ids.push_back(static_cast<int32_t>(v));
    }
    NT_CHECK(!ids.empty(), "--input-ids: sequence {} is empty", rows.size());
    rows.push_back(std::move(ids));
  }
  return rows;
}

// --eos-ids "2,11": one list for every sequence.
Ids parse_id_list(const std::string& flag, const std::string& text) {
  std::vector<Ids> rows = parse_ragged_ids(text);
  NT_CHECK(rows.size() == 1, "--{}: give one list of ids, e.g. 2,11", flag);
  return rows[0];
}

// --stop TEXT, or a JSON list of strings for several.
std::vector<std::string> parse_stop_strings(const std::string& text) {
  if (text.empty() || text.front() != '[') return {text};
  const json::Value list = json::parse(text, "--stop");
  NT_CHECK(list.is_array(), "--stop: expected a string or a JSON list of strings");
  std::vector<std::string> out;
  for (const json::Value& v : list.items()) {
    NT_CHECK(v.is_string(), "--stop: every entry of the list must be a string, got {}", json::dump(v));
    out.push_back(v.as_string());
  }
  return out;
}

void print(const std::string& s, FILE* f = stdout) {
  std::fwrite(s.data(), 1, s.size(), f);
  std::fflush(f);
}

std::string ids_json(const Ids& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  return s + "]";
}

generate::SamplingParams sampling_from_args(const Args& args) {
  generate::SamplingParams p;
  const double temperature = args.get_double("temperature", 1.0);
  NT_CHECK(temperature >= 0, "--temperature must be >= 0 (0: greedy), got {}", temperature);
  NT_CHECK(!(args.flag("do-sample") && args.has("temperature") && temperature == 0),
           "--do-sample with --temperature 0: temperature 0 means greedy decoding; give a temperature > 0");
  p.do_sample = args.flag("do-sample") || (args.has("temperature") && temperature > 0);
  if (!p.do_sample) {
    for (const char* flag : {"top-k", "top-p", "min-p", "seed"})
      NT_CHECK(!args.has(flag),
               "--{} only applies when sampling, and this run is greedy: add --temperature T (> 0) or --do-sample",
               flag);
  }
  p.temperature = args.has("temperature") && temperature > 0 ? temperature : 1.0;
  p.top_k = args.get_int("top-k", 0);
  p.top_p = args.get_double("top-p", 1.0);
  p.min_p = args.get_double("min-p", 0.0);
  p.repetition_penalty = args.get_double("repetition-penalty", 1.0);
  const int64_t seed = args.get_int("seed", 0);
  NT_CHECK(seed >= 0, "--seed must be >= 0, got {}", seed);
  p.seed = static_cast<uint64_t>(seed);
  p.validate();
  return p;
}

int run_generate(const Args& args) {
  checkpoint::Layout layout = layout_from_args(args);
  NT_CHECK(layout.tp == 1 && layout.ep == 1 && layout.pp == 1,
           "generation runs in one process for now: use --tp 1 --ep 1 --pp 1 (a checkpoint saved with any "
           "layout is resharded on load)");
  const std::optional<std::string> hf_dir = args.get("hf-model-path");
  const std::optional<std::string> native = args.get("megatron-load-path");
  NT_CHECK(hf_dir || native, "give the model: --hf-model DIR (HF checkpoint) or --megatron-load-path DIR (native "
                             "checkpoint)");

  // Settings that need no model are checked first, so that mistakes fail fast.
  const Device device = device_from_name(args.get_or("device", "auto"));
  const std::string dtype_name = args.get_or("dtype", "f32");
  NT_CHECK(dtype_name == "f32" || dtype_name == "bf16", "--dtype must be f32 or bf16, got '{}'", dtype_name);
  const DType compute_dtype = dtype_name == "bf16" ? DType::BF16 : DType::F32;
  NT_CHECK(compute_dtype == DType::F32 || !device.is_cpu(),
           "--dtype bf16 computes on a GPU only (the CPU computes in fp32), and this run is on the CPU{}: use "
           "--device cuda or --dtype f32",
           args.has("device") ? "" : " (--device auto found no GPU)");
  generate::GenerationConfig config;
  config.max_new_tokens = args.get_int("max-new-tokens", 32);
  NT_CHECK(config.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", config.max_new_tokens);
  config.sampling = sampling_from_args(args);
  config.prefill_chunk_size = args.get_int("prefill-chunk-size", 512);
  NT_CHECK(config.prefill_chunk_size >= 1, "--prefill-chunk-size must be >= 1, got {}", config.prefill_chunk_size);
  config.skip_special_tokens = args.flag("skip-special-tokens");
  if (auto spec = args.get("speculative")) {
    NT_CHECK(*spec == "mtp", "--speculative: only 'mtp' (the model's multi-token-prediction block) is supported, got '{}'",
             *spec);
    config.num_draft_tokens = args.get_int("num-draft-tokens", 3);
    NT_CHECK(config.num_draft_tokens >= 1, "--num-draft-tokens must be at least 1, got {}", config.num_draft_tokens);
  } else {
    NT_CHECK(!args.has("num-draft-tokens"), "--num-draft-tokens needs --speculative mtp");
  }
  const int inputs = args.has("prompt") + args.has("prompts") + args.has("input-ids");
  NT_CHECK(inputs == 1, "give exactly one of --prompt TEXT, --prompts 'A|B' or --input-ids 1,2,3");
  NT_CHECK(!args.flag("chat") || !args.has("input-ids"), "--chat applies to text prompts, not to --input-ids");

  // The model, and the directory with its side files (tokenizer, generation_config.json).
  HybridModel model = [&] {
    if (!native) return load_hf_model(*hf_dir);
    checkpoint::Reader reader = checkpoint::Reader::open(*native);
    HybridModel m(checkpoint::native_model_config(reader));
    checkpoint::load_native_weights(m, reader);
    return m;
  }();
  model.to(device);  // fp32 master weights; bf16 adds working copies of the GEMM matrices
  model.set_compute_dtype(compute_dtype);
  const std::string side_dir = native ? checkpoint::Reader::open(*native).dir() : *hf_dir;
  const std::string tokenizer_dir = args.get_or("tokenizer", hf_dir ? *hf_dir : side_dir);
  std::optional<tokenizer::Tokenizer> tok;
  if (args.has("tokenizer") || io::path_exists(io::join_path(tokenizer_dir, "tokenizer.json")))
    tok = tokenizer::Tokenizer::from_directory(tokenizer_dir);
  if (config.num_draft_tokens > 0)
    NT_CHECK(model.config.has_mtp(),
             "--speculative mtp needs a model with an MTP block; this one has none (config.json "
             "num_nextn_predict_layers is 0)");

  if (args.flag("ignore-eos")) {
    NT_CHECK(!args.has("eos-ids"), "give either --eos-ids or --ignore-eos, not both");
  } else if (auto e = args.get("eos-ids")) {
    config.eos_ids = parse_id_list("eos-ids", *e);
  } else {
    config.eos_ids = generate::eos_ids_from_model_dir(side_dir);
    if (config.eos_ids.empty() && hf_dir) config.eos_ids = generate::eos_ids_from_model_dir(*hf_dir);
  }
  if (auto s = args.get("stop")) {
    config.stop_strings = parse_stop_strings(*s);
    NT_CHECK(tok.has_value(), "--stop needs a tokenizer to see the text: {} has no tokenizer.json (pass --tokenizer DIR)",
             tokenizer_dir);
  }

  // The prompts as ids.
  std::vector<Ids> prompts;
  if (auto ids = args.get("input-ids")) {
    prompts = parse_ragged_ids(*ids);
  } else {
    NT_CHECK(tok.has_value(), "--prompt needs a tokenizer: {} has no tokenizer.json; pass --tokenizer DIR or --input-ids",
             tokenizer_dir);
    std::vector<std::string> texts =
        args.has("prompt") ? std::vector<std::string>{args.require("prompt")} : split(args.require("prompts"), '|');
    for (const std::string& text : texts) {
      if (args.flag("chat")) {
        json::Value message = json::Value::object();
        message["role"] = "user";
        message["content"] = text;
        tokenizer::ChatOptions o;
        o.add_generation_prompt = true;
        o.enable_thinking = !args.flag("no-thinking");
        const std::string rendered =
            tokenizer::apply_chat_template(*tok, json::Value::array({message}), json::Value(), o);
        prompts.push_back(tok->encode(rendered, false));  // the template writes every special token
      } else {
        prompts.push_back(tok->encode(text));  // the tokenizer's own special tokens, as the Bridge scripts
      }
      NT_CHECK(!prompts.back().empty(), "prompt {} encodes to no tokens", prompts.size() - 1);
    }
  }

  const bool print_ids = args.flag("print-ids") || !tok.has_value();
  generate::Generator gen(model, print_ids ? nullptr : &*tok);
  // One sequence streams its text; several are printed when all are done, each after its prompt.
  const bool stream = !print_ids && prompts.size() == 1;
  generate::TextCallback on_text;
  if (stream) on_text = [](size_t, std::string_view piece) { print(std::string(piece)); };
  const std::vector<generate::SequenceOutput> out = gen.generate(prompts, config, on_text);

  for (size_t i = 0; i < out.size(); ++i) {
    if (print_ids) {
      print(ids_json(out[i].tokens) + "\n");
    } else if (stream) {
      print("\n");
    } else {
      print(fmt::format("Prompt {}: {}\nGenerated: {}\n", i, tok->decode(prompts[i]), out[i].text));
    }
  }
  std::string stops;
  for (size_t i = 0; i < out.size(); ++i)
    stops += fmt::format("{}{}", i ? ", " : "", generate::stop_reason_name(out[i].reason));
  print(gen.stats().summary() + " | stopped by: " + stops + "\n", stderr);
  return 0;
}

}  // namespace

Command generate_command() {
  std::vector<FlagSpec> flags = {
      {"hf-model-path", "HF model directory (config.json, safetensors, tokenizer)", true, "", {"hf-model", "hf-model-id"}},
      {"megatron-load-path", "native checkpoint to load the weights from (its tokenizer and generation_config.json "
                             "are used unless --hf-model/--tokenizer say otherwise)", true, "",
       {"megatron-model-path", "megatron-path"}},
      {"tokenizer", "directory with tokenizer.json (default: the model directory)", true, "", {"tokenizer-model"}},
      {"prompt", "text to continue", true, "", {}},
      {"prompts", "several texts separated by '|' (as ptq_generate.py)", true, "", {}},
      {"input-ids", "token ids to continue: 1,2,3; several sequences of any lengths: 1,2;3,4,5", true, "", {}},
      {"chat", "wrap each prompt as a user message in the tokenizer's chat template", false, "", {}},
      {"no-thinking", "--chat: enable_thinking=False", false, "", {}},
      {"max-new-tokens", "tokens to generate per sequence at most", true, "32", {"osl"}},
      {"temperature", "sampling temperature; > 0 turns sampling on (0: greedy)", true, "greedy", {}},
      {"do-sample", "sample (at --temperature, default 1) instead of greedy decoding", false, "", {}},
      {"top-k", "sampling: keep the k most likely tokens (0: all)", true, "0", {}},
      {"top-p", "sampling: keep the smallest set of most likely tokens with probability >= p", true, "1", {}},
      {"min-p", "sampling: drop tokens below min-p x the top probability", true, "0", {}},
      {"repetition-penalty", "divide positive (multiply negative) logits of tokens already present", true, "1", {}},
      {"seed", "sampling seed (xoshiro256**; sequence i uses stream i)", true, "0", {}},
      {"eos-ids", "stop ids, e.g. 2,11 (default: generation_config.json, else config.json eos_token_id)", true, "", {}},
      {"ignore-eos", "do not stop at eos ids", false, "", {}},
      {"stop", "stop when the text contains this string (a JSON list of strings for several)", true, "", {}},
      {"speculative", "speculative decoding method: mtp (the model's multi-token-prediction block)", true, "", {}},
      {"num-draft-tokens", "--speculative: draft tokens per round", true, "3", {"num-speculative-tokens"}},
      {"device", "auto (a GPU when there is one), cpu or cuda", true, "auto", {}},
      {"dtype", "compute dtype: f32, or bf16 (GPU only: bf16 weights and activations, fp32 norms, router, SSM "
                "state and KV cache)", true, "f32", {}},
      {"prefill-chunk-size", "prompt positions per prefill step", true, "512", {}},
      {"print-ids", "print the generated ids as a JSON list per sequence (default without a tokenizer)", false, "", {}},
      {"skip-special-tokens", "leave special tokens out of the printed text", false, "", {}},
      {"trust-remote-code", "accepted for compatibility with the Bridge script", false, "", {}},
  };
  append_layout_flags(flags);
  return {"generate", "generate text with caches, sampling and MTP speculative decoding (ptq_generate.py)",
          "Usage: nemotron generate (--hf-model DIR | --megatron-load-path DIR) (--prompt TEXT | --prompts 'A|B' |\n"
          "                         --input-ids 1,2,3) [--chat] [--max-new-tokens N] [--temperature T] [--top-k K]\n"
          "                         [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]\n"
          "                         [--speculative mtp --num-draft-tokens K] [--device auto|cpu|cuda] [--dtype f32|bf16]\n"
          "                         [--print-ids]\n\n"
          "Greedy unless --temperature > 0 or --do-sample. One prompt streams its text as it is generated;\n"
          "several are printed when done. Without a tokenizer (or with --print-ids) the generated ids are\n"
          "printed as a JSON list per sequence. A statistics line goes to stderr at the end: prefill and\n"
          "decode tokens/s, and for --speculative mtp the mean accepted length (tokens per verification\n"
          "round) and the acceptance rate of each draft position. Greedy speculative decoding gives the same\n"
          "tokens as greedy decoding; sampled speculative decoding has the same distribution but other draws.",
          flags, run_generate};
}

}  // namespace nemotron::cli
