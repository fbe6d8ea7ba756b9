// `nemotron tokenize`: ids of a text (as JSON) or text of ids, with a HF tokenizer.json.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "io/json.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace nemotron::cli {

namespace {

// "1,2,3", "1 2 3" or "[1, 2, 3]".
std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string token;
  auto flush = [&] {
    if (token.empty()) return;
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    NT_CHECK(used == token.size() && v >= 0 && v <= INT32_MAX,
             "--decode: '{}' is not a token id (give ids like 1,2,3)", token);
    ids.push_back(static_cast<int32_t>(v));
    token.clear();
  };
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '[' || c == ']' || c == '\n' || c == '\t')
      flush();
    else
      token += c;
  }
  flush();
  return ids;
}

int run_tokenize(const Args& args) {
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::from_directory(args.require("tokenizer"));
  if (auto ids = args.get("decode")) {
    NT_CHECK(!args.has("text") && !args.has("text-file"), "give either --decode or --text/--text-file, not both");
    const std::string text = tok.decode(parse_ids(*ids), args.flag("skip-special-tokens"));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  std::string text;
  bool add_special_tokens = !args.flag("no-special-tokens");
  if (auto chat = args.get("chat")) {
    NT_CHECK(!args.has("text") && !args.has("text-file"), "give either --chat or --text/--text-file, not both");
    // A list of messages, or {"messages": [...], "tools": [...]}.
    const json::Value conversation = json::parse_file(*chat);
    const json::Value* messages = conversation.is_object() ? conversation.find("messages") : &conversation;
    NT_CHECK(messages, "--chat {}: expected a list of messages or an object with \"messages\"", *chat);
    const json::Value* tools = conversation.is_object() ? conversation.find("tools") : nullptr;
    tokenizer::ChatOptions o;
    o.add_generation_prompt = args.flag("add-generation-prompt");
    o.enable_thinking = !args.flag("no-thinking");
    o.truncate_history_thinking = !args.flag("keep-history-thinking");
    text = tokenizer::apply_chat_template(tok, *messages, tools ? *tools : json::Value(), o);
    add_special_tokens = false;  // the template writes every special token itself (as transformers does)
    if (args.flag("print-text")) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fputc('\n', stdout);
      return 0;
    }
  } else if (auto t = args.get("text")) {
    NT_CHECK(!args.has("text-file"), "give either --text or --text-file, not both");
    text = *t;
  } else if (auto f = args.get("text-file")) {
    std::ifstream in(*f, std::ios::binary);
    NT_CHECK(in, "cannot open --text-file {}", *f);
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  } else {
    fail("nothing to do: give --text TEXT, --text-file FILE, --chat FILE or --decode IDS");
  }
  const std::vector<int32_t> ids = tok.encode(text, add_special_tokens);
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  out += "]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

Command tokenize_command() {
  return {"tokenize",
          "token ids of a text, or the text of token ids, with a HF tokenizer.json",
          "Usage: nemotron tokenize --tokenizer DIR (--text TEXT | --text-file FILE) [--no-special-tokens]\n"
          "       nemotron tokenize --tokenizer DIR --chat CONVERSATION.json [--add-generation-prompt]\n"
          "                         [--no-thinking] [--keep-history-thinking] [--print-text]\n"
          "       nemotron tokenize --tokenizer DIR --decode 1,2,3 [--skip-special-tokens]\n\n"
          "Encoding prints the ids as a JSON list; decoding prints the text. DIR holds tokenizer.json (and\n"
          "tokenizer_config.json); the ids are those of HF `tokenizers` with the same file. --chat renders a\n"
          "conversation with the tokenizer's Nemotron 3 chat template (as transformers' apply_chat_template).",
          {
              {"tokenizer", "directory with tokenizer.json (or the file itself)", true, "", {"tokenizer-model"}},
              {"text", "text to encode"},
              {"text-file", "file whose whole contents are encoded as one text"},
              {"no-special-tokens", "do not add the post-processor's special tokens (e.g. BOS)", false},
              {"chat", "JSON file: a list of messages, or {\"messages\": [...], \"tools\": [...]}"},
              {"add-generation-prompt", "--chat: end with the assistant turn header", false},
              {"no-thinking", "--chat: enable_thinking=False", false},
              {"keep-history-thinking", "--chat: truncate_history_thinking=False", false},
              {"print-text", "--chat: print the rendered text instead of ids", false},
              {"decode", "ids to decode: 1,2,3 or \"[1, 2, 3]\""},
              {"skip-special-tokens", "leave special tokens out of decoded text", false},
          },
          run_tokenize};
}

}  // namespace nemotron::cli
