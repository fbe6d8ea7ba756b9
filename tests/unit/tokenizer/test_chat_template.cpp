// The native Nemotron 3 chat template against transformers' apply_chat_template with the Jinja
// template (tools/make_chat_template_reference.py): same text, same ids.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/json.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using namespace nemotron::tokenizer;
using nemotron::json::Value;

namespace {

std::string dir() { return std::string(NEMOTRON_TEST_DATA) + "/tokenizer/nemotron_style"; }

TEST(ChatTemplate, MatchesTransformers) {
  const Tokenizer tok = Tokenizer::from_directory(dir());
  const Value expected = nemotron::json::parse_file(dir() + "/chat_expected.json");
  int checked = 0;
  for (const Value& c : expected.at("cases").items()) {
    SCOPED_TRACE(c.at("name").as_string());
    ChatOptions o;
    const Value& kw = c.at("options");
    if (const Value* v = kw.find("add_generation_prompt")) o.add_generation_prompt = v->as_bool();
    if (const Value* v = kw.find("enable_thinking")) o.enable_thinking = v->as_bool();
    if (const Value* v = kw.find("truncate_history_thinking")) o.truncate_history_thinking = v->as_bool();
    const std::string text = render_nemotron3_chat(c.at("messages"), c.at("tools"), o);
    EXPECT_EQ(text, c.at("text").as_string());
    std::vector<int32_t> ids;
    for (const Value& id : c.at("ids").items()) ids.push_back(static_cast<int32_t>(id.as_int()));
    EXPECT_EQ(tok.encode(text, false), ids);
    ++checked;
  }
  EXPECT_GE(checked, 9);
}

TEST(ChatTemplate, RejectsBadInputAndUnknownTemplates) {
  const ChatOptions o;
  EXPECT_THROW(render_nemotron3_chat(nemotron::json::parse("[]"), Value(), o), nemotron::Error);
  EXPECT_THROW(render_nemotron3_chat(nemotron::json::parse(R"([{"content": "x"}])"), Value(), o), nemotron::Error);
  EXPECT_THROW(render_nemotron3_chat(nemotron::json::parse(
                   R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}])"),
                                     Value(), o),
               nemotron::Error);
  EXPECT_FALSE(is_nemotron3_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}"));
  // The test tokenizer has no chat template: applying it is an error, not a guess.
  const Tokenizer tok = Tokenizer::from_directory(dir());
  EXPECT_THROW(apply_chat_template(tok, nemotron::json::parse(R"([{"role": "user", "content": "x"}])"), Value(), o),
               nemotron::Error);
}

TEST(ChatTemplate, PythonJsonDumps) {
  EXPECT_EQ(python_json_dumps(nemotron::json::parse(R"({"a": [1, 2.5, null, true], "b": "é\n\"x\""})")),
            "{\"a\": [1, 2.5, null, true], \"b\": \"é\\n\\\"x\\\"\"}");
}

}  // namespace
