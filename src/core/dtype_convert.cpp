#include "core/dtype_convert.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"

namespace nemotron {
namespace {

// A narrow binary float format. Codes are sign | exponent | mantissa, the magnitude codes of
// non-negative values increase with the value, so "max_code" bounds the finite ones.
struct FloatFormat {
  int exp_bits;
  int man_bits;
  int bias;
  uint32_t max_code;     // largest finite magnitude
  bool has_inf;          // all-ones exponent with zero mantissa is inf, the rest NaN
  uint32_t nan_code;     // the quiet NaN we produce (magnitude)
  bool nan_payload;      // NaN keeps the top mantissa bits of the source NaN
};
constexpr FloatFormat kBF16{8, 7, 127, 0x7F7F, true, 0x7FC0, true};
constexpr FloatFormat kF16{5, 10, 15, 0x7BFF, true, 0x7E00, true};
constexpr FloatFormat kE4M3{4, 3, 7, 0x7E, false, 0x7F, false};
constexpr FloatFormat kE5M2{5, 2, 15, 0x7B, true, 0x7F, false};
constexpr FloatFormat kE2M1{2, 1, 1, 0x7, false, 0, false};  // no NaN: callers reject NaN first

template <typename F>
struct SourceTraits;
template <>
struct SourceTraits<float> {
  using Bits = uint32_t;
  static constexpr int kManBits = 23, kBias = 127;
};
template <>
struct SourceTraits<double> {
  using Bits = uint64_t;
  static constexpr int kManBits = 52, kBias = 1023;
};

// cond ? x : y as bit masks. Plain ternaries let GCC turn the unselected arm's floating-point
// operation into a branch that it then cannot vectorise (it may not speculate FP ops under the
// default -ftrapping-math); with masks every arm is computed and the loops vectorise.
template <typename Bits>
inline Bits blend(bool cond, Bits x, Bits y) {
  const Bits mask = Bits(0) - Bits(cond);
  return (x & mask) | (y & ~mask);
}

// Rounds x (float or double, taken exactly) to format F, ties to even. Branch-free so that bulk
// loops vectorise. Overflow (including ±inf) gives the saturated max when kSaturate, else inf where
// the format has one, else NaN.
template <const FloatFormat& F, bool kSaturate, typename Src>
inline uint32_t encode(Src x) {
  using Traits = SourceTraits<Src>;
  using Bits = typename Traits::Bits;
  using Signed = std::make_signed_t<Bits>;  // compares are signed: a < 2^(n-1), and SSE2 has no unsigned ones
  constexpr int kSrcBits = 8 * sizeof(Bits);
  constexpr int kDrop = Traits::kManBits - F.man_bits;
  constexpr Bits kAbsMask = ~Bits(0) >> 1;
  constexpr Bits kInf = kAbsMask >> Traits::kManBits << Traits::kManBits;
  // Smallest normal of the target, and a power of two whose ulp is the target's subnormal step.
  constexpr Bits kMinNormal = Bits(Traits::kBias + 1 - F.bias) << Traits::kManBits;
  constexpr Bits kMagic = Bits(Traits::kBias + 1 - F.bias + kDrop) << Traits::kManBits;
  constexpr Bits kRebias = Bits(F.bias - Traits::kBias) << Traits::kManBits;  // wraps: fine, unsigned
  constexpr uint32_t kInfCode = ((1u << F.exp_bits) - 1) << F.man_bits;
  constexpr uint32_t kOverflowCode = kSaturate ? F.max_code : F.has_inf ? kInfCode : F.nan_code;

  const Bits bits = std::bit_cast<Bits>(x);
  if constexpr (&F == &kBF16 && std::is_same_v<Src, float> && !kSaturate) {
    // The hottest bulk path (f32 → bf16), in fewer operations: the same rounding applied to the
    // signed bits. For finite x the carry never reaches the sign; rounding past the max gives inf,
    // and f32 subnormals line up with bf16's.
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (bits >> 16) | 0x0040u;
    return blend((bits & kAbsMask) > kInf, quiet_nan, rounded);
  }
  const uint32_t sign = static_cast<uint32_t>(bits >> (kSrcBits - 1)) << (F.exp_bits + F.man_bits);
  const Signed a = static_cast<Signed>(bits & kAbsMask);
  // Below the normal range the FPU does the rounding: a + kMagic rounds a to the subnormal step.
  [[maybe_unused]] const Bits sub = std::bit_cast<Bits>(std::bit_cast<Src>(a) + std::bit_cast<Src>(kMagic)) - kMagic;
  // Normal range: rebias the exponent, round the dropped bits to nearest even; a mantissa carry
  // moves into the exponent, which is what rounding up to the next binade means.
  const Bits normal = (Bits(a) + kRebias + ((Bits(1) << (kDrop - 1)) - 1) + ((Bits(a) >> kDrop) & 1)) >> kDrop;
  Bits code = normal;
  // With the same exponent range (bf16 from f32) the source's subnormals line up with the target's,
  // so the fixed-position rounding above is already right for them.
  if constexpr (F.bias != Traits::kBias) code = blend(a < Signed(kMinNormal), sub, normal);
  // ±inf lands here too: its "normal" code is beyond max_code.
  code = blend(Signed(code) > Signed(F.max_code), Bits(kOverflowCode), code);
  Bits nan = F.nan_code;
  if constexpr (F.nan_payload) nan |= (Bits(a) >> kDrop) & ((1u << F.man_bits) - 1);
  code = blend(a > Signed(kInf), nan, code);
  return sign | static_cast<uint32_t>(code);
}

// Decodes a code of format F exactly to f32 (every narrow value fits). NaN keeps its payload bits.
template <const FloatFormat& F>
inline float decode(uint32_t code) {
  constexpr int kSignShift = F.exp_bits + F.man_bits;
  constexpr uint32_t kManMask = (1u << F.man_bits) - 1;
  constexpr uint32_t kExpAllOnes = (1u << F.exp_bits) - 1;
  constexpr int kSubExp = 1 - F.bias - F.man_bits;  // subnormal value = m * 2^kSubExp
  static_assert(kSubExp >= -126, "subnormal step must be a normal f32");
  constexpr float kSubStep = std::bit_cast<float>(static_cast<uint32_t>(kSubExp + 127) << 23);

  const uint32_t sign = ((code >> kSignShift) & 1u) << 31;
  const uint32_t a = code & ((1u << kSignShift) - 1);
  const uint32_t e = a >> F.man_bits;
  const uint32_t m = a & kManMask;
  const uint32_t normal = (a << (23 - F.man_bits)) + (static_cast<uint32_t>(127 - F.bias) << 23);
  const uint32_t sub = std::bit_cast<uint32_t>(static_cast<float>(static_cast<int32_t>(m)) * kSubStep);
  uint32_t r = blend(e == 0, sub, normal);
  if constexpr (F.has_inf) r = blend(e == kExpAllOnes, 0x7F800000u | (m << (23 - F.man_bits)), r);
  if constexpr (!F.has_inf && F.max_code < (1u << kSignShift) - 1) r = blend(a > F.max_code, 0x7FC00000u, r);
  return std::bit_cast<float>(sign | r);
}

constexpr const char* kE2M1NanHint = "E2M1 has no NaN; replace or mask NaNs before quantizing";

}  // namespace

float bf16_to_f32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
uint16_t f32_to_bf16(float v) { return static_cast<uint16_t>(encode<kBF16, false>(v)); }
uint16_t f64_to_bf16(double v) { return static_cast<uint16_t>(encode<kBF16, false>(v)); }
float f16_to_f32(uint16_t bits) { return decode<kF16>(bits); }
uint16_t f32_to_f16(float v) { return static_cast<uint16_t>(encode<kF16, false>(v)); }
uint16_t f64_to_f16(double v) { return static_cast<uint16_t>(encode<kF16, false>(v)); }
float e4m3_to_f32(uint8_t bits) { return decode<kE4M3>(bits); }
uint8_t f32_to_e4m3(float v, bool saturate) {
  return static_cast<uint8_t>(saturate ? encode<kE4M3, true>(v) : encode<kE4M3, false>(v));
}
uint8_t f64_to_e4m3(double v, bool saturate) {
  return static_cast<uint8_t>(saturate ? encode<kE4M3, true>(v) : encode<kE4M3, false>(v));
}
float e5m2_to_f32(uint8_t bits) { return decode<kE5M2>(bits); }
uint8_t f32_to_e5m2(float v, bool saturate) {
  return static_cast<uint8_t>(saturate ? encode<kE5M2, true>(v) : encode<kE5M2, false>(v));
}
uint8_t f64_to_e5m2(double v, bool saturate) {
  return static_cast<uint8_t>(saturate ? encode<kE5M2, true>(v) : encode<kE5M2, false>(v));
}
float e2m1_to_f32(uint8_t code) { return decode<kE2M1>(code & 0xFu); }
uint8_t f32_to_e2m1(float v) {
  NT_CHECK(!std::isnan(v), "cannot encode NaN as F4_E2M1: {}", kE2M1NanHint);
  return static_cast<uint8_t>(encode<kE2M1, true>(v));
}
uint8_t f64_to_e2m1(double v) {
  NT_CHECK(!std::isnan(v), "cannot encode NaN as F4_E2M1: {}", kE2M1NanHint);
  return static_cast<uint8_t>(encode<kE2M1, true>(v));
}

// ---- bulk conversion ----
//
// Every source decodes exactly into one of three domains: f32 (all float types but f64), f64, and
// i64 (integers and bool). Each target then encodes from a domain. convert() walks the data in
// chunks and switches on the types once per chunk, so each inner loop is a plain typed loop.
namespace {

constexpr size_t kChunk = 2048;  // elements; even, so packed 4-bit chunks start on a byte

enum class Domain { F32, F64, I64 };

Domain domain_of(DType t) {
  if (t == DType::F64) return Domain::F64;
  return dtype_is_float(t) ? Domain::F32 : Domain::I64;
}

DType domain_dtype(Domain d) {
  switch (d) {
    case Domain::F32: return DType::F32;
    case Domain::F64: return DType::F64;
    case Domain::I64: return DType::I64;
  }
  return DType::F32;
}

size_t element_alignment(DType t) { return t == DType::F4_E2M1 ? 1 : static_cast<size_t>(dtype_bits(t) / 8); }

struct Where {
  DType src, dst;
  size_t first;  // index of the chunk's first element in the whole buffer
};

template <typename In, typename Out, typename Fn>
inline void map_loop(const In* in, Out* out, size_t n, Fn fn) {
  for (size_t i = 0; i < n; ++i) out[i] = fn(in[i]);
}

// ---- decode a chunk into its domain ----

template <typename Int>
void decode_int(const void* src, int64_t* out, size_t n) {
  map_loop(static_cast<const Int*>(src), out, n, [](Int v) { return static_cast<int64_t>(v); });
}

void decode_chunk(DType t, const void* src, void* out, size_t n) {
  float* f = static_cast<float*>(out);
  int64_t* i = static_cast<int64_t*>(out);
  switch (t) {
    case DType::F32: case DType::F64: case DType::I64:  // already a domain type
      std::memcpy(out, src, dtype_nbytes(t, n));
      return;
    case DType::BF16:
      map_loop(static_cast<const uint16_t*>(src), f, n, [](uint16_t b) { return bf16_to_f32(b); });
      return;
    case DType::F16:
      map_loop(static_cast<const uint16_t*>(src), f, n, [](uint16_t b) { return decode<kF16>(b); });
      return;
    case DType::F8_E4M3:
      map_loop(static_cast<const uint8_t*>(src), f, n, [](uint8_t b) { return decode<kE4M3>(b); });
      return;
    case DType::F8_E5M2:
      map_loop(static_cast<const uint8_t*>(src), f, n, [](uint8_t b) { return decode<kE5M2>(b); });
      return;
    case DType::F4_E2M1: {
      static const auto values = [] {
        std::array<float, 16> v{};
        for (uint32_t c = 0; c < 16; ++c) v[c] = decode<kE2M1>(c);
        return v;
      }();
      const uint8_t* s = static_cast<const uint8_t*>(src);
      for (size_t k = 0; k < n / 2; ++k) {
        f[2 * k] = values[s[k] & 0xFu];
        f[2 * k + 1] = values[s[k] >> 4];
      }
      if (n % 2) f[n - 1] = values[s[n / 2] & 0xFu];
      return;
    }
    case DType::I8: decode_int<int8_t>(src, i, n); return;
    case DType::U8: decode_int<uint8_t>(src, i, n); return;
    case DType::I16: decode_int<int16_t>(src, i, n); return;
    case DType::I32: decode_int<int32_t>(src, i, n); return;
    case DType::Bool:
      map_loop(static_cast<const uint8_t*>(src), i, n, [](uint8_t b) { return static_cast<int64_t>(b != 0); });
      return;
  }
}

// ---- encode a chunk from a domain ----

// An i64 as a double that rounds correctly to any format of at most 51 significant bits: exact when
// it fits in 53 bits, else rounded to odd (truncate, set the last bit if anything was dropped), which
// keeps a later rounding to ≤ 51 bits from rounding twice.
inline double round_to_odd_double(int64_t v) {
  uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  if (mag >> 53) {
    const int shift = 64 - std::countl_zero(mag) - 53;
    const uint64_t dropped = mag & ((uint64_t{1} << shift) - 1);
    mag = ((mag >> shift) | (dropped != 0)) << shift;
  }
  const double d = static_cast<double>(mag);  // exact: at most 53 significant bits
  return v < 0 ? -d : d;
}

// The domain value as a float or double that encode<>() rounds correctly.
template <typename Src>
inline auto exact_source(Src x) {
  if constexpr (std::is_same_v<Src, int64_t>) return round_to_odd_double(x);
  else return x;
}

template <const FloatFormat& F, bool kSaturate, typename Src, typename Code>
void encode_loop(const Src* in, void* dst, size_t n) {
  map_loop(in, static_cast<Code*>(dst), n,
           [](Src x) { return static_cast<Code>(encode<F, kSaturate>(exact_source(x))); });
}

// Index of the first element that fails `ok`. Checking with a reduction first keeps the common,
// all-valid case a straight loop.
template <typename Src, typename Pred>
size_t first_failing(const Src* in, size_t n, Pred ok) {
  bool all_ok = true;
  for (size_t k = 0; k < n; ++k) all_ok &= ok(in[k]);
  if (all_ok) return n;
  size_t k = 0;
  while (ok(in[k])) ++k;
  return k;
}

template <typename Int, typename Src>
void encode_int(const Src* in, void* dst, size_t n, const Where& where) {
  constexpr int64_t lo = std::numeric_limits<Int>::min();
  constexpr int64_t hi = std::numeric_limits<Int>::max();
  if constexpr (std::is_same_v<Src, int64_t>) {
    const size_t bad = first_failing(in, n, [](int64_t v) { return (v >= lo) & (v <= hi); });
    if (bad < n)
      fail("cannot convert element {} from {} to {}: value {} is outside [{}, {}]", where.first + bad,
           dtype_name(where.src), dtype_name(where.dst), in[bad], lo, hi);
    map_loop(in, static_cast<Int*>(dst), n, [](int64_t v) { return static_cast<Int>(v); });
  } else {
    // Truncate toward zero, then require lo <= t < hi + 1; both bounds are powers of two, exact in
    // double (hi + 1 = 2^63 is not an int64, hence the half-open form). NaN fails both compares.
    constexpr double kLo = static_cast<double>(lo);
    constexpr double kHiExclusive = static_cast<double>(hi / 2 + 1) * 2.0;
    auto in_range = [](Src x) {
      const double t = std::trunc(static_cast<double>(x));
      return (t >= kLo) & (t < kHiExclusive);
    };
    const size_t bad = first_failing(in, n, in_range);
    if (bad < n)
      fail("cannot convert element {} from {} to {}: value {} {}", where.first + bad, dtype_name(where.src),
           dtype_name(where.dst), in[bad],
           std::isnan(in[bad]) ? std::string("is NaN, which integers cannot represent")
                               : fmt::format("is outside [{}, {}] after truncation toward zero", lo, hi));
    map_loop(in, static_cast<Int*>(dst), n, [](Src x) { return static_cast<Int>(std::trunc(static_cast<double>(x))); });
  }
}

// n is at most one chunk.
template <typename Src>
void encode_e2m1(const Src* in, uint8_t* out, size_t n, const Where& where) {
  if constexpr (!std::is_same_v<Src, int64_t>) {
    const size_t bad = first_failing(in, n, [](Src x) { return !std::isnan(x); });
    if (bad < n)
      fail("cannot convert element {} from {} to F4_E2M1: it is NaN. {}", where.first + bad, dtype_name(where.src),
           kE2M1NanHint);
  }
  uint8_t codes[kChunk];
  map_loop(in, codes, n, [](Src x) { return static_cast<uint8_t>(encode<kE2M1, true>(exact_source(x))); });
  for (size_t k = 0; k < n / 2; ++k) out[k] = static_cast<uint8_t>(codes[2 * k] | (codes[2 * k + 1] << 4));
  if (n % 2) out[n / 2] = codes[n - 1];
}

template <typename Src>
void encode_chunk(const Src* in, DType t, void* dst, size_t n, const Where& where) {
  switch (t) {
    case DType::F32:
      map_loop(in, static_cast<float*>(dst), n, [](Src x) { return static_cast<float>(x); });
      return;
    case DType::F64:
      map_loop(in, static_cast<double*>(dst), n, [](Src x) { return static_cast<double>(x); });
      return;
    case DType::BF16: encode_loop<kBF16, false, Src, uint16_t>(in, dst, n); return;
    case DType::F16: encode_loop<kF16, false, Src, uint16_t>(in, dst, n); return;
    case DType::F8_E4M3: encode_loop<kE4M3, true, Src, uint8_t>(in, dst, n); return;
    case DType::F8_E5M2: encode_loop<kE5M2, false, Src, uint8_t>(in, dst, n); return;
    case DType::F4_E2M1: encode_e2m1(in, static_cast<uint8_t*>(dst), n, where); return;
    case DType::I8: encode_int<int8_t>(in, dst, n, where); return;
    case DType::U8: encode_int<uint8_t>(in, dst, n, where); return;
    case DType::I16: encode_int<int16_t>(in, dst, n, where); return;
    case DType::I32: encode_int<int32_t>(in, dst, n, where); return;
    case DType::I64: encode_int<int64_t>(in, dst, n, where); return;
    case DType::Bool:
      map_loop(in, static_cast<uint8_t*>(dst), n, [](Src x) { return static_cast<uint8_t>(x != 0); });
      return;
  }
}

void encode_from_domain(Domain d, const void* in, DType t, void* dst, size_t n, const Where& where) {
  switch (d) {
    case Domain::F32: encode_chunk(static_cast<const float*>(in), t, dst, n, where); return;
    case Domain::F64: encode_chunk(static_cast<const double*>(in), t, dst, n, where); return;
    case Domain::I64: encode_chunk(static_cast<const int64_t*>(in), t, dst, n, where); return;
  }
}

bool is_aligned(const void* p, DType t) { return reinterpret_cast<uintptr_t>(p) % element_alignment(t) == 0; }

}  // namespace

void convert(const void* src, DType src_type, void* dst, DType dst_type, size_t n) {
  if (n == 0) return;
  if (src_type == dst_type) {
    std::memmove(dst, src, dtype_nbytes(dst_type, n));
    if (dst_type == DType::F4_E2M1 && n % 2) static_cast<uint8_t*>(dst)[n / 2] &= 0x0F;
    return;
  }
  const Domain domain = domain_of(src_type);
  const DType domain_type = domain_dtype(domain);
  // Buffers that are not element-aligned (e.g. a tensor at an odd offset of a memory-mapped file)
  // are staged through aligned chunks so the typed loops stay well-defined.
  const bool stage_src = !is_aligned(src, src_type);
  const bool stage_dst = !is_aligned(dst, dst_type);
  alignas(64) unsigned char domain_buf[kChunk * 8];
  alignas(64) unsigned char src_buf[kChunk * 8];
  alignas(64) unsigned char dst_buf[kChunk * 8];
  const auto* src_bytes = static_cast<const unsigned char*>(src);
  auto* dst_bytes = static_cast<unsigned char*>(dst);

  for (size_t first = 0; first < n; first += kChunk) {
    const size_t count = std::min(kChunk, n - first);
    const void* in = src_bytes + dtype_nbytes(src_type, first);
    void* out = dst_bytes + dtype_nbytes(dst_type, first);
    if (stage_src) {
      std::memcpy(src_buf, in, dtype_nbytes(src_type, count));
      in = src_buf;
    }
    void* final_out = out;
    if (stage_dst) out = dst_buf;

    const Where where{src_type, dst_type, first};
    if (src_type == domain_type) {
      encode_from_domain(domain, in, dst_type, out, count, where);
    } else if (dst_type == domain_type) {
      decode_chunk(src_type, in, out, count);
    } else {
      decode_chunk(src_type, in, domain_buf, count);
      encode_from_domain(domain, domain_buf, dst_type, out, count, where);
    }
    if (stage_dst) std::memcpy(final_out, out, dtype_nbytes(dst_type, count));
  }
}

}  // namespace nemotron
