// safetensors reader and writer: byte identity with Python's safetensors, zero-copy views, and one
// test per header validation rule with the message checked.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "io/file_util.h"
#include "io_test_util.h"

namespace nemotron::io {
namespace {

using testing::expect_error;
using testing::ScratchDir;

// ---------------------------------------------------------------- Python reference file

// The table of tools/io/make_fixtures.py (shapes as the file stores them: FP4 counts 4-bit values).
struct FormulaTensor {
  const char* name;
  DType dtype;
  Shape shape;
};
const std::vector<FormulaTensor> kFormulaTensors = {
    {"b.f32", DType::F32, {3, 5}},        {"a.f32", DType::F32, {2, 2}},      {"Z.upper", DType::F32, {1}},
    {"bf16.weight", DType::BF16, {4, 3}}, {"f16", DType::F16, {7}},           {"f64", DType::F64, {2}},
    {"i64", DType::I64, {3}},             {"i32", DType::I32, {2, 1}},        {"i16", DType::I16, {5}},
    {"i8", DType::I8, {9}},               {"u8", DType::U8, {3, 3}},          {"flag", DType::Bool, {6}},
    {"e4m3", DType::F8_E4M3, {2, 8}},     {"e5m2", DType::F8_E5M2, {11}},     {"fp4", DType::F4_E2M1, {3, 8}},
    {"scalar", DType::F32, {}},           {"empty", DType::BF16, {0, 4}},
};

std::string formula_bytes(size_t n, size_t k, DType dtype) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    unsigned b = (i * 37 + k * 11 + 5) % 251;
    out[i] = static_cast<char>(dtype == DType::Bool ? (b & 1) : b);
  }
  return out;
}

Tensor tensor_from_bytes(const std::string& bytes, Shape shape, DType dtype) {
  Tensor t = Tensor::empty(std::move(shape), dtype);
  EXPECT_EQ(t.nbytes(), bytes.size());
  if (!bytes.empty()) std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

TEST(SafetensorsPython, ReadsFileWrittenByPython) {
  SafetensorsFile f = SafetensorsFile::open(testing::test_data("python_save_file.safetensors"));
  EXPECT_EQ(f.metadata(), (SafetensorsMetadata{{"format", "pt"}}));
  ASSERT_EQ(f.entries().size(), kFormulaTensors.size() + 1);
  for (size_t k = 0; k < kFormulaTensors.size(); ++k) {
    const auto& ft = kFormulaTensors[k];
    SCOPED_TRACE(ft.name);
    const SafetensorsEntry& e = f.entry(ft.name);
    EXPECT_EQ(e.dtype, ft.dtype);
    EXPECT_EQ(e.shape, ft.shape);
    Tensor t = f.tensor(ft.name);
    EXPECT_EQ(t.dtype(), ft.dtype);
    EXPECT_EQ(t.shape(), ft.shape);
    EXPECT_EQ(tensor_bytes(t), formula_bytes(e.nbytes(), k, ft.dtype));
  }
  // transposed = b.f32.t(): element (i, j) is b's (j, i).
  Tensor tr = f.tensor("transposed");
  Tensor b = f.tensor("b.f32");
  ASSERT_EQ(tr.shape(), (Shape{5, 3}));
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      float x = tr.data<float>()[i * 3 + j], y = b.data<float>()[j * 5 + i];
      EXPECT_EQ(std::memcmp(&x, &y, 4), 0);
    }
  // Python's layout: descending dtype alignment, then name.
  std::vector<std::string> order;
  for (const auto& e : f.entries()) order.push_back(e.name);
  EXPECT_EQ(order, (std::vector<std::string>{"i64", "f64", "Z.upper", "a.f32", "b.f32", "scalar", "transposed", "i32",
                                             "bf16.weight", "empty", "f16", "i16", "e4m3", "e5m2", "i8", "u8", "fp4",
                                             "flag"}));
}

TEST(SafetensorsPython, WriterIsByteIdenticalToPythonSaveFile) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  Tensor base;
  // Declared in reverse: the layout must not depend on the order given.
  for (size_t k = kFormulaTensors.size(); k-- > 0;) {
    const auto& ft = kFormulaTensors[k];
    size_t n = dtype_nbytes(ft.dtype, static_cast<size_t>(shape_numel(ft.shape)));
    Tensor t = tensor_from_bytes(formula_bytes(n, k, ft.dtype), ft.shape, ft.dtype);
    if (k == 0) base = t;
    tensors.emplace_back(ft.name, t);
  }
  Tensor view = base.transpose(0, 1);  // a strided view; the writer makes it contiguous
  ASSERT_FALSE(view.is_contiguous());
  tensors.emplace_back("transposed", view);

  ScratchDir dir;
  std::string path = dir.file("ours.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}});
  std::string ours = testing::read_bytes(path);
  std::string python = testing::read_bytes(testing::test_data("python_save_file.safetensors"));
  EXPECT_EQ(ours.size(), python.size());
  EXPECT_TRUE(ours == python) << "first difference at byte "
                              << std::mismatch(ours.begin(), ours.end(), python.begin(), python.end()).first -
                                     ours.begin();
  EXPECT_EQ(testing::list_dir(dir.path()), std::vector<std::string>{"ours.safetensors"});  // no temp left
}

TEST(SafetensorsPython, HeaderEscapingMatchesSerdeJson) {
  // Reference text from safetensors 0.8 (serde_json): short escapes, \u00XX, raw UTF-8, '/' as is.
  std::vector<SafetensorsEntry> entries = {{"a\xC3\xA9\"\n\x01/", DType::F32, {0, 3}, 0, 0},
                                           {"b", DType::F32, {1}, 0, 4}};
  std::string expected =
      "{\"__metadata__\":{\"alpha\":\"x\xC3\xA9\\t\",\"format\":\"pt\"},"
      "\"a\xC3\xA9\\\"\\n\\u0001/\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  expected.append((8 - expected.size() % 8) % 8, ' ');
  EXPECT_EQ(safetensors_header(entries, {{"format", "pt"}, {"alpha", "x\xC3\xA9\t"}}), expected);
}

// ---------------------------------------------------------------- reading behaviour

std::string write_file(const ScratchDir& dir, const std::string& header, const std::string& data,
                       const std::string& name = "t.safetensors") {
  std::string path = dir.file(name);
  testing::write_bytes(path, testing::safetensors_bytes(header, data));
  return path;
}

TEST(SafetensorsRead, ViewsAreZeroCopyAndCopyOnWrite) {
  ScratchDir dir;
  std::string path = dir.file("x.safetensors");
  save_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2})}});
  SafetensorsFile f = SafetensorsFile::open(path);
  Tensor a = f.tensor("w"), b = f.tensor("w");
  EXPECT_EQ(a.raw_data(), b.raw_data());  // both view the same mapped bytes
  EXPECT_EQ(a.to_f32_vector(), (std::vector<float>{1, 2, 3, 4}));
  // The pointer lies in the file's data region of the mapping: data_start bytes after the map start.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.raw_data()) % 8, 0u);
  a.data<float>()[0] = 42;  // private mapping: changes memory, not the file
  EXPECT_EQ(b.data<float>()[0], 42);
  EXPECT_EQ(SafetensorsFile::open(path).tensor("w").to_f32_vector()[0], 1.0f);
}

TEST(SafetensorsRead, TensorOutlivesTheFileObject) {
  ScratchDir dir;
  std::string path = dir.file("x.safetensors");
  save_safetensors(path, {{"w", Tensor::from_vector(std::vector<float>{5, 6}, {2})}});
  Tensor t;
  {
    SafetensorsFile f = SafetensorsFile::open(path);
    t = f.tensor("w");
  }
  EXPECT_EQ(t.to_f32_vector(), (std::vector<float>{5, 6}));
}

TEST(SafetensorsRead, MisalignedDataIsCopiedToAlignedMemory) {
  ScratchDir dir;
  float v[2] = {1.5f, -2.0f};
  std::string data = "ab";
  data.append(reinterpret_cast<const char*>(v), 8);
  std::string header =
      R"({"pad":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"x":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  SafetensorsFile f = SafetensorsFile::open(write_file(dir, header, data));
  Tensor x = f.tensor("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw_data()) % 4, 0u);
  EXPECT_EQ(x.to_f32_vector(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(SafetensorsRead, AcceptsFp4UnderBothNamesWithOddCounts) {
  ScratchDir dir;
  std::string header =
      R"({"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]},"b":{"dtype":"F4_E2M1","shape":[2,2],"data_offsets":[2,4]}})";
  SafetensorsFile f = SafetensorsFile::open(write_file(dir, header, "\x21\x03\x54\x76"));
  EXPECT_EQ(f.entry("a").dtype, DType::F4_E2M1);
  EXPECT_EQ(f.entry("b").dtype, DType::F4_E2M1);
  EXPECT_EQ(f.tensor("a").nbytes(), 2u);
}

TEST(SafetensorsRead, EmptyScalarGapsAndMetadata) {
  ScratchDir dir;
  // A gap between tensors and trailing bytes are allowed (nothing reads them).
  std::string header =
      R"({"__metadata__":{"k":"v"},"s":{"dtype":"I32","shape":[],"data_offsets":[8,12]},)"
      R"("e":{"dtype":"F32","shape":[4,0],"data_offsets":[12,12]},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})";
  std::string data(16, '\0');
  data[8] = 7;
  SafetensorsFile f = SafetensorsFile::open(write_file(dir, header, data));
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.tensor("s").item(), 7.0);
  EXPECT_EQ(f.tensor("e").numel(), 0);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"e", "s", "z"}));
}

TEST(SafetensorsRead, ConcurrentTensorAccess) {
  ScratchDir dir;
  std::string path = dir.file("x.safetensors");
  std::vector<std::pair<std::string, Tensor>> ts;
  for (int i = 0; i < 16; ++i) ts.emplace_back(fmt::format("t{}", i), Tensor::full({64}, i));
  save_safetensors(path, ts);
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<std::thread> threads;
  std::vector<double> sums(4, 0);
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < 16; ++i)
        for (float x : f.tensor(fmt::format("t{}", i)).to_f32_vector()) sums[w] += x;
    });
  for (auto& t : threads) t.join();
  for (double s : sums) EXPECT_EQ(s, 64.0 * 120);
}

TEST(SafetensorsRead, UnknownNameSuggestsClosest) {
  ScratchDir dir;
  std::string path = dir.file("x.safetensors");
  save_safetensors(path, {{"model.layers.0.weight", Tensor::full({1}, 1)}});
  SafetensorsFile f = SafetensorsFile::open(path);
  expect_error([&] { f.tensor("model.layers.0.weigth"); }, {path, "no tensor named 'model.layers.0.weigth'",
                                                             "model.layers.0.weight"});
}

// ---------------------------------------------------------------- validation errors

TEST(SafetensorsValidate, FileErrors) {
  ScratchDir dir;
  expect_error([&] { SafetensorsFile::open(dir.file("missing.safetensors")); }, {"missing.safetensors", "cannot"});
  expect_error([&] { SafetensorsFile::open(dir.path()); }, {dir.path(), "directory"});
  for (size_t n : {0, 1, 7}) {
    std::string path = dir.file("small.safetensors");
    testing::write_bytes(path, std::string(n, '\0'));
    expect_error([&] { SafetensorsFile::open(path); }, {path, fmt::format("file is {} bytes, too small", n)});
  }
}

TEST(SafetensorsValidate, HeaderLength) {
  ScratchDir dir;
  std::string path = dir.file("h.safetensors");
  testing::write_bytes(path, testing::le_u64(100'000'001) + std::string(64, ' '));
  expect_error([&] { SafetensorsFile::open(path); }, {path, "100000001", "limit of 100000000"});
  testing::write_bytes(path, testing::le_u64(~uint64_t{0}) + "{}");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "18446744073709551615", "limit"});
  testing::write_bytes(path, testing::le_u64(3) + "{}");
  expect_error([&] { SafetensorsFile::open(path); }, {path, "says 3 bytes, but only 2 bytes follow", "truncated"});
  testing::write_bytes(path, testing::le_u64(0));  // empty header text
  expect_error([&] { SafetensorsFile::open(path); }, {path, "not valid JSON"});
}

// Opens a file with this header and an all-zero data region of `data_size` bytes; expects an error
// mentioning every part (the file path is always checked).
void expect_header_error(const std::string& header, size_t data_size, std::vector<std::string> parts) {
  ScratchDir dir;
  std::string path = write_file(dir, header, std::string(data_size, '\0'));
  parts.push_back(path);
  expect_error([&] { SafetensorsFile::open(path); }, parts);
}

TEST(SafetensorsValidate, JsonStructure) {
  expect_header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})", 4, {"not valid JSON", "line 1"});
  expect_header_error(R"([1,2])", 0, {"header must be a JSON object", "array"});
  expect_header_error("{\"\xff\":{}}", 0, {"not valid UTF-8", "byte 2"});
  expect_header_error("{\"\xC0\xAF\":{}}", 0, {"not valid UTF-8"});  // overlong '/'
  expect_header_error(R"({"w":[1]})", 0, {"tensor 'w'", "must be an object", "array"});
  expect_header_error(R"({"__metadata__":{"a":1}})", 0, {"__metadata__ entry 'a' must be a string", "number"});
  expect_header_error(R"({"__metadata__":[1]})", 0, {"__metadata__ must be an object"});
  expect_header_error(
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8,
      {"tensor 'w' appears twice"});
  // Escaped and plain spellings of one name are the same name.
  expect_header_error(
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      8, {"tensor 'w' appears twice"});
}

TEST(SafetensorsValidate, EntryFields) {
  expect_header_error(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4, {"tensor 'w'", "no \"dtype\""});
  expect_header_error(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4, {"tensor 'w'", "no \"shape\""});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1]}})", 4, {"tensor 'w'", "no \"data_offsets\""});
  expect_header_error(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, {"tensor 'w'", "\"dtype\" must be a string"});
  expect_header_error(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4,
                      {"tensor 'w'", "unsupported dtype \"F17\"", "BF16", "F8_E4M3"});
  expect_header_error(R"({"w":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}})", 2, {"unsupported dtype \"U16\""});
  expect_header_error(R"({"w":{"dtype":"float32","shape":[1],"data_offsets":[0,4]}})", 4, {"unsupported dtype"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":3,"data_offsets":[0,4]}})", 4, {"tensor 'w'", "\"shape\" must be an array"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4,
                      {"tensor 'w'", "shape[0] must be a non-negative integer, got -1"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1,2.5],"data_offsets":[0,4]}})", 4,
                      {"shape[1] must be a non-negative integer, got 2.5"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1e2],"data_offsets":[0,400]}})", 400, {"got 1e2"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4, {"shape[0]", "string"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[Infinity],"data_offsets":[0,4]}})", 4, {"shape[0]", "Infinity"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[{"__float__":"Infinity"}],"data_offsets":[0,4]}})", 4,
                      {"shape[0] must be a non-negative integer"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})", 4,
                      {"shape[0] = 99999999999999999999 is too large"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4,
                      {"shape[0] = 9223372036854775808 is too large"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4,
                      {"tensor 'w'", "too many elements"});
  expect_header_error(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4,
                      {"tensor 'w'", "too large for F64"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4, {"\"data_offsets\" must be an array [begin, end]"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":{"a":1}}})", 4, {"\"data_offsets\" must be an array"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", 4, {"data_offsets[1] must be a non-negative integer"});
}

TEST(SafetensorsValidate, OffsetsAndSizes) {
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4, {"tensor 'w'", "[4, 0] end before they begin"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4,
                      {"tensor 'w'", "[0, 8] reach past the end of the data region (4 bytes)", "truncated"});
  expect_header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", 4, {"past the end"});
  expect_header_error(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}})", 8,
                      {"tensor 'w'", "hold 4 bytes, but shape [3] of BF16 needs 6 bytes"});
  expect_header_error(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", 8, {"needs 2 bytes"});
  expect_header_error(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
      {"tensor 'b' (bytes [4, 12)) overlaps tensor 'a' (bytes [0, 8))"});
  // Overlap with a tensor that is not the immediate predecessor in offset order.
  expect_header_error(
      R"({"big":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},"s1":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
      R"("s2":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})",
      16, {"overlaps tensor 'big'"});
  // Identical ranges overlap too.
  expect_header_error(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", 4,
      {"overlaps"});
}

// ---------------------------------------------------------------- writer

TEST(SafetensorsWrite, AnyOrderAnyDeviceRoundTrip) {
  ScratchDir dir;
  std::string path = dir.file("w.safetensors");
  Tensor a = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector(std::vector<int64_t>{7, 8}, {2});
  SafetensorsWriter w(path, {{"a", DType::F32, {3, 2}}, {"b", DType::I64, {2}}}, {{"note", "x"}});
  EXPECT_FALSE(path_exists(path));
  w.write("b", b);
  w.write("a", a.transpose(0, 1));
  EXPECT_FALSE(path_exists(path));  // published only by finish()
  w.finish();
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.tensor("a").to_f32_vector(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(f.tensor("b").to_i64_vector(), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(f.metadata().at("note"), "x");
  // b (I64) comes first: higher alignment.
  EXPECT_EQ(f.entries()[0].name, "b");
  EXPECT_EQ(f.data_start() % 8, 0u);
}

TEST(SafetensorsWrite, Errors) {
  ScratchDir dir;
  std::string path = dir.file("w.safetensors");
  expect_error([&] { SafetensorsWriter(path, {{"a", DType::F32, {1}}, {"a", DType::I8, {1}}}); },
               {path, "tensor 'a' is declared twice"});
  expect_error([&] { SafetensorsWriter(path, {{"__metadata__", DType::F32, {1}}}); }, {"reserved"});
  expect_error([&] { SafetensorsWriter(path, {{"a", DType::F32, {-1}}}); }, {"tensor 'a'", "negative dimension"});
  expect_error([&] { SafetensorsWriter(dir.file("no/such/dir/x.safetensors"), {}); }, {"no/such/dir", "directory exist"});
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::F32, {1}}});
    expect_error([&] { w.write("c", Tensor::full({1}, 0)); }, {"tensor 'c' was not declared"});
    expect_error([&] { w.write("a", Tensor::full({3}, 0)); }, {"tensor 'a' was declared F32[2] but is F32[3]"});
    expect_error([&] { w.write("a", Tensor::full({2}, 0, DType::BF16)); }, {"declared F32[2] but is BF16[2]"});
    expect_error([&] { w.write_bytes("a", "abc", 3); }, {"needs 8 bytes, got 3"});
    w.write("a", Tensor::full({2}, 1));
    expect_error([&] { w.write("a", Tensor::full({2}, 1)); }, {"tensor 'a' written twice"});
    expect_error([&] { w.finish(); }, {"tensor 'b' was declared but never written"});
  }
  EXPECT_TRUE(testing::list_dir(dir.path()).empty());  // nothing published, temp removed
}

TEST(SafetensorsWrite, ReplacesExistingFileAtomically) {
  ScratchDir dir;
  std::string path = dir.file("w.safetensors");
  testing::write_bytes(path, "old contents");
  {
    SafetensorsWriter w(path, {{"a", DType::F32, {1}}});
    w.write("a", Tensor::full({1}, 3));
    EXPECT_EQ(testing::read_bytes(path), "old contents");  // untouched until finish
    w.finish();
  }
  EXPECT_EQ(SafetensorsFile::open(path).tensor("a").item(), 3.0);
  {
    SafetensorsWriter abandoned(path, {{"a", DType::F32, {1}}});
    abandoned.write("a", Tensor::full({1}, 9));
  }  // destroyed without finish(): the old file stays
  EXPECT_EQ(SafetensorsFile::open(path).tensor("a").item(), 3.0);
  EXPECT_EQ(testing::list_dir(dir.path()), std::vector<std::string>{"w.safetensors"});
}

}  // namespace
}  // namespace nemotron::io
