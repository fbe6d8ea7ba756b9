#include "data/preprocess.h"

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include <sys/types.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "data/indexed_dataset.h"
#include "io/json.h"

namespace nemotron::data {

namespace {

// One input line after parsing and encoding (done in parallel, consumed in input order).
struct EncodedLine {
  int64_t line_number = 0;
  bool blank = false;
  std::string error;  // non-empty: malformed
  std::vector<std::vector<int32_t>> ids, lengths;  // per key
};

void encode_line(const std::string& line, const PreprocessOptions& o, const tokenizer::Tokenizer& tok,
                 std::optional<int32_t> eod, EncodedLine& out) {
  if (line.find_first_not_of(" \t\r") == std::string::npos) {
    out.blank = true;
    return;
  }
  json::Value doc;
  try {
    doc = json::parse(line, fmt::format("line {}", out.line_number));
  } catch (const Error& e) {
    out.error = fmt::format("malformed JSON: {}", e.what());
    return;
  }
  if (!doc.is_object()) {
    out.error = fmt::format("expected a JSON object, found {}", json::Value::kind_name(doc.kind()));
    return;
  }
  out.ids.resize(o.json_keys.size());
  out.lengths.resize(o.json_keys.size());
  for (size_t k = 0; k < o.json_keys.size(); ++k) {
    const json::Value* value = doc.find(o.json_keys[k]);
    if (!value) {
      out.error = fmt::format("no key '{}' (use --json-keys to name the text field)", o.json_keys[k]);
      return;
    }
    // A string is one sentence; a list of strings is a pre-split document (one sequence each).
    std::vector<const std::string*> sentences;
    if (value->is_string()) {
      sentences.push_back(&value->as_string());
    } else if (value->is_array()) {
      for (const json::Value& s : value->items()) {
        if (!s.is_string()) {
          out.error = fmt::format("key '{}' is a list with a non-string element", o.json_keys[k]);
          return;
        }
        sentences.push_back(&s.as_string());
      }
    } else {
      out.error = fmt::format("key '{}' is {}, expected a string or a list of strings", o.json_keys[k],
                              json::Value::kind_name(value->kind()));
      return;
    }
    std::vector<int32_t>& ids = out.ids[k];
    std::vector<int32_t>& lengths = out.lengths[k];
    for (const std::string* sentence : sentences) {
      std::vector<int32_t> sentence_ids = tok.encode(*sentence, o.add_special_tokens);
      if (sentence_ids.empty()) continue;
      ids.insert(ids.end(), sentence_ids.begin(), sentence_ids.end());
      lengths.push_back(static_cast<int32_t>(sentence_ids.size()));
    }
    if (!ids.empty() && o.append_eod) {
      ids.push_back(*eod);
      lengths.back() += 1;
    }
  }
}

}  // namespace

std::string preprocess_output_prefix(const std::string& output_prefix, const std::string& key) {
  return fmt::format("{}_{}_document", output_prefix, key);
}

PreprocessStats preprocess_jsonl(const PreprocessOptions& o, const tokenizer::Tokenizer& tok,
                                 const std::function<void(const std::string&)>& progress) {
  NT_CHECK(!o.json_keys.empty(), "preprocess: no --json-keys given");
  const std::optional<int32_t> eod = tok.eos_id();
  NT_CHECK(!o.append_eod || eod,
           "preprocess: --append-eod needs the tokenizer's eos_token, but tokenizer_config.json names none (or "
           "names a token that is not in the vocabulary)");

  const bool from_stdin = o.input == "-";
  std::FILE* in = from_stdin ? stdin : std::fopen(o.input.c_str(), "rb");
  NT_CHECK(in, "cannot open input {}: {}", o.input, std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(from_stdin ? nullptr : in, &std::fclose);

  const TokenDType dtype = optimal_token_dtype(tok.vocab_size());
  NT_CHECK(dtype != TokenDType::UInt16 || tok.id_limit() <= 65536,
           "preprocess: the vocabulary has {} tokens but ids up to {}; they do not fit uint16", tok.vocab_size(),
           tok.id_limit() - 1);
  std::vector<std::unique_ptr<IndexedDatasetBuilder>> builders;
  for (const std::string& key : o.json_keys)
    builders.push_back(std::make_unique<IndexedDatasetBuilder>(preprocess_output_prefix(o.output_prefix, key), dtype));

  PreprocessStats stats;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  int64_t line_number = 0;
  std::vector<std::string> lines;
  std::vector<EncodedLine> encoded;
  // getline's buffer, grown by getline itself and freed on every exit path.
  struct LineBuffer {
    char* data = nullptr;
    size_t capacity = 0;
    ~LineBuffer() { std::free(data); }
  } buf;
  bool eof = false;
  while (!eof) {
    // Read one batch of lines.
    lines.clear();
    size_t batch_bytes = 0;
    while (batch_bytes < o.batch_bytes) {
      const ssize_t n = ::getline(&buf.data, &buf.capacity, in);
      if (n < 0) {
        NT_CHECK(!std::ferror(in), "cannot read {}: {}", o.input, std::strerror(errno));
        eof = true;
        break;
      }
      stats.bytes += n;
      size_t len = static_cast<size_t>(n);
      if (len > 0 && buf.data[len - 1] == '\n') --len;
      if (len > 0 && buf.data[len - 1] == '\r') --len;
      lines.emplace_back(buf.data, len);
      batch_bytes += len + 64;
    }
    // Parse and encode in parallel.
    encoded.assign(lines.size(), EncodedLine{});
    for (size_t i = 0; i < lines.size(); ++i) encoded[i].line_number = line_number + 1 + static_cast<int64_t>(i);
    line_number += static_cast<int64_t>(lines.size());
    parallel_for(static_cast<int64_t>(lines.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) encode_line(lines[i], o, tok, eod, encoded[i]);
    });
    // Write in input order.
    for (EncodedLine& line : encoded) {
      if (line.blank) {
        ++stats.blank;
        continue;
      }
      if (!line.error.empty()) {
        NT_CHECK(o.skip_malformed, "{}:{}: {} (pass --skip-malformed to skip such lines)", o.input, line.line_number,
                 line.error);
        ++stats.skipped;
        if (progress && stats.skipped <= 10)
          progress(fmt::format("skipping {}:{}: {}", o.input, line.line_number, line.error));
        continue;
      }
      for (size_t k = 0; k < builders.size(); ++k) {
        builders[k]->add_document(line.ids[k], line.lengths[k]);
        stats.tokens += static_cast<int64_t>(line.ids[k].size());
      }
      ++stats.documents;
      if (progress && o.log_interval > 0 && stats.documents % o.log_interval == 0) {
        const double t = std::max(elapsed(), 1e-9);
        progress(fmt::format("Processed {} documents ({:.1f} docs/s, {:.2f} MB/s).", stats.documents,
                             stats.documents / t, stats.bytes / t / 1024 / 1024));
      }
    }
  }
  for (auto& b : builders) b->finalize();
  stats.seconds = elapsed();
  return stats;
}

}  // namespace nemotron::data
