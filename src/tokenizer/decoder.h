// tokenizer.json "decoder" section: turns the token strings of ids back into text. As in HF, each
// decoder maps the list of token strings to a new list (decode_chain); the results are joined.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"

namespace nemotron::tokenizer {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Supported types: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, BPEDecoder, Sequence.
// null gives nullptr; anything else is an error naming the type.
std::unique_ptr<Decoder> make_decoder(const json::Value& spec);

}  // namespace nemotron::tokenizer
