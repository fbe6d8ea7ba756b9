// The Hydra override grammar: keys, prefixes, every value form, and the errors for what it rejects.
#include <gtest/gtest.h>

#include <cmath>

#include "config/override.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

Value parse_value(const std::string& text) {
  Override o = parse_override("a.b=" + text);
  EXPECT_TRUE(o.value.has_value());
  return *o.value;
}

// The error message for a token that must not parse.
std::string parse_error(const std::string& token) {
  try {
    parse_override(token);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a parse error for: " << token;
  return "";
}

TEST(OverrideParser, KeysAndPrefixes) {
  Override o = parse_override("model.num_layers=7");
  EXPECT_EQ(o.op, Override::Op::Set);
  EXPECT_EQ(o.path, (std::vector<std::string>{"model", "num_layers"}));
  EXPECT_EQ(o.key(), "model.num_layers");
  EXPECT_EQ(o.token, "model.num_layers=7");

  EXPECT_EQ(parse_override("+a.b=1").op, Override::Op::Add);
  EXPECT_EQ(parse_override("++a.b=1").op, Override::Op::ForceAdd);
  Override del = parse_override("~checkpoint.load");
  EXPECT_EQ(del.op, Override::Op::Delete);
  EXPECT_FALSE(del.value.has_value());
  EXPECT_FALSE(parse_override("~a.b=").value.has_value());  // `~key=` deletes unconditionally
  Override del_if = parse_override("~a.b=3");
  ASSERT_TRUE(del_if.value.has_value());
  EXPECT_EQ(del_if.value->as_int(), 3);

  // Hydra ID characters: letters, digits, '_' and '-' (not first).
  EXPECT_EQ(parse_override("_target_.x-y_2=1").path, (std::vector<std::string>{"_target_", "x-y_2"}));
  EXPECT_EQ(parse_override("  a.b = 1 ").value->as_int(), 1);  // spaces around key and value
}

TEST(OverrideParser, Scalars) {
  EXPECT_TRUE(parse_value("null").is_null());
  EXPECT_TRUE(parse_value("NULL").is_null());
  for (const char* t : {"true", "True", "TRUE", "tRuE"}) {
    Value v = parse_value(t);
    ASSERT_EQ(v.kind(), Value::Kind::Bool) << t;
    EXPECT_TRUE(v.as_bool());
  }
  EXPECT_FALSE(parse_value("False").as_bool());

  EXPECT_EQ(parse_value("0").as_int(), 0);
  EXPECT_EQ(parse_value("-12").as_int(), -12);
  EXPECT_EQ(parse_value("+12").as_int(), 12);
  EXPECT_EQ(parse_value("1_000").as_int(), 1000);
  EXPECT_EQ(parse_value("9223372036854775807").as_int(), INT64_MAX);
  EXPECT_EQ(parse_value("-9223372036854775808").as_int(), INT64_MIN);
  // Too big for int64: kept as a number (text preserved); integer fields reject it later.
  Value big = parse_value("99999999999999999999");
  EXPECT_EQ(big.kind(), Value::Kind::Float);
  EXPECT_EQ(big.text(), "99999999999999999999");

  struct Case {
    const char* text;
    double value;
  };
  for (Case c : {Case{"1e-5", 1e-5}, Case{"3.0E+2", 300.0}, Case{"4.5e-4", 4.5e-4}, Case{".5", 0.5},
                 Case{"5.", 5.0}, Case{"-2.5", -2.5}, Case{"1_0.2_5", 10.25}, Case{"2E3", 2000.0},
                 Case{"1e400", INFINITY}, Case{"1e-400", 0.0}}) {
    Value v = parse_value(c.text);
    ASSERT_EQ(v.kind(), Value::Kind::Float) << c.text;
    EXPECT_EQ(v.as_float(), c.value) << c.text;
    EXPECT_EQ(v.text(), c.text);
  }
  EXPECT_EQ(parse_value("inf").as_float(), INFINITY);
  EXPECT_EQ(parse_value("-Inf").as_float(), -INFINITY);
  EXPECT_TRUE(std::isnan(parse_value("nan").as_float()));
  EXPECT_TRUE(std::isnan(parse_value("NaN").as_float()));

  // Not numbers: leading zeros, lone dots/exponents, trailing garbage → strings, as in Hydra.
  for (const char* t : {"007", "1e", "e5", ".", "1.2.3", "1e-5abc", "0x10", "1__0", "_1", "infinity", "+-1"}) {
    Value v = parse_value(t);
    EXPECT_EQ(v.kind(), Value::Kind::String) << t;
    EXPECT_EQ(v.as_string(), t);
  }
}

TEST(OverrideParser, UnquotedStrings) {
  EXPECT_EQ(parse_value("MEME*ME").as_string(), "MEME*ME");
  EXPECT_EQ(parse_value("/a/b.c").as_string(), "/a/b.c");
  EXPECT_EQ(parse_value("bf16-mixed").as_string(), "bf16-mixed");
  EXPECT_EQ(parse_value("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16").as_string(),
            "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16");
  EXPECT_EQ(parse_value("http://host:8080/x").as_string(), "http://host:8080/x");  // ':' allowed at top level
  EXPECT_EQ(parse_value("a b  c").as_string(), "a b  c");                          // inner spaces kept
  EXPECT_EQ(parse_value("héllo→").as_string(), "héllo→");
  EXPECT_EQ(parse_value("~x+y@z?%|").as_string(), "~x+y@z?%|");
  // Escapes: `\,` etc. give the character; other backslashes are literal; escaping makes it a string.
  EXPECT_EQ(parse_value("9999\\,8\\,2").as_string(), "9999,8,2");
  EXPECT_EQ(parse_value("a\\ ").as_string(), "a ");  // escaped trailing space survives trimming
  EXPECT_EQ(parse_value("C:\\dir\\file").as_string(), "C:\\dir\\file");
  EXPECT_EQ(parse_value("\\(x\\)\\[\\]\\{\\}\\=\\:").as_string(), "(x)[]{}=:");
  Value escaped_number = parse_value("1\\ ");
  EXPECT_EQ(escaped_number.kind(), Value::Kind::String);
  // Empty value is the empty string.
  EXPECT_EQ(parse_value("").kind(), Value::Kind::String);
  EXPECT_EQ(parse_value("").as_string(), "");
  EXPECT_EQ(parse_value("   ").as_string(), "");
}

TEST(OverrideParser, QuotedStrings) {
  EXPECT_EQ(parse_value("\"MEME*ME\"").as_string(), "MEME*ME");
  EXPECT_EQ(parse_value("'9999,8,2'").as_string(), "9999,8,2");
  // Quoted scalars are always strings.
  EXPECT_EQ(parse_value("'123'").kind(), Value::Kind::String);
  EXPECT_EQ(parse_value("\"true\"").kind(), Value::Kind::String);
  EXPECT_EQ(parse_value("'null'").as_string(), "null");
  EXPECT_EQ(parse_value("''").as_string(), "");
  EXPECT_EQ(parse_value("\"a = [b, c]: {d}\"").as_string(), "a = [b, c]: {d}");
  // Hydra escaping: backslashes only escape before a quote.
  EXPECT_EQ(parse_value(R"('it\'s')").as_string(), "it's");
  EXPECT_EQ(parse_value(R"("say \"hi\"")").as_string(), "say \"hi\"");
  EXPECT_EQ(parse_value(R"("a\nb")").as_string(), R"(a\nb)");
  EXPECT_EQ(parse_value(R"('C:\dir\\')").as_string(), R"(C:\dir\)");
  EXPECT_EQ(parse_value(R"('a\\\'b')").as_string(), R"(a\'b)");
  EXPECT_EQ(parse_value("\"it's\"").as_string(), "it's");
  EXPECT_EQ(parse_value("'say \"x\"'").as_string(), "say \"x\"");
}

TEST(OverrideParser, ListsAndDicts) {
  Value list = parse_value("[core_attn, moe_act, 3, 1.5, null, true, 'x,y', [1, [2]], {k: v}]");
  ASSERT_TRUE(list.is_list());
  const auto& items = list.items();
  ASSERT_EQ(items.size(), 9u);
  EXPECT_EQ(items[0].as_string(), "core_attn");
  EXPECT_EQ(items[1].as_string(), "moe_act");
  EXPECT_EQ(items[2].as_int(), 3);
  EXPECT_EQ(items[3].as_float(), 1.5);
  EXPECT_TRUE(items[4].is_null());
  EXPECT_TRUE(items[5].as_bool());
  EXPECT_EQ(items[6].as_string(), "x,y");
  EXPECT_EQ(items[7], Value::list({Value::integer(1), Value::list({Value::integer(2)})}));
  EXPECT_EQ(items[8], Value::dict({{"k", Value::string("v")}}));
  EXPECT_EQ(parse_value("[]"), Value::list());
  EXPECT_EQ(parse_value("[ ]"), Value::list());
  EXPECT_EQ(parse_value("{}"), Value::dict());

  Value dict = parse_value("{packed_sequence_size:32768,pad_seq_to_mult:4}");
  ASSERT_TRUE(dict.is_dict());
  ASSERT_EQ(dict.entries().size(), 2u);
  EXPECT_EQ(dict.entries()[0].first, "packed_sequence_size");
  EXPECT_EQ(dict.entries()[0].second.as_int(), 32768);
  EXPECT_EQ(dict.entries()[1].first, "pad_seq_to_mult");
  EXPECT_EQ(dict.entries()[1].second.as_int(), 4);

  Value nested = parse_value("{k: v, k2: [1, 2], 'odd key': {x: http://a:b}, sp ace : 1e-3}");
  EXPECT_EQ(nested.find("k")->as_string(), "v");
  EXPECT_EQ(*nested.find("k2"), Value::list({Value::integer(1), Value::integer(2)}));
  EXPECT_EQ(nested.find("odd key")->find("x")->as_string(), "http://a:b");  // ':' allowed in dict values
  EXPECT_EQ(nested.find("sp ace")->as_float(), 1e-3);
}

TEST(OverrideParser, ErrorsNameTheTokenAndColumn) {
  std::string msg = parse_error("train.train_iters=[1,2");
  EXPECT_NE(msg.find("invalid override 'train.train_iters=[1,2'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unclosed '['"), std::string::npos) << msg;
  EXPECT_NE(msg.find("column 19"), std::string::npos) << msg;
  // The caret sits under the '[' (column 19 → 18 spaces after the two-space indent).
  EXPECT_NE(msg.find("\n  train.train_iters=[1,2\n  " + std::string(18, ' ') + "^"), std::string::npos) << msg;

  struct Case {
    const char* token;
    const char* expected;
  };
  for (Case c : {
           Case{"model.num_layers", "missing '='"},
           Case{"=5", "missing key"},
           Case{"a..b=1", "empty key segment"},
           Case{"a.=1", "empty key segment"},
           Case{"1a=1", "must start with a letter"},
           Case{"a.b@pkg=1", "package overrides"},
           Case{"db/mysql=1", "config groups"},
           Case{"a[0]=1", "by index"},
           Case{"a b=1", "expected '='"},
           Case{"+++a=1", "prefix must be one of"},
           Case{"dataset.split=9999,8,2", "sweep"},
           Case{"a=[1,2]]", "unexpected ']'"},
           Case{"a=[1,,2]", "missing list element"},
           Case{"a=[1,]", "missing list element"},
           Case{"a=[1 2", "unclosed '['"},
           Case{"a={k:1", "unclosed '{'"},
           Case{"a={k 1}", "expected ':'"},
           Case{"a={:1}", "missing dict key"},
           Case{"a={k:}", "missing value for 'k'"},
           Case{"a={k:1,k:2}", "duplicate dict key 'k'"},
           Case{"a=\"abc", "unclosed double quote"},
           Case{"a='abc", "unclosed single quote"},
           Case{"a='x'y", "after the quoted string"},
           Case{"a='it''s'", "after the quoted string"},
           Case{"a=ab\"c", "quote in the middle"},
           Case{"a=choice(1,2)", "functions"},
           Case{"a=${b.c}", "interpolations"},
           Case{"a=b=c", "unexpected '='"},
           Case{"a=x]", "unexpected ']'"},
           Case{"a=\x01", "control character"},
           Case{"a=\xff\xfe", "not valid UTF-8"},
       }) {
    std::string m = parse_error(c.token);
    EXPECT_NE(m.find(c.expected), std::string::npos) << "token: " << c.token << "\nmessage: " << m;
  }
  // Nesting is bounded (no stack overflow on "[[[[...").
  EXPECT_NE(parse_error("a=" + std::string(100000, '[')).find("nested deeper"), std::string::npos);
}

TEST(OverrideParser, ErrorWindowForLongTokens) {
  std::string token = "a=" + std::string(5000, 'x') + "]";
  std::string msg = parse_error(token);
  EXPECT_LT(msg.size(), 600u);  // the token is shown through a window, not in full
  EXPECT_NE(msg.find("column 5003"), std::string::npos) << msg;
  EXPECT_NE(msg.find("...x"), std::string::npos);
}

TEST(OverrideParser, CaretUnderMultiByteCharacters) {
  std::string msg = parse_error("a=é]");
  // 'a', '=', 'é' are three characters on screen although 'é' is two bytes.
  EXPECT_NE(msg.find("\n  a=é]\n     ^"), std::string::npos) << msg;
}

TEST(OverrideParser, ToOverrideTextRoundTrips) {
  std::vector<Value> values = {
      Value(),
      Value::boolean(false),
      Value::integer(-42),
      Value::floating(1e-8),
      Value::floating(300.0),
      Value::floating(-INFINITY),
      Value::string(""),
      Value::string("plain"),
      Value::string("123"),
      Value::string("true"),
      Value::string("null"),
      Value::string("a,b"),
      Value::string(" padded "),
      Value::string("it's \\ a 'test'\\"),
      Value::string("\\'"),
      Value::string("x: [y]"),
      Value::list({Value::string("a b"), Value::integer(1), Value::list()}),
      Value::dict({{"k", Value::string("v")}, {"odd: key", Value::dict({{"x", Value::floating(0.5)}})}}),
  };
  for (const Value& v : values) {
    std::string text = to_override_text(v);
    Override o = parse_override("k=" + text);
    ASSERT_TRUE(o.value.has_value());
    EXPECT_EQ(*o.value, v) << "text: " << text;
  }
  EXPECT_EQ(to_override_text(Value::floating(1.0)), "1.0");
  EXPECT_EQ(to_override_text(Value::string("MEME*ME")), "MEME*ME");
  EXPECT_EQ(to_override_text(Value::string("9999,8,2")), "'9999,8,2'");
}

}  // namespace
}  // namespace nemotron::config
