#include "cli/common.h"

#include <cstdlib>

#include "core/strings.h"

namespace nemotron::cli {

void append_layout_flags(std::vector<FlagSpec>& flags) {
  flags.push_back({"tp", "tensor parallel size", true, "1", {"tensor-model-parallel-size"}});
  flags.push_back({"ep", "expert parallel size", true, "1", {"expert-model-parallel-size"}});
  flags.push_back({"pp", "pipeline parallel size", true, "1", {"pipeline-model-parallel-size"}});
  flags.push_back({"etp", "expert tensor parallel size (only 1 is supported)", true, "1", {}});
}

checkpoint::Layout layout_from_args(const Args& args) {
  checkpoint::Layout l;
  auto size = [&](const char* name) {
    int64_t v = args.get_int(name, 1);
    NT_CHECK(v >= 1 && v <= 4096, "--{} must be between 1 and 4096, got {}", name, v);
    return static_cast<int>(v);
  };
  l.tp = size("tp");
  l.ep = size("ep");
  l.pp = size("pp");
  NT_CHECK(size("etp") == 1, "--etp other than 1 is not supported yet");
  return l;
}

std::optional<DType> dtype_from_args(const Args& args) {
  auto v = args.get("torch-dtype");
  if (!v) return std::nullopt;
  std::optional<DType> t = parse_dtype(*v);
  NT_CHECK(t && (*t == DType::F32 || *t == DType::BF16 || *t == DType::F16),
           "--torch-dtype must be float32, bfloat16 or float16, got '{}'", *v);
  return t;
}

Tensor parse_input_ids(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != '[' && c != ']' && c != ' ') s += c;
  std::vector<int64_t> ids;
  int64_t rows = 0, cols = -1;
  for (const std::string& row : split(s, ';')) {
    int64_t n = 0;
    for (const std::string& tok : split(row, ',')) {
      char* end = nullptr;
      long long v = std::strtoll(tok.c_str(), &end, 10);
      NT_CHECK(!tok.empty() && end && *end == '\0', "--input-ids: '{}' is not an integer (expected e.g. 1,2,3)", tok);
      ids.push_back(v);
      ++n;
    }
    NT_CHECK(cols < 0 || n == cols, "--input-ids: sequences separated by ';' must have equal lengths");
    cols = n;
    ++rows;
  }
  return Tensor::from_vector(ids, {rows, cols});
}

}  // namespace nemotron::cli
