// JSONL → Megatron indexed dataset, as Megatron-LM's tools/preprocess_data.py does (without
// sentence splitting): each line is a JSON object; for every key, its text (or list of texts) is
// tokenized, empty results are dropped, EOD is appended when asked, and the document goes to
// PREFIX_KEY_document.{bin,idx} with dtype uint16 when the vocabulary is < 65500, else int32.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace nemotron::data {

struct PreprocessOptions {
  std::string input;          // JSONL file ("-" for stdin)
  std::string output_prefix;  // files are OUTPUT_PREFIX_KEY_document.{bin,idx}
  std::vector<std::string> json_keys{"text"};
  bool append_eod = false;
  // Megatron's HuggingFaceTokenizer encodes with the post-processor (e.g. BOS) unless
  // --tokenizer-hf-no-include-special-tokens.
  bool add_special_tokens = true;
  bool skip_malformed = false;  // default: a malformed line is fatal
  int64_t log_interval = 1000;  // documents between progress lines; <= 0: none
  size_t batch_bytes = 8 << 20;  // text read and encoded in parallel per batch
};

struct PreprocessStats {
  int64_t documents = 0;   // lines turned into documents
  int64_t skipped = 0;     // malformed lines skipped (skip_malformed)
  int64_t blank = 0;       // empty lines, ignored
  int64_t tokens = 0;      // over all keys
  int64_t bytes = 0;       // input bytes read
  double seconds = 0;
};

// Encodes on the process thread pool (nemotron::set_num_threads sets the worker count).
// `progress` receives each progress line (default: none).
PreprocessStats preprocess_jsonl(const PreprocessOptions& options, const tokenizer::Tokenizer& tokenizer,
                                 const std::function<void(const std::string&)>& progress = {});

std::string preprocess_output_prefix(const std::string& output_prefix, const std::string& key);

}  // namespace nemotron::data
