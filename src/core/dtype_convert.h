// Bit-exact conversions between element types (see spec/quant.md §1).
//
// Float → narrower float: round to nearest, ties to even, computed from the exact source value
// (f64 → bf16 and i64 → bf16 round once, never through an intermediate type). Per format:
//   bf16, f16: overflow → ±inf; NaN → quiet NaN with the sign and the top payload bits kept
//              (as x86 F16C / AVX512-BF16 do).
//   e4m3 (e4m3fn): max ±448, no inf, NaN only S.1111.111. Values that round beyond 448 and ±inf
//              become ±448 when `saturate` (the default), else NaN (0x7F, sign kept). NaN → 0x7F|sign.
//              Default saturate because the quantizers whose output we must reproduce all saturate:
//              ModelOpt clamps to ±448 before the cast, TE clips, CUDA casts with __NV_SATFINITE.
//              PyTorch's CPU `.to(torch.float8_e4m3fn)` does not saturate: pass saturate=false to
//              match it (then |x| > 464 → NaN; 464 itself is a tie that goes to 448).
//   e5m2: max ±57344, has ±inf. Default non-saturating like IEEE and PyTorch: |x| ≥ 61440 and ±inf
//              → ±inf; with `saturate` they become ±57344. NaN → 0x7F|sign (as PyTorch).
//   e2m1: max ±6, no inf, no NaN: out-of-range and ±inf saturate to ±6 (ModelOpt, TE, PTX
//              cvt.rn.satfinite); NaN cannot be encoded and throws nemotron::Error.
// Decoding is exact (every source value is representable in f32) and keeps NaN payload bits.
//
// Float → integer: truncation toward zero; NaN or a value outside the target's range throws
// nemotron::Error naming the element and its value. Integer → integer: out of range throws.
// Integer → float: one RNE rounding (i64 → f32/bf16/... included). Anything → bool: nonzero → 1
// (NaN is nonzero, as in C++ and PyTorch). Bool sources read any nonzero byte as 1.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace nemotron {

float bf16_to_f32(uint16_t bits);
uint16_t f32_to_bf16(float v);
uint16_t f64_to_bf16(double v);
float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float v);
uint16_t f64_to_f16(double v);
float e4m3_to_f32(uint8_t bits);
uint8_t f32_to_e4m3(float v, bool saturate = true);
uint8_t f64_to_e4m3(double v, bool saturate = true);
float e5m2_to_f32(uint8_t bits);
uint8_t f32_to_e5m2(float v, bool saturate = false);
uint8_t f64_to_e5m2(double v, bool saturate = false);
float e2m1_to_f32(uint8_t code);  // low nibble used
uint8_t f32_to_e2m1(float v);     // 4-bit code in the low nibble; throws on NaN
uint8_t f64_to_e2m1(double v);

// Converts n elements between any two dtypes (contiguous buffers, which must not overlap unless
// src == dst with equal types). Packed F4_E2M1 buffers hold n codes in (n+1)/2 bytes, even index in
// the low nibble; for odd n the unused high nibble of the last byte is written as 0. FP8 targets use
// the defaults above (e4m3 saturates, e5m2 overflows to inf). Throws nemotron::Error (naming the
// element index and value) for NaN or out-of-range values going to an integer type, and for NaN
// going to F4_E2M1; dst may then be partly written.
void convert(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

}  // namespace nemotron
