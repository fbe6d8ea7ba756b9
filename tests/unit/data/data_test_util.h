// Shared helpers of the data-pipeline tests: the reference files of tools/make_data_reference.py
// (tests/data/data/), temporary directories and working-directory switches.
#pragma once
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/md5.h"
#include "io/json.h"

namespace data_test {

inline std::string data_dir() { return std::string(NEMOTRON_TEST_DATA) + "/data"; }
inline std::string data_file(const std::string& name) { return data_dir() + "/" + name; }
inline nemotron::json::Value load_json(const std::string& name) { return nemotron::json::parse_file(data_file(name)); }

// A double written by Python's float.hex().
inline double hex_double(const nemotron::json::Value& v) { return std::strtod(v.as_string().c_str(), nullptr); }

inline std::vector<int64_t> ints(const nemotron::json::Value& v) {
  std::vector<int64_t> out;
  for (const auto& x : v.items()) out.push_back(x.as_int());
  return out;
}

// md5 of the values as little-endian int64 bytes (the generator's md5_of(a.astype("<i8"))).
inline std::string md5_int64(const std::vector<int64_t>& values) {
  return nemotron::data::md5_hex(
      std::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t)));
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("nt_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
  static inline int counter_ = 0;
};

// Runs a scope in another working directory (the reference descriptions name prefixes relative to
// tests/data/data).
class ScopedChdir {
 public:
  explicit ScopedChdir(const std::string& dir) : old_(std::filesystem::current_path()) {
    std::filesystem::current_path(dir);
  }
  ~ScopedChdir() { std::filesystem::current_path(old_); }

 private:
  std::filesystem::path old_;
};

}  // namespace data_test
