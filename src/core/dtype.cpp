#include "core/dtype.h"

#include <string>

#include "core/error.h"

namespace nemotron {

int dtype_bits(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 64;
    case DType::F32: case DType::I32: return 32;
    case DType::BF16: case DType::F16: case DType::I16: return 16;
    case DType::F8_E4M3: case DType::F8_E5M2: case DType::I8: case DType::U8: case DType::Bool: return 8;
    case DType::F4_E2M1: return 4;
  }
  fail("unknown dtype id {}", static_cast<int>(t));
}

size_t dtype_nbytes(DType t, size_t n) { return (n * dtype_bits(t) + 7) / 8; }

bool dtype_is_float(DType t) {
  switch (t) {
    case DType::F32: case DType::F64: case DType::BF16: case DType::F16:
    case DType::F8_E4M3: case DType::F8_E5M2: case DType::F4_E2M1: return true;
    default: return false;
  }
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::F8_E5M2: return "F8_E5M2";
    case DType::F4_E2M1: return "F4_E2M1";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I16: return "I16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtype_name(t) == name) return t;
  if (name == "float32" || name == "fp32") return DType::F32;
  if (name == "float64" || name == "fp64") return DType::F64;
  if (name == "bfloat16" || name == "bf16") return DType::BF16;
  if (name == "float16" || name == "fp16" || name == "half") return DType::F16;
  return std::nullopt;
}

}  // namespace nemotron
