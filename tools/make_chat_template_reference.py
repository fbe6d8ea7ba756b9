#!/usr/bin/env python3
"""Reference renderings of the Nemotron 3 chat template for the native C++ renderer
(src/tokenizer/chat_template.cpp), made with transformers' apply_chat_template.

    /work/venv/bin/python tools/make_chat_template_reference.py --template CHAT_TEMPLATE
        [--tokenizer tests/data/tokenizer/nemotron_style]

CHAT_TEMPLATE is the "chat_template" of a Nemotron 3 tokenizer_config.json (or a .jinja file with
it). It is an input, not a fixture: only the rendered texts and their ids are committed, in
TOKENIZER/chat_expected.json. Re-run with the template of the real checkpoint
(nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16) to check the renderer against it.
"""
import argparse
import json
import os

from transformers import AutoTokenizer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "  Get the current weather for a city.  ",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "minimum": 1, "nullable": True},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
SEARCH_TOOL = {"name": "search", "description": "Search the web", "parameters": {"type": "object", "properties": {}}}

CONVERSATIONS = [
    ("single user, thinking", [{"role": "user", "content": "Hello!"}], None,
     {"add_generation_prompt": True}),
    ("single user, no thinking", [{"role": "user", "content": "Hello!"}], None,
     {"add_generation_prompt": True, "enable_thinking": False}),
    ("multi-turn history", [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "reasoning_content": "Simple arithmetic.", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n6"},
        {"role": "user", "content": "Thanks  "},
        {"role": "assistant", "content": "  You're welcome! 😀  "},
    ], None, {}),
    ("multi-turn history kept", [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "reasoning_content": "Simple arithmetic.", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n6"},
    ], None, {"truncate_history_thinking": False, "add_generation_prompt": True}),
    ("tools", [
        {"role": "system", "content": "Use tools when needed."},
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": "I'll check both.", "reasoning_content": "Two calls.",
         "tool_calls": [
             {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}},
             {"type": "function", "function": {"name": "get_weather",
                                               "arguments": {"city": "Tokyo", "unit": "celsius",
                                                             "extra": {"a": [1, 2.5, None, True]}}}},
         ]},
        {"role": "tool", "content": "{\"temp\": 18}"},
        {"role": "tool", "content": "{\"temp\": 25}"},
        {"role": "assistant", "content": "Paris 18°C, Tokyo 25°C."},
        {"role": "user", "content": "Thanks"},
    ], [WEATHER_TOOL, SEARCH_TOOL], {"add_generation_prompt": True}),
    ("tools, no system, history kept", [
        {"role": "user", "content": "Find cats"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"function": {"name": "search", "arguments": {"q": "cats", "flag": False, "n": 3}}}]},
        {"role": "tool", "content": "many cats"},
        {"role": "user", "content": "More"},
        {"role": "assistant", "content": "<think>old</think>visible",
         "tool_calls": [{"function": {"name": "search", "arguments": {"q": "more cats"}}}]},
        {"role": "tool", "content": "more cats"},
    ], [SEARCH_TOOL], {"add_generation_prompt": True, "enable_thinking": False}),
    ("system in the middle, other roles", [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "again\r\n\ttabs"},
        {"role": "developer", "content": "dev note"},
    ], None, {}),
    ("tool first", [
        {"role": "tool", "content": "result"},
        {"role": "user", "content": "ok"},
    ], None, {"add_generation_prompt": True}),
    ("blank reasoning", [
        {"role": "user", "content": "q"},
        {"role": "assistant", "reasoning_content": "   ", "content": "a"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "<think>only open"},
    ], None, {}),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--template", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(here, "..", "tests", "data", "tokenizer", "nemotron_style"))
    args = ap.parse_args()
    with open(args.template, encoding="utf-8") as f:
        template = f.read()
    if args.template.endswith(".json"):
        template = json.loads(template)["chat_template"]
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    cases = []
    for name, messages, tools, kwargs in CONVERSATIONS:
        text = tok.apply_chat_template(messages, tools=tools, tokenize=False, chat_template=template, **kwargs)
        ids = tok(text, add_special_tokens=False).input_ids
        direct = tok.apply_chat_template(messages, tools=tools, tokenize=True, chat_template=template,
                                         return_dict=False, **kwargs)
        assert list(direct) == ids, name
        cases.append({"name": name, "messages": messages, "tools": tools, "options": kwargs, "text": text,
                      "ids": ids})
    with open(os.path.join(args.tokenizer, "chat_expected.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"{len(cases)} conversations")


if __name__ == "__main__":
    main()
