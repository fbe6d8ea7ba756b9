// `nemotron generate` as a user runs it: ids and text, batches, chat, eos from
// generation_config.json, speculative decoding, seeded sampling, native checkpoints, bad inputs.
// Expected continuations are the float64 greedy references of tools/make_generation_reference.py.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"

namespace fs = std::filesystem;

namespace {

const std::string kData = NEMOTRON_TEST_DATA;
const std::string kMtpModel = kData + "/models/tiny_super_mtp";

// The float64 greedy continuation of tiny_super_mtp prompt 2 (greedy_tiny_super_mtp.safetensors).
const std::string kPrompt2 = "69,115,75,101,6,113,31,43,126,94,30,120,112,91,26,99,33,98,45";
const std::string kTokens2 = "[102, 84, 30, 58, 85, 18, 47, 85, 52, 84, 58, 84, 11, 58, 58, 84, 85, 115, 23, 83]";
const std::string kPrompt1 = "11,17,2,21,92,4";
const std::string kTokens1 = "[81, 42, 75, 2, 75, 84, 71, 115, 102, 117, 13, 64, 42, 116, 46, 52, 24, 19, 99, 11]";

struct Scratch {
  std::string path;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-generate-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A model directory: the fixture's files linked, plus the generation tokenizer and extra files.
std::string model_with_tokenizer(const Scratch& s, const std::string& generation_config = "") {
  const fs::path dir = fs::path(s.path) / "model";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kMtpModel)) fs::create_symlink(e.path(), dir / e.path().filename());
  for (const auto& e : fs::directory_iterator(kData + "/generate/tokenizer")) fs::copy_file(e.path(), dir / e.path().filename());
  if (!generation_config.empty()) std::ofstream(dir / "generation_config.json") << generation_config;
  return dir.string();
}

struct Output {
  int exit_code;
  std::string out, err;
};

// Runs the binary with stdout and stderr apart.
Output run(const std::string& args) {
  Scratch s;
  const std::string err_file = s.path + "/stderr";
  const std::string cmd = std::string(NEMOTRON_BINARY) + " " + args + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  const int status = pclose(p);
  std::ifstream f(err_file);
  std::stringstream err;
  err << f.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out, err.str()};
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST(GenerateCli, GreedyIdsEqualTheReferenceAlsoInBatchesAndWithSpeculativeMtp) {
  Output r = run("generate --hf-model " + kMtpModel + " --input-ids " + kPrompt2 + " --max-new-tokens 20 --ignore-eos");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kTokens2 + "\n");  // no tokenizer in the directory: ids
  EXPECT_TRUE(contains(r.err, "prefill 19 tokens")) << r.err;
  EXPECT_TRUE(contains(r.err, "decode 19 tokens")) << r.err;
  EXPECT_TRUE(contains(r.err, "tokens/s")) << r.err;

  // A batch of different lengths, and the MTP speculative runs, give the same ids.
  const std::string batch = " --input-ids '" + kPrompt2 + ";" + kPrompt1 + "' --max-new-tokens 20 --ignore-eos";
  for (const std::string& spec : {std::string(), std::string(" --speculative mtp --num-draft-tokens 1"),
                                  std::string(" --speculative mtp --num-draft-tokens 3")}) {
    r = run("generate --hf-model " + kMtpModel + batch + spec);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, kTokens2 + "\n" + kTokens1 + "\n") << spec;
    if (!spec.empty()) {
      EXPECT_TRUE(contains(r.err, "mean accepted length")) << r.err;
      EXPECT_TRUE(contains(r.err, "acceptance per position [")) << r.err;
    }
  }
}

TEST(GenerateCli, StopsAtTheEosIdsOfGenerationConfig) {
  Scratch s;
  // Prompt 1's continuation has id 75 at step 2: generation_config.json's list wins over config.json.
  const std::string dir = model_with_tokenizer(s, R"({"eos_token_id": [75, 11]})");
  Output r = run("generate --hf-model " + dir + " --input-ids " + kPrompt1 + " --max-new-tokens 20 --print-ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[81, 42, 75]\n");
  EXPECT_TRUE(contains(r.err, "stopped by: eos")) << r.err;
  // Without generation_config.json, config.json's eos id 2 (step 3) applies.
  r = run("generate --hf-model " + kMtpModel + " --input-ids " + kPrompt1 + " --max-new-tokens 20");
  EXPECT_EQ(r.out, "[81, 42, 75, 2]\n");
  r = run("generate --hf-model " + kMtpModel + " --input-ids " + kPrompt1 + " --max-new-tokens 20 --eos-ids 42");
  EXPECT_EQ(r.out, "[81, 42]\n");
}

TEST(GenerateCli, StreamedTextIsTheDecodedIds) {
  Scratch s;
  const std::string dir = model_with_tokenizer(s);
  for (const std::string& extra : {std::string(), std::string(" --chat"), std::string(" --speculative mtp")}) {
    const std::string args = "generate --hf-model " + dir + " --prompt 'Hello world, é世😀' --max-new-tokens 24 --ignore-eos" + extra;
    Output ids = run(args + " --print-ids");
    ASSERT_EQ(ids.exit_code, 0) << ids.err;
    ASSERT_EQ(ids.out.front(), '[');
    Output text = run(args);
    ASSERT_EQ(text.exit_code, 0) << text.err;
    Output decoded = run("tokenize --tokenizer " + dir + " --decode '" + ids.out.substr(0, ids.out.size() - 1) + "'");
    ASSERT_EQ(decoded.exit_code, 0) << decoded.err;
    EXPECT_EQ(text.out, decoded.out) << extra;  // both end with one newline
  }
}

TEST(GenerateCli, ChatWrapsThePromptInTheTemplate) {
  Scratch s;
  const std::string dir = model_with_tokenizer(s);
  std::ofstream(s.path + "/chat.json") << R"([{"role": "user", "content": "Hello world"}])";
  Output prompt = run("tokenize --tokenizer " + dir + " --chat " + s.path + "/chat.json --add-generation-prompt");
  ASSERT_EQ(prompt.exit_code, 0) << prompt.err;
  Output by_ids = run("generate --hf-model " + dir + " --input-ids '" + prompt.out.substr(0, prompt.out.size() - 1) +
                      "' --max-new-tokens 10 --print-ids --ignore-eos");
  Output by_chat = run("generate --hf-model " + dir + " --prompt 'Hello world' --chat --max-new-tokens 10 --print-ids --ignore-eos");
  ASSERT_EQ(by_chat.exit_code, 0) << by_chat.err;
  EXPECT_EQ(by_chat.out, by_ids.out);
}

TEST(GenerateCli, SeededSamplingIsReproducible) {
  const std::string args = "generate --hf-model " + kMtpModel + " --input-ids '" + kPrompt2 + ";" + kPrompt1 +
                           "' --max-new-tokens 16 --ignore-eos --temperature 0.8 --top-k 50 --top-p 0.95 --min-p 0.01 "
                           "--repetition-penalty 1.1 --seed ";
  Output a = run(args + "7"), b = run(args + "7"), c = run(args + "8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  EXPECT_NE(a.out, kTokens2 + "\n" + kTokens1 + "\n");
  Output spec1 = run(args + "7 --speculative mtp --num-draft-tokens 2"), spec2 = run(args + "7 --speculative mtp --num-draft-tokens 2");
  ASSERT_EQ(spec1.exit_code, 0) << spec1.err;
  EXPECT_EQ(spec1.out, spec2.out);
}

TEST(GenerateCli, LoadsANativeCheckpoint) {
  Scratch s;
  const std::string dir = model_with_tokenizer(s);
  Output imported = run("convert import --hf-model " + dir + " --megatron-path " + s.path + "/native --ep 2");
  ASSERT_EQ(imported.exit_code, 0) << imported.out << imported.err;
  Output r = run("generate --megatron-load-path " + s.path + "/native --input-ids " + kPrompt2 +
                 " --max-new-tokens 20 --ignore-eos --print-ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kTokens2 + "\n");
  // Its tokenizer travelled with it.
  r = run("generate --megatron-load-path " + s.path + "/native --prompt Hello --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(GenerateCli, BadInputsAreClearErrors) {
  const std::string base = "generate --hf-model " + kMtpModel;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {base + " --input-ids 1,128", "outside the model's vocabulary"},
      {base + " --input-ids 1,x", "not a token id"},
      {"generate --hf-model " + kData + "/models/tiny_hybrid_legacy --input-ids 1,2 --speculative mtp",
       "needs a model with an MTP block"},
      {base + " --input-ids 1,2 --speculative mtp --num-draft-tokens 0", "at least 1"},
      {base + " --input-ids 1,2 --speculative eagle", "only 'mtp'"},
      {base + " --input-ids 1,2 --num-draft-tokens 2", "needs --speculative mtp"},
      {base + " --prompt Hello", "needs a tokenizer"},
      {base + " --prompt Hello --input-ids 1", "exactly one of"},
      {base + " --input-ids 1,2 --top-p 0.5", "only applies when sampling"},
      {base + " --input-ids 1,2 --temperature 1 --top-p 0", "top-p must be in (0, 1]"},
      {base + " --input-ids 1,2 --max-new-tokens -1", "max-new-tokens must be >= 0"},
      {base + " --input-ids 1,2 --do-sample --temperature 0", "temperature 0 means greedy"},
      {base + " --input-ids 1,2 --temperature -1", "--temperature must be >= 0"},
      {base + " --input-ids 1,2 --stop x", "needs a tokenizer"},
      {base + " --input-ids 1,2 --tp 2", "one process"},
      {"generate --input-ids 1,2", "give the model"},
      {"generate --hf-model /nonexistent --input-ids 1,2", "nonexistent"},
  };
  for (const auto& [args, message] : cases) {
    Output r = run(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, message)) << args << "\n" << r.err;
  }
}
