#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "io/json.h"

using namespace nemotron;

TEST(Json, ParsesAndKeepsOrderAndNumberText) {
  json::Value v = json::parse(R"({"b": 1, "a": [1e-05, 2.50, -3], "c": {"x": null, "y": true}, "s": "h\u00e9\n"})");
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.members()[0].first, "b");
  EXPECT_EQ(v.members()[1].first, "a");
  EXPECT_EQ(v.at("a").items()[0].number_text(), "1e-05");
  EXPECT_DOUBLE_EQ(v.at("a").items()[0].as_double(), 1e-05);
  EXPECT_EQ(v.at("a").items()[2].as_int(), -3);
  EXPECT_TRUE(v.at("a").items()[2].is_integer());
  EXPECT_FALSE(v.at("a").items()[1].is_integer());
  EXPECT_TRUE(v.at("c").at("x").is_null());
  EXPECT_EQ(v.at("s").as_string(), "h\xc3\xa9\n");
  // Verbatim round trip of numbers.
  EXPECT_EQ(json::dump(v), R"({"b": 1, "a": [1e-05, 2.50, -3], "c": {"x": null, "y": true}, "s": "h)"
                           "\xc3\xa9"
                           R"(\n"})");
}

TEST(Json, PythonNonFiniteLiterals) {
  json::Value v = json::parse(R"({"a": Infinity, "b": -Infinity, "c": NaN, "d": {"__float__": "Infinity"},
                                 "e": {"__float__": "-Infinity"}, "f": {"__float__": "NaN"}})");
  EXPECT_TRUE(std::isinf(v.at("a").as_double()) && v.at("a").as_double() > 0);
  EXPECT_TRUE(std::isinf(v.at("b").as_double()) && v.at("b").as_double() < 0);
  EXPECT_TRUE(std::isnan(v.at("c").as_double()));
  EXPECT_TRUE(v.at("d").is_number());
  EXPECT_TRUE(std::isinf(v.at("d").as_double()) && v.at("d").as_double() > 0);
  EXPECT_TRUE(v.at("e").as_double() < 0);
  EXPECT_TRUE(std::isnan(v.at("f").as_double()));
  // The wrapper object is written back as it was.
  EXPECT_EQ(json::dump(v.at("d")), R"({"__float__": "Infinity"})");
  EXPECT_EQ(json::dump(json::Value(-std::numeric_limits<double>::infinity())), "-Infinity");
}

TEST(Json, SurrogatePairsAndEscapes) {
  json::Value v = json::parse(R"(["\ud83d\ude00", "\t\"\\\/"])");
  EXPECT_EQ(v.items()[0].as_string(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(v.items()[1].as_string(), "\t\"\\/");
  EXPECT_EQ(json::dump(v.items()[1]), R"("\t\"\\/")");
}

TEST(Json, ErrorsNameLineAndColumn) {
  try {
    json::parse("{\n  \"a\": 1,\n  \"b\" 2\n}", "config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "config.json: line 3, column 7: expected ':' after object key");
  }
  for (const char* bad : {"", "{", "[1,]", "{\"a\":}", "01", "1.", "1e", "\"abc", "tru", "[1 2]", "{\"a\" 1}",
                          "\"\\x\"", "\"\\u12\"", "nul", "1 2", "-", "{\"a\":1,}"})
    EXPECT_THROW(json::parse(bad), Error) << bad;
  EXPECT_THROW(json::parse(std::string(10000, '[')), Error);  // depth limit, not a stack overflow
}

TEST(Json, AccessorsCheckKinds) {
  json::Value v = json::parse(R"({"n": 1.5, "big": 123456789012345678901234567890})");
  EXPECT_THROW(v.at("n").as_string(), Error);
  EXPECT_THROW(v.at("n").as_int(), Error);
  EXPECT_THROW(v.at("big").as_int(), Error);
  EXPECT_THROW(v.at("missing"), Error);
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, BuildAndPrettyPrint) {
  json::Value o;
  o["name"] = "x";
  o["shape"] = json::Value::array({json::Value(2), json::Value(3)});
  o["lr"] = json::Value(0.001);
  o["one"] = json::Value(1.0);
  EXPECT_EQ(json::dump(o), R"({"name": "x", "shape": [2, 3], "lr": 0.001, "one": 1.0})");
  EXPECT_EQ(json::dump(o, 2), "{\n  \"name\": \"x\",\n  \"shape\": [\n    2,\n    3\n  ],\n  \"lr\": 0.001,\n  \"one\": 1.0\n}");
  // Copies are independent (copy-on-write).
  json::Value p = o;
  p["name"] = "y";
  EXPECT_EQ(o.at("name").as_string(), "x");
  EXPECT_TRUE(o.erase("lr"));
  EXPECT_FALSE(o.contains("lr"));
}
