// Nemotron 3 chat template (ChatML with <think> reasoning), rendered natively.
//
// Why native and not a Jinja interpreter: the Nemotron 3 template uses a broad slice of Jinja
// (macros, namespaces, loop.previtem/nextitem, slicing, str.split, the tojson/items/trim/default
// filters, `is mapping/sequence/defined` tests, trim_blocks/lstrip_blocks whitespace rules). A
// subset interpreter that gets all of that exactly right is a project of its own, and a subset
// that gets it almost right produces silently different prompts. A native renderer of this one
// template is short, exact (checked against transformers' apply_chat_template on reference
// conversations) and fast. Templates it does not recognise are refused with a clear error rather
// than rendered approximately.
//
// Behaviour (kwargs as in transformers' apply_chat_template):
//   - a system block is always written ("<|im_start|>system\n{system}<|im_end|>\n", empty when the
//     first message is not a system message), followed by the tool list when tools are given;
//   - user/system turns: "<|im_start|>{role}\n{content}<|im_end|>\n";
//   - assistant turns start with "<think>…</think>": reasoning_content becomes "<think>\n{r}</think>",
//     a turn without think tags gets an empty "<think></think>";
//   - truncate_history_thinking (default true) empties the reasoning of assistant turns before the
//     last user message;
//   - tool calls: "<tool_call>\n<function=NAME>\n<parameter=K>\nV\n</parameter>\n</function>\n</tool_call>\n";
//     tool results: "<tool_response>\n…\n</tool_response>\n" inside a user turn;
//   - add_generation_prompt: "<|im_start|>assistant\n<think>\n" (enable_thinking, the default) or
//     "<|im_start|>assistant\n<think></think>".
#pragma once
#include <string>

#include "io/json.h"
#include "tokenizer/tokenizer.h"

namespace nemotron::tokenizer {

struct ChatOptions {
  bool add_generation_prompt = false;
  bool enable_thinking = true;
  bool truncate_history_thinking = true;
};

// messages: [{"role": ..., "content": ..., "reasoning_content"?: ..., "tool_calls"?: [...]}, ...]
// tools: null or a list of {"type": "function", "function": {"name", "description", "parameters"}}.
// Malformed input (no messages, a message without role, tool-call arguments that are not an
// object) is a nemotron::Error.
std::string render_nemotron3_chat(const json::Value& messages, const json::Value& tools, const ChatOptions& options);

// Whether a tokenizer_config.json chat_template is a Nemotron 3 style template that
// render_nemotron3_chat reproduces (ChatML markers, <think> handling, truncate_history_thinking).
bool is_nemotron3_chat_template(const std::string& chat_template);

// The tokenizer's chat template applied natively: an error when the tokenizer has no chat
// template or one that is not a Nemotron 3 template (it would be rendered wrongly).
std::string apply_chat_template(const Tokenizer& tokenizer, const json::Value& messages, const json::Value& tools,
                                const ChatOptions& options);

// Python json.dumps(value, ensure_ascii=False) formatting (", " and ": " separators), as the
// template's tojson filter writes it.
std::string python_json_dumps(const json::Value& value);

}  // namespace nemotron::tokenizer
