// Element types. Names follow safetensors ("F32", "BF16", "F8_E4M3", ...); F4_E2M1 is packed two
// codes per byte with the even element in the low nibble.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace nemotron {

enum class DType : uint8_t { F32, F64, BF16, F16, F8_E4M3, F8_E5M2, F4_E2M1, I8, U8, I16, I32, I64, Bool };

inline constexpr DType kAllDTypes[] = {DType::F32,     DType::F64,     DType::BF16, DType::F16, DType::F8_E4M3,
                                       DType::F8_E5M2, DType::F4_E2M1, DType::I8,   DType::U8,  DType::I16,
                                       DType::I32,     DType::I64,     DType::Bool};

// Bits per element: 4 for F4_E2M1, otherwise 8 × bytes.
int dtype_bits(DType t);
// Bytes needed for n elements (rounds packed 4-bit types up to whole bytes).
size_t dtype_nbytes(DType t, size_t n);
bool dtype_is_float(DType t);
std::string_view dtype_name(DType t);
// Parses the safetensors name ("F32", "BF16", "F8_E4M3", ...); also accepts torch-style names
// ("float32", "bfloat16", "float16"). Returns nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view name);

}  // namespace nemotron
