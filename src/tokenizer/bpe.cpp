#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

std::string optional_string(const json::Value& spec, std::string_view key) {
  const json::Value* v = spec.find(key);
  return v && !v->is_null() ? v->as_string() : std::string();
}

bool optional_bool(const json::Value& spec, std::string_view key) {
  const json::Value* v = spec.find(key);
  return v && !v->is_null() && v->as_bool();
}

}  // namespace

BpeModel::BpeModel(const json::Value& spec) {
  if (const json::Value* d = spec.find("dropout"); d && !d->is_null() && d->as_double() != 0.0)
    fail("tokenizer.json: BPE dropout {} is not supported (it makes encoding random); set it to null",
         d->number_text());
  fuse_unk_ = optional_bool(spec, "fuse_unk");
  byte_fallback_ = optional_bool(spec, "byte_fallback");
  ignore_merges_ = optional_bool(spec, "ignore_merges");
  continuing_subword_prefix_ = optional_string(spec, "continuing_subword_prefix");
  end_of_word_suffix_ = optional_string(spec, "end_of_word_suffix");

  const json::Value& vocab = spec.at("vocab");
  NT_CHECK(vocab.is_object(), "tokenizer.json: model.vocab must be an object of token -> id");
  vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (const auto& [token, id_value] : vocab.members()) {
    const int64_t id = id_value.as_int();
    NT_CHECK(id >= 0 && id < (int64_t{1} << 31), "tokenizer.json: vocab id {} of token '{}' is out of range", id,
             token);
    vocab_[token] = static_cast<int32_t>(id);
    max_id = std::max(max_id, static_cast<int32_t>(id));
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  id_present_.assign(static_cast<size_t>(max_id + 1), 0);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    id_present_[id] = 1;
  }

  small_char_ids_.assign(0x800, -1);
  for (char32_t c = 0; c < 0x800; ++c) {
    std::string s;
    append_utf8(s, c);
    if (auto it = vocab_.find(s); it != vocab_.end()) small_char_ids_[c] = it->second;
  }

  const std::string unk = optional_string(spec, "unk_token");
  if (!unk.empty()) {
    auto it = vocab_.find(unk);
    NT_CHECK(it != vocab_.end(), "tokenizer.json: unk_token '{}' is not in the vocab", unk);
    unk_id_ = it->second;
  }

  const json::Value& merges = spec.at("merges");
  merges_.reserve(merges.size() * 2);
  const size_t prefix_len = continuing_subword_prefix_.size();
  uint32_t rank = 0;
  for (const json::Value& m : merges.items()) {
    std::string a, b;
    if (m.is_string()) {
      const std::string& line = m.as_string();
      const size_t space = line.find(' ');
      NT_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos,
               "tokenizer.json: merge {} '{}' is not two tokens separated by one space", rank, line);
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else {
      NT_CHECK(m.is_array() && m.size() == 2, "tokenizer.json: merge {} must be \"a b\" or [\"a\", \"b\"]", rank);
      a = m.items()[0].as_string();
      b = m.items()[1].as_string();
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    NT_CHECK(ia != vocab_.end(), "tokenizer.json: merge {} uses '{}', which is not in the vocab", rank, a);
    NT_CHECK(ib != vocab_.end(), "tokenizer.json: merge {} uses '{}', which is not in the vocab", rank, b);
    const std::string merged = a + b.substr(std::min(prefix_len, b.size()));
    auto im = vocab_.find(merged);
    NT_CHECK(im != vocab_.end(), "tokenizer.json: merge {} gives '{}', which is not in the vocab", rank, merged);
    merges_[pair_key(ia->second, ib->second)] = Merge{rank, im->second};  // a repeated pair: last wins (as HF)
    ++rank;
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_present_.size() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t BpeModel::symbol_id(std::string_view piece) const {
  auto it = vocab_.find(piece);
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t id = symbol_id(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }

  // Initial symbols: one per char (HF BPE::merge_word), with unk and byte fallback.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  };
  const bool affixes = !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty();
  std::optional<int32_t> pending_unk;
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    const size_t begin = i;
    const char32_t c = next_code_point(word, i);
    int32_t id;
    std::string_view s = word.substr(begin, i - begin);
    if (!affixes && c < 0x800) {
      id = small_char_ids_[c];
    } else {
      if (affixes) {
        scratch.clear();
        if (begin != 0) scratch += continuing_subword_prefix_;
        scratch += s;
        if (i == word.size()) scratch += end_of_word_suffix_;
        s = scratch;
      }
      id = symbol_id(s);
    }
    if (id >= 0) {
      if (pending_unk) {
        add(*pending_unk);
        pending_unk.reset();
      }
      add(id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (char b : s) {
        const int32_t bid = symbol_id(fmt::format("<0x{:02X}>", static_cast<unsigned char>(b)));
        if (bid < 0) break;
        bytes.push_back(bid);
      }
      if (bytes.size() == s.size()) {
        for (int32_t bid : bytes) add(bid);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk) add(*pending_unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // Merge by lowest rank, then leftmost position; stale queue entries are skipped (HF Word::merge_all).
  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Candidate> queue;  // a binary heap (std::push_heap / pop_heap)
  queue.clear();
  auto push = [&](Candidate c) {
    queue.push_back(c);
    std::push_heap(queue.begin(), queue.end());
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k)
    if (const Merge* m = find_merge(symbols[k].id, symbols[k + 1].id))
      push({m->rank, static_cast<int32_t>(k), m->new_id});
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    const Candidate top = queue.back();
    queue.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const Symbol right = symbols[right_pos];
    const Merge* current = find_merge(left.id, right.id);
    if (!current || current->new_id != top.new_id) continue;
    left.id = top.new_id;
    left.next = right.next;
    symbols[right_pos].alive = false;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0)
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) push({m->rank, left.prev, m->new_id});
    if (left.next >= 0)
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) push({m->rank, top.pos, m->new_id});
  }
  for (const Symbol& s : symbols)
    if (s.alive) out.push_back(s.id);
}

}  // namespace nemotron::tokenizer
