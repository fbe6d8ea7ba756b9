// The text Python's json.dumps(value, indent=4) writes, for the small descriptions Megatron hashes to
// name its dataset caches (MegatronDataset.unique_description, BlendedDataset.unique_description).
// Matching it byte for byte makes our cache names follow Megatron's md5 scheme.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nemotron::data {

class PyJson {
 public:
  using Items = std::vector<PyJson>;
  using Entries = std::vector<std::pair<std::string, PyJson>>;

  PyJson() = default;  // None -> null
  static PyJson integer(int64_t v);
  static PyJson real(double v);  // a Python float: written as repr(v)
  static PyJson string(std::string s);
  static PyJson list(Items items);
  static PyJson dict(Entries entries);

  // json.dumps(self, indent=indent): ", " / ": " separators, ensure_ascii escapes.
  std::string dump(int indent = 4) const;

 private:
  enum class Kind { Null, Int, Real, String, List, Dict };
  void write(std::string& out, int indent, int level) const;
  Kind kind_ = Kind::Null;
  int64_t int_ = 0;
  double real_ = 0;
  std::string text_;
  Items items_;
  Entries entries_;
};

// Python's repr(float): the shortest round-trip digits, fixed notation for exponents in [-4, 16),
// else d.ddde±XX; "1.0" keeps its ".0"; nan/inf as json.dumps writes them (NaN, Infinity).
std::string python_float_repr(double v);

}  // namespace nemotron::data
