#include "tokenizer/chat_template.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/json.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

using json::Value;

// Python str.isspace(): White_Space plus the ASCII separators U+001C..U+001F.
bool python_space(char32_t c) { return is_whitespace(c) || (c >= 0x1C && c <= 0x1F); }

// Jinja's trim filter (Python str.strip()).
std::string trim(std::string_view s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    size_t i = begin;
    if (!python_space(next_code_point(s, i))) break;
    begin = i;
  }
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t i = start;
    if (!python_space(next_code_point(s, i))) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// Python str(x) of a JSON value, as Jinja's string filter gives it.
std::string python_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Number: return v.number_text();
    case Value::Kind::String: return v.as_string();
    default: return python_json_dumps(v);  // dict/list reprs are not used by the template's inputs
  }
}

const Value* field(const Value& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const Value* v = obj.find(key);
  return v;  // a key present with null counts as defined, as in Jinja
}

bool is_sequence_not_string(const Value& v) { return v.is_array(); }

// Content with `default('', true)`: a missing or falsy value becomes "".
Value content_or_empty(const Value& message) {
  const Value* c = field(message, "content");
  if (!c || c->is_null() || (c->is_string() && c->as_string().empty()) || (c->is_bool() && !c->as_bool()) ||
      (c->is_array() && c->size() == 0))
    return Value(std::string());
  return *c;
}

// The template's render_extra_keys macro.
void render_extra_keys(std::string& out, const Value& dict, std::initializer_list<std::string_view> handled) {
  if (!dict.is_object()) return;
  for (const auto& [key, value] : dict.members()) {
    if (std::find(handled.begin(), handled.end(), key) != handled.end()) continue;
    const std::string text = value.is_object() || is_sequence_not_string(value) ? python_json_dumps(value) : python_str(value);
    out += "\n<" + key + ">" + text + "</" + key + ">";
  }
}

void render_tools(std::string& out, const Value& tools) {
  out += "# Tools\n\nYou have access to the following functions:\n\n<tools>";
  for (const Value& entry : tools.items()) {
    const Value* fn = field(entry, "function");
    const Value& tool = fn ? *fn : entry;
    const Value* name = field(tool, "name");
    NT_CHECK(name, "chat template: a tool has no name");
    out += "\n<function>\n<name>" + python_str(*name) + "</name>";
    if (const Value* d = field(tool, "description")) out += "\n<description>" + trim(python_str(*d)) + "</description>";
    out += "\n<parameters>";
    const Value* params = field(tool, "parameters");
    if (params && params->is_object()) {
      if (const Value* props = field(*params, "properties"); props && props->is_object()) {
        for (const auto& [param_name, fields] : props->members()) {
          out += "\n<parameter>\n<name>" + param_name + "</name>";
          if (const Value* t = field(fields, "type")) out += "\n<type>" + python_str(*t) + "</type>";
          if (const Value* d = field(fields, "description"))
            out += "\n<description>" + trim(python_str(*d)) + "</description>";
          if (const Value* e = field(fields, "enum")) out += "\n<enum>" + python_json_dumps(*e) + "</enum>";
          render_extra_keys(out, fields, {"name", "type", "description", "enum"});
          out += "\n</parameter>";
        }
      }
    }
    if (params) render_extra_keys(out, *params, {"type", "properties", "required"});
    if (params)
      if (const Value* r = field(*params, "required")) out += "\n<required>" + python_json_dumps(*r) + "</required>";
    out += "\n</parameters>";
    render_extra_keys(out, tool, {"type", "name", "description", "parameters"});
    out += "\n</function>";
  }
  out += "\n</tools>";
  out +=
      "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n"
      "<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
      "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple "
      "lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the "
      "specified format: an inner <function=...></function> block must be nested within <tool_call></tool_call> "
      "XML tags\n- Required parameters MUST be specified\n- You may provide optional reasoning for your function "
      "call in natural language BEFORE the function call, but NOT after\n- If there is no function call "
      "available, answer the question like normal with your current knowledge and do not tell the user about "
      "function calls\n</IMPORTANT>";
}

// Text after the last occurrence of `sep` (Python s.split(sep)[-1]).
std::string after_last(const std::string& s, std::string_view sep) {
  const size_t p = s.rfind(sep);
  return p == std::string::npos ? s : s.substr(p + sep.size());
}
// Text before the first occurrence of `sep` (Python s.split(sep)[0]).
std::string before_first(const std::string& s, std::string_view sep) {
  const size_t p = s.find(sep);
  return p == std::string::npos ? s : s.substr(0, p);
}

void render_assistant(std::string& out, const Value& message, bool hide_reasoning) {
  // The turn's text, always starting with a think block.
  Value content;
  const Value* reasoning = field(message, "reasoning_content");
  if (reasoning && reasoning->is_string() && !trim(reasoning->as_string()).empty()) {
    content = Value("<think>\n" + reasoning->as_string() + "</think>" + python_str(content_or_empty(message)));
  } else {
    content = content_or_empty(message);
    if (content.is_string() && !contains(content.as_string(), "<think>") && !contains(content.as_string(), "</think>"))
      content = Value("<think></think>" + content.as_string());
  }

  const Value* calls = field(message, "tool_calls");
  if (calls && calls->is_array() && calls->size() > 0) {
    out += "<|im_start|>assistant\n";
    if (content.is_string() && !trim(content.as_string()).empty()) {
      if (!hide_reasoning) {
        out += trim(content.as_string()) + "\n";
      } else {
        std::string c = content.as_string();
        if (contains(c, "</think>"))
          c = after_last(c, "</think>");
        else if (contains(c, "<think>"))
          c = before_first(c, "<think>");
        out += "<think></think>" + c + "\n";
      }
    } else {
      out += "<think></think>";
    }
    for (const Value& entry : calls->items()) {
      const Value* fn = field(entry, "function");
      const Value& call = fn ? *fn : entry;
      const Value* name = field(call, "name");
      NT_CHECK(name, "chat template: a tool call has no function name");
      out += "<tool_call>\n<function=" + python_str(*name) + ">\n";
      if (const Value* args = field(call, "arguments")) {
        NT_CHECK(args->is_object(),
                 "chat template: tool call '{}' has arguments that are not a JSON object (the Nemotron template "
                 "needs a dict, not a JSON string)",
                 python_str(*name));
        for (const auto& [key, value] : args->members()) {
          const std::string text = value.is_object() || value.is_array() ? python_json_dumps(value) : python_str(value);
          out += "<parameter=" + key + ">\n" + text + "\n</parameter>\n";
        }
      }
      out += "</function>\n</tool_call>\n";
    }
    out += "<|im_end|>\n";
    return;
  }
  const std::string text = python_str(content);
  if (!hide_reasoning) {
    out += "<|im_start|>assistant\n" + trim(text) + "<|im_end|>\n";
    return;
  }
  std::string c = text;
  if (contains(c, "<think>") && contains(c, "</think>")) c = "<think></think>" + after_last(c, "</think>");
  out += "<|im_start|>assistant\n" + trim(c) + "<|im_end|>\n";
}

}  // namespace

std::string python_json_dumps(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return v.as_bool() ? "true" : "false";
    case Value::Kind::Number: return v.number_text();
    case Value::Kind::String: return json::quote(v.as_string());
    case Value::Kind::Array: {
      std::string out = "[";
      for (size_t i = 0; i < v.items().size(); ++i) out += (i ? ", " : "") + python_json_dumps(v.items()[i]);
      return out + "]";
    }
    case Value::Kind::Object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, value] : v.members()) {
        out += (first ? "" : ", ") + python_json_dumps(Value(key)) + ": " + python_json_dumps(value);
        first = false;
      }
      return out + "}";
    }
  }
  return "";
}

std::string render_nemotron3_chat(const Value& messages, const Value& tools, const ChatOptions& options) {
  NT_CHECK(messages.is_array() && messages.size() > 0, "chat template: messages must be a non-empty list");
  for (const Value& m : messages.items())
    NT_CHECK(m.is_object() && m.contains("role") && m.at("role").is_string(),
             "chat template: every message needs a string 'role' (got {})", json::dump(m));
  std::vector<const Value*> loop;
  std::string system;
  size_t first = 0;
  if (messages.items()[0].at("role").as_string() == "system") {
    const Value* c = field(messages.items()[0], "content");
    NT_CHECK(c && c->is_string(), "chat template: the system message needs string content");
    system = c->as_string();
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) loop.push_back(&messages.items()[i]);
  int64_t last_user = -1;
  for (size_t i = 0; i < loop.size(); ++i)
    if (loop[i]->at("role").as_string() == "user") last_user = static_cast<int64_t>(i);
  const bool has_tools = tools.is_array() && tools.size() > 0;

  std::string out = "<|im_start|>system\n" + system;
  if (has_tools) {
    if (!system.empty()) out += "\n\n";
    render_tools(out, tools);
  }
  out += "<|im_end|>\n";

  for (size_t i = 0; i < loop.size(); ++i) {
    const Value& m = *loop[i];
    const std::string& role = m.at("role").as_string();
    if (role == "assistant") {
      render_assistant(out, m, options.truncate_history_thinking && static_cast<int64_t>(i) < last_user);
    } else if (role == "user" || role == "system") {
      const Value* c = field(m, "content");
      out += "<|im_start|>" + role + "\n" + (c ? python_str(*c) : "") + "<|im_end|>\n";
    } else if (role == "tool") {
      if (i > 0 && loop[i - 1]->at("role").as_string() != "tool") out += "<|im_start|>user\n";
      const Value* c = field(m, "content");
      out += "<tool_response>\n" + (c ? python_str(*c) : "") + "\n</tool_response>\n";
      if (i + 1 == loop.size() || loop[i + 1]->at("role").as_string() != "tool") out += "<|im_end|>\n";
    } else {
      const Value* c = field(m, "content");
      NT_CHECK(c && c->is_string(), "chat template: message with role '{}' needs string content", role);
      out += "<|im_start|>" + role + "\n" + c->as_string() + "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt)
    out += options.enable_thinking ? "<|im_start|>assistant\n<think>\n" : "<|im_start|>assistant\n<think></think>";
  return out;
}

std::string apply_chat_template(const Tokenizer& tokenizer, const Value& messages, const Value& tools,
                                const ChatOptions& options) {
  const std::string& t = tokenizer.chat_template();
  NT_CHECK(!t.empty(), "the tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja)");
  NT_CHECK(is_nemotron3_chat_template(t),
           "the tokenizer's chat template is not a Nemotron 3 ChatML template; only that template is rendered "
           "(natively), and rendering another one approximately would give wrong prompts");
  return render_nemotron3_chat(messages, tools, options);
}

bool is_nemotron3_chat_template(const std::string& t) {
  return contains(t, "<|im_start|>") && contains(t, "<|im_end|>") && contains(t, "truncate_history_thinking") &&
         contains(t, "<think></think>") && contains(t, "enable_thinking");
}

}  // namespace nemotron::tokenizer
