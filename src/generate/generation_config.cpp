#include "generate/generation_config.h"

#include "core/error.h"
#include "io/file_util.h"
#include "io/json.h"

namespace nemotron::generate {

namespace {

std::vector<int32_t> eos_ids_in(const std::string& path) {
  if (!io::path_exists(path)) return {};
  const json::Value doc = json::parse_file(path);
  const json::Value* v = doc.is_object() ? doc.find("eos_token_id") : nullptr;
  if (!v || v->is_null()) return {};
  auto id = [&](const json::Value& x) {
    NT_CHECK(x.is_number() && x.is_integer() && x.as_int() >= 0 && x.as_int() <= INT32_MAX,
             "{}: eos_token_id must be a token id or a list of them, got {}", path, json::dump(*v));
    return static_cast<int32_t>(x.as_int());
  };
  std::vector<int32_t> ids;
  if (v->is_array()) {
    for (const json::Value& x : v->items()) ids.push_back(id(x));
  } else {
    ids.push_back(id(*v));
  }
  return ids;
}

}  // namespace

std::vector<int32_t> eos_ids_from_model_dir(const std::string& dir) {
  std::vector<int32_t> ids = eos_ids_in(io::join_path(dir, "generation_config.json"));
  return ids.empty() ? eos_ids_in(io::join_path(dir, "config.json")) : ids;
}

}  // namespace nemotron::generate
