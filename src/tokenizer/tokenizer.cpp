#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/json.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

// Leftmost-longest, non-overlapping matching of added tokens (HF uses an Aho-Corasick automaton
// with MatchKind::LeftmostLongest; a byte trie gives the same matches).
class TokenTrie {
 public:
  void insert(std::string_view key, int32_t token_index) {
    if (key.empty()) return;
    int32_t node = 0;
    for (char ch : key) {
      const auto b = static_cast<unsigned char>(ch);
      auto& kids = nodes_[node].children;
      auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t{-1}));
      if (it != kids.end() && it->first == b) {
        node = it->second;
      } else {
        const auto child = static_cast<int32_t>(nodes_.size());
        kids.insert(it, {b, child});
        nodes_.emplace_back();
        node = child;
      }
    }
    nodes_[node].token_index = token_index;
    first_byte_[static_cast<unsigned char>(key[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }

  // The next match at or after `from`: (begin, end, token index), or begin == npos.
  struct Match {
    size_t begin, end;
    int32_t token_index;
  };
  Match find(std::string_view text, size_t from) const {
    for (size_t i = from; i < text.size(); ++i) {
      if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
      int32_t node = 0, best = -1;
      size_t best_end = 0;
      for (size_t k = i; k < text.size(); ++k) {
        const auto b = static_cast<unsigned char>(text[k]);
        const auto& kids = nodes_[node].children;
        auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t{-1}));
        if (it == kids.end() || it->first != b) break;
        node = it->second;
        if (nodes_[node].token_index >= 0) {
          best = nodes_[node].token_index;
          best_end = k + 1;
        }
      }
      if (best >= 0) return {i, best_end, best};
    }
    return {std::string_view::npos, 0, -1};
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token_index = -1;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_byte_{};
};

bool is_word_char(char32_t c) { return c == '_' || is_alphanumeric(c); }

char32_t last_char(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

// Start of the whitespace run that ends `s` (HF space_leftmost_at_end).
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!is_whitespace(next_code_point(s, i))) break;
    end = start;
  }
  return end;
}

// Length of the whitespace run that starts `s` (HF space_rightmost_at_start).
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t next = i;
    if (!is_whitespace(next_code_point(s, next))) break;
    i = next;
  }
  return i;
}

// The post-processor, reduced to what single-sequence encoding needs: ids before and after.
struct PostProcessor {
  std::vector<int32_t> prefix, suffix;
};

void add_processor(const json::Value& spec, PostProcessor& pp) {
  if (spec.is_null()) return;
  const std::string& type = spec.at("type").as_string();
  if (type == "ByteLevel") return;  // only changes offsets
  if (type == "Sequence") {
    for (const json::Value& p : spec.at("processors").items()) add_processor(p, pp);
    return;
  }
  if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    const json::Value& specials = spec.at("special_tokens");
    for (const json::Value& piece : spec.at("single").items()) {
      if (piece.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const std::string& name = piece.at("SpecialToken").at("id").as_string();
      const json::Value* special = specials.find(name);
      NT_CHECK(special, "tokenizer.json: TemplateProcessing uses special token '{}' missing from special_tokens", name);
      auto& target = seen_sequence ? pp.suffix : pp.prefix;
      for (const json::Value& id : special->at("ids").items()) target.push_back(static_cast<int32_t>(id.as_int()));
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    pp.prefix.push_back(static_cast<int32_t>(spec.at("cls").items()[1].as_int()));
    pp.suffix.insert(pp.suffix.begin(), static_cast<int32_t>(spec.at("sep").items()[1].as_int()));
    return;
  }
  fail("tokenizer.json: post_processor type '{}' is not supported (supported: TemplateProcessing, ByteLevel, "
       "RobertaProcessing, BertProcessing, Sequence)",
       type);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NT_CHECK(in, "cannot open '{}'", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "eos_token": "</s>" or {"content": "</s>", ...}.
std::optional<std::string> token_field(const json::Value& config, std::string_view key) {
  const json::Value* v = config.find(key);
  if (!v || v->is_null()) return std::nullopt;
  if (v->is_string()) return v->as_string();
  if (v->is_object() && v->contains("content")) return v->at("content").as_string();
  return std::nullopt;
}

std::atomic<uint64_t> next_serial{1};

}  // namespace

struct Tokenizer::Impl {
  uint64_t serial = next_serial++;  // identifies this tokenizer in per-thread caches
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Decoder> decoder;
  PostProcessor post;
  std::vector<AddedToken> added;
  // What an added token decodes to: its content, normalized when it is a "normalized" token (HF
  // keeps the normalized form as the token string).
  std::vector<std::string> added_text;
  std::unordered_map<int32_t, size_t> added_by_id;  // id -> index in `added`
  TokenMap added_by_content;
  TokenTrie raw_trie, normalized_trie;
  int64_t vocab_size = 0, id_limit = 0;
  std::optional<std::string> eos_token, bos_token;
  std::string chat_template;

  // `origin`: how many leading bytes of `text` derive from the input's first char (see Pieces).
  void encode_text(std::string_view text, size_t origin, std::vector<int32_t>& out) const;
  void encode_normalized(std::string_view text, size_t origin, std::vector<int32_t>& out) const;
  void split_added(std::string_view text, const TokenTrie& trie, size_t origin, std::vector<int32_t>& out,
                   void (Impl::*rest)(std::string_view, size_t, std::vector<int32_t>&) const) const;
  void encode_words(std::string_view text, size_t origin, std::vector<int32_t>& out) const;
};

// HF AddedVocabulary::find_matches: splits `text` around added tokens found by `trie`, applying
// single_word / lstrip / rstrip; the text between matches goes to `rest`.
void Tokenizer::Impl::split_added(std::string_view text, const TokenTrie& trie, size_t origin,
                                  std::vector<int32_t>& out,
                                  void (Impl::*rest)(std::string_view, size_t, std::vector<int32_t>&) const) const {
  if (trie.empty()) {
    (this->*rest)(text, origin, out);
    return;
  }
  auto origin_at = [&](size_t b) { return origin > b ? origin - b : 0; };
  size_t consumed = 0, search = 0;
  while (search < text.size()) {
    const TokenTrie::Match m = trie.find(text, search);
    if (m.begin == std::string_view::npos) break;
    search = m.end;
    const AddedToken& token = added[m.token_index];
    size_t begin = m.begin, end = m.end;
    if (token.single_word) {
      const bool space_before = begin == 0 || !is_word_char(last_char(text.substr(0, begin)));
      size_t after = end;
      const bool space_after = end == text.size() || !is_word_char(next_code_point(text, after));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) begin = std::max(trailing_space_start(text.substr(0, begin)), consumed);
    if (token.rstrip) end += leading_space_length(text.substr(end));
    if (consumed < begin) (this->*rest)(text.substr(consumed, begin - consumed), origin_at(consumed), out);
    out.push_back(token.id);
    consumed = end;
  }
  if (consumed < text.size()) (this->*rest)(text.substr(consumed), origin_at(consumed), out);
}

void Tokenizer::Impl::encode_text(std::string_view text, size_t origin, std::vector<int32_t>& out) const {
  split_added(text, raw_trie, origin, out, &Impl::encode_normalized);
}

void Tokenizer::Impl::encode_normalized(std::string_view text, size_t origin, std::vector<int32_t>& out) const {
  if (!normalizer) {
    split_added(text, normalized_trie, origin, out, &Impl::encode_words);
    return;
  }
  size_t origin_chars = 0;
  for (size_t i = 0; i < std::min(origin, text.size()); ++i) origin_chars += (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
  const std::string normalized = normalizer->normalize(text, origin_chars);
  size_t origin_bytes = 0;
  for (size_t k = 0; k < origin_chars && origin_bytes < normalized.size(); ++k)
    origin_bytes += utf8_length(static_cast<unsigned char>(normalized[origin_bytes]));
  split_added(normalized, normalized_trie, origin_bytes, out, &Impl::encode_words);
}

namespace {

// Recent words and their ids, per thread (HF keeps a similar cache inside its BPE model).
struct WordCache {
  static constexpr size_t kMaxEntries = 1 << 16;
  static constexpr size_t kMaxWordBytes = 128;
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
};

}  // namespace

void Tokenizer::Impl::encode_words(std::string_view text, size_t origin, std::vector<int32_t>& out) const {
  thread_local WordCache cache;
  if (cache.owner != serial) {
    cache.map.clear();
    cache.owner = serial;
  }
  thread_local Pieces input, words;
  input.clear();
  words.clear();
  input.add(text, origin);
  const Pieces* pieces = &input;
  if (pre_tokenizer) {
    pre_tokenizer->pre_tokenize(input, words);
    pieces = &words;
  }
  for (size_t i = 0; i < pieces->size(); ++i) {
    const std::string_view word = (*pieces)[i];
    if (word.size() > WordCache::kMaxWordBytes) {
      model->tokenize(word, out);
      continue;
    }
    if (auto it = cache.map.find(word); it != cache.map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      continue;
    }
    const size_t before = out.size();
    model->tokenize(word, out);
    if (cache.map.size() >= WordCache::kMaxEntries) cache.map.clear();
    cache.map.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()));
  }
}

Tokenizer Tokenizer::from_json_text(std::string_view text, std::string_view source) {
  const json::Value root = json::parse(text, source);
  auto impl = std::make_shared<Impl>();
  if (const json::Value* t = root.find("truncation"); t && !t->is_null())
    fail("{}: 'truncation' is set; truncating inside the tokenizer is not supported (set it to null)", source);
  if (const json::Value* p = root.find("padding"); p && !p->is_null()) {
    const json::Value* strategy = p->find("strategy");
    NT_CHECK(!strategy || strategy->is_string(),
             "{}: padding to a fixed length is not supported (set 'padding' to null)", source);
  }
  const json::Value& model = root.at("model");
  const json::Value* model_type = model.find("type");
  const std::string type = model_type ? model_type->as_string() : (model.contains("merges") ? "BPE" : "unknown");
  NT_CHECK(type == "BPE", "{}: model type '{}' is not supported (only BPE)", source, type);
  impl->model = std::make_unique<BpeModel>(model);
  impl->normalizer = make_normalizer(root.at("normalizer"));
  impl->pre_tokenizer = make_pre_tokenizer(root.at("pre_tokenizer"));
  impl->decoder = make_decoder(root.at("decoder"));
  add_processor(root.at("post_processor"), impl->post);

  // Added tokens get their ids the way HF assigns them when it loads the file (the "id" fields are
  // only checked there, with a warning): a token already in the model's vocab keeps that id, a new
  // one gets the next id after the vocab and the previously added tokens.
  const auto model_size = static_cast<int32_t>(impl->model->vocab().size());
  std::optional<int32_t> max_added;
  if (const json::Value* added = root.find("added_tokens")) {
    for (const json::Value& a : added->items()) {
      AddedToken t;
      t.content = a.at("content").as_string();
      auto flag = [&](const char* key, bool fallback) {
        const json::Value* v = a.find(key);
        return v && !v->is_null() ? v->as_bool() : fallback;
      };
      t.single_word = flag("single_word", false);
      t.lstrip = flag("lstrip", false);
      t.rstrip = flag("rstrip", false);
      t.special = flag("special", false);
      t.normalized = flag("normalized", !t.special);
      if (t.content.empty() || impl->added_by_content.count(t.content)) continue;  // HF ignores these
      if (auto id = impl->model->token_to_id(t.content))
        t.id = *id;
      else if (!max_added)
        t.id = model_size;
      else
        t.id = (*max_added >= model_size || model_size == 0) ? *max_added + 1 : model_size;
      max_added = std::max(max_added.value_or(t.id), t.id);
      if (auto old = impl->added_by_id.find(t.id); old != impl->added_by_id.end())
        impl->added_by_content.erase(impl->added[old->second].content);
      impl->added_by_id[t.id] = impl->added.size();
      impl->added_by_content[t.content] = t.id;
      impl->added.push_back(std::move(t));
    }
  }
  int64_t id_limit = 0;
  for (const auto& [token, id] : impl->model->vocab()) id_limit = std::max<int64_t>(id_limit, int64_t{id} + 1);
  for (const AddedToken& t : impl->added) id_limit = std::max<int64_t>(id_limit, int64_t{t.id} + 1);
  for (size_t k = 0; k < impl->added.size(); ++k) {
    const AddedToken& t = impl->added[k];
    const auto index = static_cast<int32_t>(k);
    impl->added_text.push_back(t.normalized && impl->normalizer ? impl->normalizer->normalize(t.content) : t.content);
    if (t.normalized)
      impl->normalized_trie.insert(impl->added_text.back(), index);
    else
      impl->raw_trie.insert(t.content, index);
  }
  int64_t distinct = static_cast<int64_t>(impl->model->vocab().size());
  for (const AddedToken& t : impl->added)
    if (!impl->model->token_to_id(t.content)) ++distinct;
  impl->vocab_size = distinct;
  impl->id_limit = id_limit;
  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

Tokenizer Tokenizer::from_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

Tokenizer Tokenizer::from_directory(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (fs::is_regular_file(p)) return from_file(path);
  NT_CHECK(fs::is_directory(p), "tokenizer path '{}' does not exist (give a directory with tokenizer.json)", path);
  const fs::path json_path = p / "tokenizer.json";
  NT_CHECK(fs::exists(json_path),
           "'{}' has no tokenizer.json (only HF fast tokenizers are supported; a slow tokenizer can be converted "
           "with transformers' AutoTokenizer.from_pretrained(...).save_pretrained(...))",
           path);
  Tokenizer tok = from_file(json_path.string());
  auto impl = std::const_pointer_cast<Impl>(tok.impl_);
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {  // the config wins
    const fs::path f = p / name;
    if (!fs::exists(f)) continue;
    const json::Value config = json::parse_file(f.string());
    if (auto eos = token_field(config, "eos_token")) impl->eos_token = eos;
    if (auto bos = token_field(config, "bos_token")) impl->bos_token = bos;
    if (const json::Value* ct = config.find("chat_template"); ct && ct->is_string()) impl->chat_template = ct->as_string();
  }
  if (impl->chat_template.empty() && fs::exists(p / "chat_template.jinja"))
    impl->chat_template = read_text_file((p / "chat_template.jinja").string());
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl_->post.prefix;
  std::string repaired;
  if (!is_valid_utf8(text)) {
    repaired = to_valid_utf8(text);
    text = repaired;
  }
  impl_->encode_text(text, text.empty() ? 0 : utf8_length(static_cast<unsigned char>(text[0])), ids);
  if (add_special_tokens) ids.insert(ids.end(), impl_->post.suffix.begin(), impl_->post.suffix.end());
  return ids;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens, int threads) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = encode(texts[i], add_special_tokens);
  };
  if (threads == 1) {
    work(0, static_cast<int64_t>(texts.size()));
  } else {
    parallel_for(static_cast<int64_t>(texts.size()), 1, work);
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
      const AddedToken& t = impl_->added[it->second];
      if (skip_special_tokens && t.special) continue;
      tokens.push_back(impl_->added_text[it->second]);
    } else if (const std::string* s = impl_->model->id_to_token(id)) {
      tokens.push_back(*s);
    } else {
      fail("cannot decode token id {}: it is not in the vocabulary (ids go up to {})", id, impl_->id_limit - 1);
    }
  }
  if (!impl_->decoder) {
    std::string joined;
    for (size_t k = 0; k < tokens.size(); ++k) joined += (k ? " " : "") + tokens[k];
    return joined;
  }
  impl_->decoder->decode_chain(tokens);
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
int64_t Tokenizer::id_limit() const { return impl_->id_limit; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added_text[it->second];
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }

std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos_token ? token_to_id(*impl_->eos_token) : std::nullopt;
}
std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos_token ? token_to_id(*impl_->bos_token) : std::nullopt;
}
const std::optional<std::string>& Tokenizer::eos_token() const { return impl_->eos_token; }
const std::optional<std::string>& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

}  // namespace nemotron::tokenizer
