// YAML config files: OmegaConf.merge semantics, scalar typing, errors with file:line:column, and
// printing that reloads to the same config.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "config/config.h"
#include "config/override.h"
#include "config/recipes.h"
#include "config/yaml.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

std::string merge_error(const std::string& yaml) {
  Config cfg = tiny();
  try {
    merge_yaml(cfg, yaml, "run.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for:\n" << yaml;
  return "";
}

void expect_contains(const std::string& haystack, const std::string& needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos) << "missing: " << needle << "\nin: " << haystack;
}

TEST(Yaml, MergeSemantics) {
  Config cfg = nemotron_3_super_pretrain();
  cfg.tokenizer.hf_tokenizer_kwargs = {{"revision", Value::string("main")},
                                       {"extra", Value::dict({{"a", Value::integer(1)}, {"b", Value::integer(2)}})}};
  merge_yaml(cfg, R"(
# comments and blank lines are fine
train:
  train_iters: 100          # replaces
model:
  hybrid_override_pattern: "MEME*ME"
  num_layers: 7
  cuda_graph_scope: [attn]  # lists replace, they do not merge
  recompute_modules:
    - core_attn
    - moe_act
tokenizer:
  hf_tokenizer_kwargs:      # nested maps merge key by key
    extra: {b: 20, c: 30}
    use_fast: true
mixed_precision: bf16-mixed
peft:
  dim: 16
)",
             "run.yaml");
  EXPECT_EQ(cfg.train.train_iters, 100);
  EXPECT_EQ(cfg.train.global_batch_size, 3072);  // untouched keys keep the recipe's values
  EXPECT_EQ(cfg.model.hybrid_override_pattern, "MEME*ME");
  EXPECT_EQ(cfg.model.num_layers, 7);
  EXPECT_EQ(cfg.model.hidden_size, 4096);
  EXPECT_EQ(cfg.model.cuda_graph_scope, (std::vector<std::string>{"attn"}));
  EXPECT_EQ(cfg.model.recompute_modules, (std::vector<std::string>{"core_attn", "moe_act"}));
  Dict expected = {
      {"revision", Value::string("main")},
      {"extra", Value::dict({{"a", Value::integer(1)}, {"b", Value::integer(20)}, {"c", Value::integer(30)}})},
      {"use_fast", Value::boolean(true)}};
  EXPECT_EQ(cfg.tokenizer.hf_tokenizer_kwargs, expected);
  ASSERT_TRUE(cfg.mixed_precision.has_value());
  EXPECT_FALSE(cfg.mixed_precision->fp4.has_value());
  ASSERT_TRUE(cfg.peft.has_value());  // a mapping for a null section creates it
  EXPECT_EQ(cfg.peft->dim, 16);
  EXPECT_EQ(cfg.peft->alpha, 32.0);

  merge_yaml(cfg, "peft: null\nmixed_precision: ~\ncheckpoint:\n  save:\n", "b.yaml");
  EXPECT_FALSE(cfg.peft.has_value());
  EXPECT_FALSE(cfg.mixed_precision.has_value());
  EXPECT_FALSE(cfg.checkpoint.save.has_value());  // empty value is null

  Config before = cfg;
  merge_yaml(cfg, "", "empty.yaml");
  merge_yaml(cfg, "# only a comment\n", "comment.yaml");
  merge_yaml(cfg, "---\n...\n", "doc.yaml");
  EXPECT_EQ(cfg, before);
}

TEST(Yaml, ScalarTyping) {
  Value v = parse_yaml(R"(
ints: [1, -2, +3, 0x1F, 0o17, 1_000]
floats: [1e-5, 3.0E+2, .5, 1.0, .inf, -.Inf, .nan, inf]
bools: [true, False, yes, No, on, OFF]
nulls: [null, ~, Null, ]
strings: [abc, "123", '1e-5', 007, 1e, !!str 42, "yes", MEME*ME]
tagged: [!!int "12", !!float 3, !!bool "true"]
block: |
  line one
  line two
)",
                       "t.yaml");
  auto item = [&](const char* key, size_t i) { return v.find(key)->items().at(i); };
  EXPECT_EQ(item("ints", 0).as_int(), 1);
  EXPECT_EQ(item("ints", 1).as_int(), -2);
  EXPECT_EQ(item("ints", 2).as_int(), 3);
  EXPECT_EQ(item("ints", 3).as_int(), 31);
  EXPECT_EQ(item("ints", 4).as_int(), 15);
  EXPECT_EQ(item("ints", 5).as_int(), 1000);
  EXPECT_EQ(item("floats", 0).as_float(), 1e-5);  // OmegaConf's loader reads 1e-5 as a float
  EXPECT_EQ(item("floats", 1).as_float(), 300.0);
  EXPECT_EQ(item("floats", 2).as_float(), 0.5);
  EXPECT_EQ(item("floats", 3).kind(), Value::Kind::Float);
  EXPECT_EQ(item("floats", 4).as_float(), INFINITY);
  EXPECT_EQ(item("floats", 5).as_float(), -INFINITY);
  EXPECT_TRUE(std::isnan(item("floats", 6).as_float()));
  EXPECT_EQ(item("floats", 7).as_float(), INFINITY);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(item("bools", i), Value::boolean(i % 2 == 0)) << i;
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(item("nulls", i).is_null()) << i;
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(item("strings", i).kind(), Value::Kind::String) << i;
  EXPECT_EQ(item("strings", 5).as_string(), "42");
  EXPECT_EQ(item("tagged", 0).as_int(), 12);
  EXPECT_EQ(item("tagged", 1).as_float(), 3.0);
  EXPECT_TRUE(item("tagged", 2).as_bool());
  EXPECT_EQ(v.find("block")->as_string(), "line one\nline two\n");
}

TEST(Yaml, AnchorsAndAliases) {
  Value v = parse_yaml("a: &x [1, 2]\nb: *x\nc: &s hello\nd: *s\n", "t.yaml");
  EXPECT_EQ(*v.find("b"), *v.find("a"));
  EXPECT_EQ(v.find("d")->as_string(), "hello");
  // An alias to a node that is still open (a cycle) is refused, not followed forever.
  EXPECT_THROW(parse_yaml("a: &x [1, *x]\n", "t.yaml"), Error);
  // Exponential alias expansion is bounded.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'i'; ++c) {
    std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += (i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  try {
    parse_yaml(bomb, "bomb.yaml");
    ADD_FAILURE() << "alias bomb accepted";
  } catch (const Error& e) {
    expect_contains(e.what(), "more than 1000000 values");
  }
}

TEST(Yaml, Errors) {
  expect_contains(merge_error("train:\n  train_iter: 5\n"),
                  "run.yaml: unknown key 'train.train_iter' (did you mean 'train.train_iters'?)");
  expect_contains(merge_error("modle:\n  num_layers: 5\n"), "unknown config section 'modle' (did you mean 'model'?)");
  expect_contains(merge_error("train:\n  train_iters: abc\n"),
                  "run.yaml: train.train_iters expects an integer, got 'abc'");
  expect_contains(merge_error("model: 5\n"), "model is a section");
  expect_contains(merge_error("- a\n- b\n"), "run.yaml: the top level must be a mapping");
  expect_contains(merge_error("train:\n  train_iters: [1\n"), "run.yaml:3:1: invalid YAML");
  expect_contains(merge_error("train:\n\ttrain_iters: 1\n"), "run.yaml:2:1: invalid YAML");
  expect_contains(merge_error("a: 1\na: 2\n"), "run.yaml:2:1: duplicate key 'a'");
  expect_contains(merge_error("a: 1\n---\nb: 2\n"), "more than one YAML document");
  expect_contains(merge_error("train: !!python/object:foo {}\n"), "unsupported YAML tag");
  expect_contains(merge_error("train:\n  train_iters: !!int abc\n"), "'abc' is not an integer");
  expect_contains(merge_error("? [a, b]\n: 1\n"), "mapping keys must be plain strings");
  expect_contains(merge_error("a: \"\xff\"\n"), "invalid YAML");
  expect_contains(merge_error(std::string(300, '[') + std::string(300, ']')), "nested deeper than 256");
  try {
    Config cfg = tiny();
    merge_yaml_file(cfg, "/nonexistent/run.yaml");
    ADD_FAILURE();
  } catch (const Error& e) {
    expect_contains(e.what(), "cannot read config file '/nonexistent/run.yaml'");
  }
}

TEST(Yaml, LoadConfigOrder) {
  // recipe → file → overrides: the override wins over the file.
  std::string path = ::testing::TempDir() + "/nemotron_config_order.yaml";
  {
    std::ofstream f(path);
    f << "train:\n  train_iters: 50\n  global_batch_size: 16\n";
  }
  Config cfg = load_config("tiny", path, {"train.train_iters=70"});
  EXPECT_EQ(cfg.train.train_iters, 70);
  EXPECT_EQ(cfg.train.global_batch_size, 16);
  std::remove(path.c_str());
}

TEST(Yaml, PrintedConfigLooksRight) {
  std::string y = to_yaml(nemotron_3_super_pretrain());
  expect_contains(y, "rng:\n  seed: 1234\n");
  expect_contains(y, "\nmodel:\n  tensor_model_parallel_size: 4\n");
  expect_contains(y, "  hybrid_override_pattern: MEMEMEM*EMEMEMEM*");
  expect_contains(y, "  mtp_hybrid_override_pattern: \"*E\"\n");  // '*' first would be an alias
  expect_contains(y, "  cuda_graph_scope: [attn, mamba, moe_router, moe_preprocess]\n");
  expect_contains(y, "  lr: 0.00045\n");
  expect_contains(y, "  adam_eps: 1.0e-08\n");  // PyYAML needs the '.' to read a float
  expect_contains(y, "  clip_grad: 1.0\n");
  expect_contains(y, "  split: \"1,1,1\"\n");
  expect_contains(y, "  train_samples: null\n");
  expect_contains(y, "  hf_tokenizer_kwargs: {}\n");
  expect_contains(y, "peft: null\n");
  expect_contains(y, "mixed_precision:\n  fp32: false\n");
}

// print → load → equal, for every recipe and for configs with awkward values.
TEST(Yaml, PrintReloadsToTheSameConfig) {
  std::vector<Config> configs;
  for (const RecipeInfo& r : recipes()) configs.push_back(r.make());
  Config odd = nemotron_3_super_peft();
  apply_overrides(odd, {
      "logger.wandb_exp_name='123'", "logger.wandb_project=true", "checkpoint.save='a: b # c'",
      "tokenizer.chat_template='{% for m in messages %}\\n{{ m }}'", "logger.wandb_entity=' lead'",
      "++tokenizer.hf_tokenizer_kwargs.revision=null",
      "++dataset.dataset_kwargs.tab='a\tb'", "dataset.blend=[[x, y], null]", "optimizer.min_lr=inf",
      "model.moe_z_loss_coeff=-1e-300", "checkpoint.load=''", "logger.mlflow_run_name=~",
      "logger.mlflow_experiment_name='-x'", "logger.tensorboard_dir=ünïcødé→✓", "dataset.split=yes",
      "dataset.path_to_cache=0x1F", "dataset.dataset_name='.inf'", "logger.save_config_filepath='\"quoted\\\\\"'",
      "dataset.data_path=[0.5, /a, 0.5, /b]", "model.pipeline_model_parallel_layout='[E,t*2],[t*3],L'",
  });
  odd.tokenizer.hf_tokenizer_kwargs.emplace_back("key: x", Value::list({Value::integer(1), Value::dict({{"a", Value::string("b")}})}));
  static const char raw[] = "nul\0byte\x01\x7f\xc2\x85\xe2\x80\xa8\xef\xbb\xbf";  // NUL, controls, NEL, LS, BOM
  odd.tokenizer.vocab_file = std::string(raw, sizeof raw - 1);
  configs.push_back(odd);
  for (const Config& cfg : configs) {
    std::string text = to_yaml(cfg);
    Config reloaded;  // onto Base defaults: the printed tree must be complete
    merge_yaml(reloaded, text, "printed.yaml");
    EXPECT_EQ(reloaded, cfg) << text;
    EXPECT_EQ(to_yaml(reloaded), text);
  }
}

// Random values of every shape survive a Value → YAML → Value trip (seeded, so reproducible).
TEST(Yaml, RandomValuesRoundTrip) {
  std::mt19937_64 rng(12345);
  const std::vector<std::string> words = {"", " ", "a", "null", "True", "yes", "~", "-", "- x", "1", "1.5", "1e3",
                                          ".inf", "a: b", "#c", "[x]", "{y}", "*E", "&a", "!t", "%x", "@x", "`x",
                                          "'", "\"", "\\", "é", "\t", "\n", "a\nb", "x,y", "? q", "|", ">"};
  std::function<Value(int)> random_value = [&](int depth) -> Value {
    switch (rng() % (depth > 3 ? 5 : 7)) {
      case 0: return Value();
      case 1: return Value::boolean(rng() % 2);
      case 2: return Value::integer(static_cast<int64_t>(rng()));
      case 3: {
        double d;
        uint64_t bits = rng();
        std::memcpy(&d, &bits, sizeof d);
        return Value::floating(d);
      }
      case 4: return Value::string(words[rng() % words.size()] + words[rng() % words.size()]);
      case 5: {
        Value::List items;
        for (size_t i = rng() % 4; i > 0; --i) items.push_back(random_value(depth + 1));
        return Value::list(std::move(items));
      }
      default: {
        Value d = Value::dict();
        for (size_t i = rng() % 4; i > 0; --i) d.set(words[rng() % words.size()] + std::to_string(i), random_value(depth + 1));
        return d;
      }
    }
  };
  for (int i = 0; i < 500; ++i) {
    Value root = Value::dict({{"k", random_value(0)}});
    std::string text = emit_yaml(root);
    Value back = parse_yaml(text, "random.yaml");
    ASSERT_EQ(back, root) << text;
    // The same values also survive the override syntax.
    Override o = parse_override("k=" + to_override_text(root.entries()[0].second));
    ASSERT_EQ(*o.value, root.entries()[0].second) << to_override_text(root.entries()[0].second);
  }
}

}  // namespace
}  // namespace nemotron::config
