// `nemotron preprocess`: JSONL → Megatron indexed dataset, the flags and file names of Megatron-LM's
// tools/preprocess_data.py (without sentence splitting).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "cli/command.h"
#include "core/error.h"
#include "core/strings.h"
#include "core/thread_pool.h"
#include "data/indexed_dataset.h"
#include "data/preprocess.h"
#include "tokenizer/tokenizer.h"

namespace nemotron::cli {

namespace {

int run_preprocess(const Args& args) {
  if (auto type = args.get("tokenizer-type"))
    NT_CHECK(*type == "HuggingFaceTokenizer",
             "--tokenizer-type {} is not supported: only HuggingFaceTokenizer (a tokenizer.json)", *type);
  NT_CHECK(!args.flag("split-sentences"), "--split-sentences (NLTK punkt) is not supported");
  NT_CHECK(args.get_int("partitions", 1) == 1, "--partitions > 1 is not supported; one process streams any size");

  data::PreprocessOptions o;
  o.input = args.require("input");
  o.output_prefix = args.require("output-prefix");
  o.append_eod = args.flag("append-eod");
  o.add_special_tokens = !args.flag("tokenizer-hf-no-include-special-tokens");
  o.skip_malformed = args.flag("skip-malformed");
  o.log_interval = args.get_int("log-interval", 1000);
  // Megatron takes `--json-keys text title`: the words after the first arrive as positionals.
  o.json_keys.clear();
  std::string keys = args.get_or("json-keys", "text");
  std::replace(keys.begin(), keys.end(), ' ', ',');
  for (const std::string& part : split(keys, ','))
    if (!part.empty()) o.json_keys.push_back(part);
  for (const std::string& extra : args.positionals()) {
    NT_CHECK(args.has("json-keys"), "unexpected argument '{}'", extra);
    o.json_keys.push_back(extra);
  }
  if (args.has("workers")) {
    const int64_t workers = args.get_int("workers", 1);
    NT_CHECK(workers >= 1, "--workers must be at least 1, got {}", workers);
    set_num_threads(static_cast<int>(workers));
  }

  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_directory(args.require("tokenizer"));
  std::fprintf(stderr, "Opening %s (vocabulary %lld, %s, %d workers)\n", o.input.c_str(),
               static_cast<long long>(tok.vocab_size()),
               data::token_dtype_name(data::optimal_token_dtype(tok.vocab_size())), num_threads());
  const data::PreprocessStats s =
      data::preprocess_jsonl(o, tok, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
  for (const std::string& key : o.json_keys)
    std::printf("wrote %s.{bin,idx}\n", data::preprocess_output_prefix(o.output_prefix, key).c_str());
  std::printf("%lld documents, %lld tokens, %.1f MB in %.2f s (%.2f MB/s)", static_cast<long long>(s.documents),
              static_cast<long long>(s.tokens), s.bytes / 1e6, s.seconds, s.bytes / 1e6 / std::max(s.seconds, 1e-9));
  if (s.skipped) std::printf(", %lld malformed lines skipped", static_cast<long long>(s.skipped));
  if (s.blank) std::printf(", %lld blank lines ignored", static_cast<long long>(s.blank));
  std::printf("\n");
  return 0;
}

}  // namespace

Command preprocess_command() {
  return {"preprocess",
          "tokenize JSONL into a Megatron indexed dataset (.bin/.idx), as tools/preprocess_data.py",
          "Usage: nemotron preprocess --input FILE.jsonl --output-prefix PREFIX --tokenizer DIR\n"
          "                           [--json-keys text] [--append-eod] [--workers N] [--skip-malformed]\n\n"
          "Writes PREFIX_KEY_document.bin/.idx for every JSON key (uint16 ids when the vocabulary is below\n"
          "65500, else int32), byte-identical to Megatron's writer for the same ids. Each line is a JSON\n"
          "object; a key holds a string or a list of strings (one sequence each). The input is streamed,\n"
          "so it may be larger than memory; --input - reads standard input. A malformed line stops the run\n"
          "with its line number unless --skip-malformed.",
          {
              {"input", "JSONL file, or - for standard input"},
              {"output-prefix", "output path without the _KEY_document.{bin,idx} suffix"},
              {"tokenizer", "directory with tokenizer.json and tokenizer_config.json", true, "", {"tokenizer-model"}},
              {"tokenizer-type", "accepted for compatibility; must be HuggingFaceTokenizer"},
              {"json-keys", "JSON keys to tokenize, comma- or space-separated", true, "text"},
              {"append-eod", "append the tokenizer's eos token to every non-empty document", false},
              {"workers", "encoding threads", true, "all cores"},
              {"skip-malformed", "skip (and count) malformed lines instead of stopping", false},
              {"log-interval", "documents between progress lines", true, "1000"},
              {"tokenizer-hf-no-include-special-tokens", "encode without the post-processor's special tokens",
               false, "", {"no-special-tokens"}},
              {"split-sentences", "not supported (NLTK); an error if given", false},
              {"partitions", "accepted for compatibility; must be 1", true, "1"},
          },
          run_preprocess};
}

}  // namespace nemotron::cli
