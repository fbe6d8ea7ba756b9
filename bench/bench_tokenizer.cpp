// Tokenizer throughput: MB of text per second (per core and on all threads) for encode and decode.
//
//   bench_tokenizer [--tokenizer DIR] [--input FILE] [--mb N] [--threads N] [--write-corpus FILE]
//
// Without --input, a deterministic mixed corpus (English-like prose, code, accented Latin, Cyrillic,
// CJK, emoji) of --mb megabytes is generated; --write-corpus saves it (one document per line, JSON
// escaped) so that tools/bench_hf_tokenizer.py measures HF `tokenizers` on the very same text.
// Prints a table, then one JSON line per result.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/json.h"
#include "tokenizer/tokenizer.h"

using nemotron::tokenizer::Tokenizer;

namespace {

std::vector<std::string> make_corpus(size_t bytes) {
  const std::vector<std::string> words = {
      "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "model", "training", "data",
      "people", "don't", "can't", "we're", "HELLO", "World", "Megatron", "throughput", "benchmark", "2024",
      "3.14159", "élève", "café", "naïve", "Straße", "Привет", "мир", "быстро", "你好", "世界", "分词器",
      "こんにちは", "😀", "🚀", "information", "international", "representation", "a", "of", "and", "to", "in"};
  const std::vector<std::string> code = {
      "def main(argv):\n    return 0\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
      "    if x is not None:\n        print(f\"{x!r}\")\n", "#include <vector>\nstd::vector<int> v{1, 2, 3};\n"};
  std::mt19937 rng(1234);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < bytes) {
    std::string doc;
    const size_t target = 500 + rng() % 3000;
    while (doc.size() < target) {
      if (rng() % 20 == 0) {
        doc += code[rng() % code.size()];
        continue;
      }
      // Mostly common words (as real text), sometimes a rare made-up one.
      if (rng() % 10 == 0) {
        std::string w;
        for (int k = 0, n = 3 + static_cast<int>(rng() % 8); k < n; ++k) w += static_cast<char>('a' + rng() % 26);
        doc += w;
      } else {
        doc += words[std::min<size_t>(rng() % words.size(), rng() % words.size())];
      }
      const unsigned p = rng() % 30;
      doc += p == 0 ? ". " : p == 1 ? ", " : p == 2 ? "\n" : p == 3 ? "  " : " ";
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

std::vector<std::string> read_corpus(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> docs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto v = nemotron::json::parse(line);
    docs.push_back(v.is_string() ? v.as_string() : v.at("text").as_string());
  }
  return docs;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  std::string what;
  int threads;
  double mb_per_s;
  double tokens_per_s;
};

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_dir = std::string(NEMOTRON_TEST_DATA) + "/tokenizer/nemotron_style";
  std::string input, write_corpus;
  double mb = 8;
  int threads = nemotron::num_threads();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--tokenizer") tokenizer_dir = value;
    else if (flag == "--input") input = value;
    else if (flag == "--mb") mb = std::stod(value);
    else if (flag == "--threads") threads = std::stoi(value);
    else if (flag == "--write-corpus") write_corpus = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const Tokenizer tok = Tokenizer::from_directory(tokenizer_dir);
  const std::vector<std::string> docs = input.empty() ? make_corpus(static_cast<size_t>(mb * 1e6)) : read_corpus(input);
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  if (!write_corpus.empty()) {
    std::ofstream out(write_corpus);
    for (const auto& d : docs) out << nemotron::json::dump(nemotron::json::Value(d)) << "\n";
  }

  std::vector<Result> results;
  // One thread, first pass (cold word cache) and second pass (warm).
  size_t tokens = 0;
  std::vector<std::vector<int32_t>> ids(docs.size());
  for (int pass = 0; pass < 2; ++pass) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < docs.size(); ++i) {
      ids[i] = tok.encode(docs[i]);
      tokens += ids[i].size();
    }
    const double s = seconds_since(t0);
    results.push_back({pass == 0 ? "encode, 1 thread, cold cache" : "encode, 1 thread", 1, bytes / s / 1e6, tokens / s});
  }
  // All threads (the process pool).
  nemotron::set_num_threads(threads);
  {
    const auto t0 = std::chrono::steady_clock::now();
    const auto batch = tok.encode_batch(docs, true, 0);
    const double s = seconds_since(t0);
    results.push_back({fmt::format("encode_batch, {} threads", threads), threads, bytes / s / 1e6, tokens / s});
  }
  {
    const auto t0 = std::chrono::steady_clock::now();
    size_t out_bytes = 0;
    for (const auto& v : ids) out_bytes += tok.decode(v).size();
    const double s = seconds_since(t0);
    results.push_back({"decode, 1 thread", 1, out_bytes / s / 1e6, tokens / s});
  }

  std::printf("tokenizer %s, %zu documents, %.1f MB, %zu tokens (%.2f bytes/token)\n", tokenizer_dir.c_str(),
              docs.size(), bytes / 1e6, tokens, static_cast<double>(bytes) / static_cast<double>(tokens));
  std::printf("%-32s %8s %12s %14s\n", "case", "threads", "MB/s", "tokens/s");
  for (const Result& r : results)
    std::printf("%-32s %8d %12.2f %14.0f\n", r.what.c_str(), r.threads, r.mb_per_s, r.tokens_per_s);
  for (const Result& r : results)
    std::printf("{\"bench\": \"tokenizer\", \"case\": \"%s\", \"threads\": %d, \"mb_per_s\": %.3f, \"tokens_per_s\": %.0f}\n",
                r.what.c_str(), r.threads, r.mb_per_s, r.tokens_per_s);
  return 0;
}
