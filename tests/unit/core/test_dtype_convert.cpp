// Tests for core/dtype_convert: every narrow-float code decoded against the textbook formula, and
// rounding checked against a reference that enumerates a format's values and picks the nearest
// (ties to the even code). The reference works in long double (64-bit significand on x86-64), so
// f32, f64 and i64 inputs are all exact in it.
#include "core/dtype_convert.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"

namespace nemotron {
namespace {

static_assert(std::numeric_limits<long double>::digits >= 64, "reference needs 64-bit long double");
using Real = long double;

// ---- independent reference ----

enum class Overflow { Inf, Saturate, NaN };

struct RefFormat {
  const char* name;
  int exp_bits, man_bits, bias;
  bool ieee_specials;  // all-ones exponent: inf (mantissa 0) or NaN
  bool fn_nan;         // e4m3fn: only all-ones exponent and mantissa is NaN
};
constexpr RefFormat kRefBF16{"bf16", 8, 7, 127, true, false};
constexpr RefFormat kRefF16{"f16", 5, 10, 15, true, false};
constexpr RefFormat kRefE4M3{"e4m3", 4, 3, 7, false, true};
constexpr RefFormat kRefE5M2{"e5m2", 5, 2, 15, true, false};
constexpr RefFormat kRefE2M1{"e2m1", 2, 1, 1, false, false};

// value = sign * 2^(e-bias) * (1 + m/2^M) for normals, sign * 2^(1-bias) * (m/2^M) for subnormals.
// `ignore_specials` evaluates the formula even where the code means inf/NaN (or lies past the
// format's codes): that is the value the format would have there with an unbounded exponent.
Real ref_decode(const RefFormat& f, uint32_t code, bool ignore_specials = false) {
  const uint32_t all_e = (1u << f.exp_bits) - 1, all_m = (1u << f.man_bits) - 1;
  const bool negative = !ignore_specials && ((code >> (f.exp_bits + f.man_bits)) & 1);
  const uint32_t e = ignore_specials ? code >> f.man_bits : (code >> f.man_bits) & all_e;
  const uint32_t m = code & all_m;
  const Real s = negative ? -1.0L : 1.0L;
  const Real frac = static_cast<Real>(m) / static_cast<Real>(1u << f.man_bits);
  if (!ignore_specials && f.ieee_specials && e == all_e)
    return m == 0 ? s * std::numeric_limits<Real>::infinity() : std::numeric_limits<Real>::quiet_NaN();
  if (!ignore_specials && f.fn_nan && e == all_e && m == all_m) return std::numeric_limits<Real>::quiet_NaN();
  if (e == 0) return s * std::ldexp(frac, 1 - f.bias);
  return s * std::ldexp(1.0L + frac, static_cast<int>(e) - f.bias);
}

// All non-negative finite values of a format in code order (= value order), plus one "virtual"
// value past the largest finite one: rounding to it means overflow.
struct RefTable {
  RefFormat f;
  std::vector<Real> values;
  uint32_t max_code;
  uint32_t inf_code;  // magnitude code of inf, when the format has one
  uint32_t nan_code;  // all-ones magnitude: the e4m3fn NaN, for non-saturating overflow

  explicit RefTable(const RefFormat& fmt) : f(fmt) {
    const uint32_t n_mag = 1u << (f.exp_bits + f.man_bits);
    max_code = 0;
    for (uint32_t c = 0; c < n_mag; ++c)
      if (std::isfinite(ref_decode(f, c))) max_code = c;
    for (uint32_t c = 0; c <= max_code + 1; ++c) values.push_back(ref_decode(f, c, true));
    inf_code = ((1u << f.exp_bits) - 1) << f.man_bits;
    nan_code = (1u << (f.exp_bits + f.man_bits)) - 1;
  }
  uint32_t sign_bit() const { return 1u << (f.exp_bits + f.man_bits); }

  // Nearest value, ties to the even code; returns the full code (sign included). Not for NaN.
  uint32_t encode(Real x, Overflow overflow) const {
    const uint32_t sign = std::signbit(x) ? sign_bit() : 0;
    const Real a = std::fabs(x);
    uint32_t code;
    if (std::isinf(a) || a >= values.back()) {
      code = max_code + 1;
    } else {
      const size_t c = std::upper_bound(values.begin(), values.end(), a) - values.begin() - 1;
      const Real mid = (values[c] + values[c + 1]) / 2;  // exact: two adjacent short significands
      code = a < mid ? c : a > mid ? c + 1 : (c % 2 == 0 ? c : c + 1);
    }
    if (code > max_code) {
      switch (overflow) {
        case Overflow::Saturate: code = max_code; break;
        case Overflow::Inf: code = inf_code; break;
        case Overflow::NaN: code = nan_code; break;
      }
    }
    return sign | code;
  }
};

// Built once per format (f is one of the kRef constants above).
const RefTable& ref_table(const RefFormat& f) {
  static const RefTable bf16(kRefBF16), f16(kRefF16), e4m3(kRefE4M3), e5m2(kRefE5M2), e2m1(kRefE2M1);
  return &f == &kRefBF16 ? bf16 : &f == &kRefF16 ? f16 : &f == &kRefE4M3 ? e4m3 : &f == &kRefE5M2 ? e5m2 : e2m1;
}

uint32_t f32_bits(float v) { return std::bit_cast<uint32_t>(v); }
float f32_from_bits(uint32_t b) { return std::bit_cast<float>(b); }

// Decoded value equals the reference (same bits for ±0; NaN ↔ NaN).
void expect_same_value(float got, Real want, uint32_t code, const char* what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what << " code 0x" << std::hex << code;
    return;
  }
  EXPECT_EQ(static_cast<Real>(got), want) << what << " code 0x" << std::hex << code;
  EXPECT_EQ(std::signbit(got), std::signbit(want)) << what << " code 0x" << std::hex << code;
}

// ---- exhaustive decode + round trip ----

TEST(DTypeConvert, EveryBF16PatternDecodesAndRoundTrips) {
  const RefTable& ref = ref_table(kRefBF16);
  for (uint32_t b = 0; b < 65536; ++b) {
    const float v = bf16_to_f32(static_cast<uint16_t>(b));
    expect_same_value(v, ref_decode(kRefBF16, b), b, "bf16");
    const uint16_t back = f32_to_bf16(v);
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(back))) << b;
      EXPECT_EQ(back & 0x8000u, b & 0x8000u) << "NaN sign kept " << b;
      EXPECT_EQ(back, b | 0x0040u) << "NaN payload kept, quiet bit set " << b;
    } else {
      ASSERT_EQ(back, b) << "bf16 round trip";
      ASSERT_EQ(f64_to_bf16(v), b) << "bf16 round trip from f64";
      ASSERT_EQ(ref.encode(v, Overflow::Inf), b) << "reference agrees on representable values";
    }
  }
}

TEST(DTypeConvert, EveryF16PatternDecodesAndRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float v = f16_to_f32(static_cast<uint16_t>(b));
    expect_same_value(v, ref_decode(kRefF16, b), b, "f16");
    const uint16_t back = f32_to_f16(v);
    if (std::isnan(v)) {
      EXPECT_EQ(back, b | 0x0200u) << "NaN payload and sign kept, quiet bit set " << b;
    } else {
      ASSERT_EQ(back, b) << "f16 round trip";
      ASSERT_EQ(f64_to_f16(v), b) << "f16 round trip from f64";
    }
  }
}

TEST(DTypeConvert, EveryFP8CodeDecodesAndRoundTrips) {
  for (uint32_t b = 0; b < 256; ++b) {
    const float v4 = e4m3_to_f32(static_cast<uint8_t>(b));
    expect_same_value(v4, ref_decode(kRefE4M3, b), b, "e4m3");
    const float v5 = e5m2_to_f32(static_cast<uint8_t>(b));
    expect_same_value(v5, ref_decode(kRefE5M2, b), b, "e5m2");
    for (bool sat : {false, true}) {
      if (std::isnan(v4)) {
        EXPECT_EQ(f32_to_e4m3(v4, sat), b) << "e4m3 has one NaN per sign";
      } else {
        EXPECT_EQ(f32_to_e4m3(v4, sat), b) << "e4m3 round trip";
        EXPECT_EQ(f64_to_e4m3(v4, sat), b);
      }
      if (std::isnan(v5)) {
        EXPECT_EQ(f32_to_e5m2(v5, sat), (b & 0x80u) | 0x7Fu) << "e5m2 NaN → 0x7F, sign kept";
      } else if (std::isinf(v5)) {
        EXPECT_EQ(f32_to_e5m2(v5, sat), sat ? (b & 0x80u) | 0x7Bu : b) << "e5m2 inf";
      } else {
        EXPECT_EQ(f32_to_e5m2(v5, sat), b) << "e5m2 round trip";
        EXPECT_EQ(f64_to_e5m2(v5, sat), b);
      }
    }
  }
  // Landmarks from spec/quant.md §1.1.
  EXPECT_EQ(e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xFF)));
  EXPECT_EQ(e4m3_to_f32(0x78), 256.0f) << "S.1111.000 is a number in e4m3fn, not inf";
  EXPECT_EQ(e5m2_to_f32(0x7B), 57344.0f);
  EXPECT_TRUE(std::isinf(e5m2_to_f32(0x7C)));
  EXPECT_EQ(e5m2_to_f32(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
}

TEST(DTypeConvert, EveryE2M1CodeDecodesAndRoundTrips) {
  const float table[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};  // spec/quant.md §1.2
  for (uint32_t c = 0; c < 16; ++c) {
    const float v = e2m1_to_f32(static_cast<uint8_t>(c));
    expect_same_value(v, ref_decode(kRefE2M1, c), c, "e2m1");
    EXPECT_EQ(v, (c & 8 ? -1 : 1) * table[c & 7]);
    EXPECT_EQ(std::signbit(v), (c & 8) != 0);
    EXPECT_EQ(f32_to_e2m1(v), c);
    EXPECT_EQ(f64_to_e2m1(v), c);
    EXPECT_EQ(e2m1_to_f32(static_cast<uint8_t>(c | 0xF0)), v) << "high nibble ignored";
  }
}

// ---- rounding against the reference ----

// Sample inputs: a stride through all f32 bit patterns, plus, for the given format, every value,
// every halfway point between neighbours (including past the max), and their f32 neighbours.
std::vector<float> f32_samples(const RefTable& ref) {
  std::vector<float> xs;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 4093) xs.push_back(f32_from_bits(static_cast<uint32_t>(b)));
  auto add_around = [&](Real v) {
    const float f = static_cast<float>(v);
    if (static_cast<Real>(f) != v) return;
    for (float s : {1.0f, -1.0f}) {
      xs.push_back(s * f);
      xs.push_back(s * std::nextafter(f, 0.0f));
      xs.push_back(s * std::nextafter(f, std::numeric_limits<float>::infinity()));
    }
  };
  for (size_t c = 0; c + 1 < ref.values.size(); ++c) {
    add_around(ref.values[c]);
    add_around((ref.values[c] + ref.values[c + 1]) / 2);
  }
  add_around(ref.values.back());
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(), 1e-45f, 65504.0f,
                  65520.0f, 448.0f, 464.0f, 480.0f, 57344.0f, 61440.0f, 6.0f, 7.0f, 5.0f})
    xs.push_back(v);
  return xs;
}

template <typename Fn>
void check_f32_rounding(const RefFormat& f, Overflow overflow, Fn encode) {
  const RefTable& ref = ref_table(f);
  size_t failures = 0;
  for (float x : f32_samples(ref)) {
    if (std::isnan(x)) continue;  // NaN handling has its own test
    const uint32_t want = ref.encode(x, overflow), got = encode(x);
    if (got != want && ++failures <= 10)
      ADD_FAILURE() << f.name << ": x = " << x << " (0x" << std::hex << f32_bits(x) << ") gave 0x" << got
                    << ", reference 0x" << want;
  }
  EXPECT_EQ(failures, 0u);
}

TEST(DTypeConvert, F32ToBF16RoundsToNearestEven) {
  check_f32_rounding(kRefBF16, Overflow::Inf, [](float x) { return uint32_t{f32_to_bf16(x)}; });
}
TEST(DTypeConvert, F32ToF16RoundsToNearestEven) {
  check_f32_rounding(kRefF16, Overflow::Inf, [](float x) { return uint32_t{f32_to_f16(x)}; });
}
TEST(DTypeConvert, F32ToE4M3RoundsToNearestEven) {
  check_f32_rounding(kRefE4M3, Overflow::Saturate, [](float x) { return uint32_t{f32_to_e4m3(x)}; });
  check_f32_rounding(kRefE4M3, Overflow::NaN, [](float x) { return uint32_t{f32_to_e4m3(x, false)}; });
}
TEST(DTypeConvert, F32ToE5M2RoundsToNearestEven) {
  check_f32_rounding(kRefE5M2, Overflow::Inf, [](float x) { return uint32_t{f32_to_e5m2(x)}; });
  check_f32_rounding(kRefE5M2, Overflow::Saturate, [](float x) { return uint32_t{f32_to_e5m2(x, true)}; });
}
TEST(DTypeConvert, F32ToE2M1RoundsToNearestEven) {
  check_f32_rounding(kRefE2M1, Overflow::Saturate, [](float x) { return uint32_t{f32_to_e2m1(x)}; });
  // The threshold table of spec/quant.md §1.2.2.
  const std::pair<float, float> cases[] = {{0.25f, 0},   {0.2500001f, 0.5f}, {0.75f, 1},   {0.7499999f, 0.5f},
                                           {1.25f, 1},   {1.2500001f, 1.5f}, {1.75f, 2},   {2.5f, 2},
                                           {2.5000002f, 3}, {3.5f, 4},       {5.0f, 4},    {5.0000005f, 6},
                                           {1e30f, 6},   {-5.5f, -6}};
  for (auto [x, want] : cases) EXPECT_EQ(e2m1_to_f32(f32_to_e2m1(x)), want) << x;
}

// f64 inputs: halfway points of the target nudged by a few f64 ulps (an f32 intermediate would
// round them onto the halfway point and then tie the wrong way), plus random doubles.
template <typename Fn>
void check_f64_rounding(const RefFormat& f, Overflow overflow, Fn encode) {
  const RefTable& ref = ref_table(f);
  std::vector<double> xs;
  for (size_t c = 0; c + 1 < ref.values.size(); ++c) {
    const double mid = static_cast<double>((ref.values[c] + ref.values[c + 1]) / 2);
    double lo = mid, hi = mid;
    for (int k = 0; k < 3; ++k) {
      lo = std::nextafter(lo, 0.0);
      hi = std::nextafter(hi, 1e300);
    }
    for (double v : {mid, lo, hi, std::nextafter(mid, 0.0), std::nextafter(mid, 1e300)}) {
      xs.push_back(v);
      xs.push_back(-v);
    }
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int> exponent(-ref.f.bias - ref.f.man_bits - 4, (1 << ref.f.exp_bits) - ref.f.bias + 2);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  for (int i = 0; i < 50000; ++i) xs.push_back((i % 2 ? -1 : 1) * std::ldexp(mantissa(rng), exponent(rng)));
  for (int i = 0; i < 20000; ++i) xs.push_back(std::bit_cast<double>(rng()));
  size_t failures = 0;
  for (double x : xs) {
    if (std::isnan(x)) continue;
    const uint32_t want = ref.encode(x, overflow), got = encode(x);
    if (got != want && ++failures <= 10)
      ADD_FAILURE() << f.name << ": x = " << x << " gave 0x" << std::hex << got << ", reference 0x" << want;
  }
  EXPECT_EQ(failures, 0u);
}

TEST(DTypeConvert, F64ConversionsRoundOnceFromTheDouble) {
  check_f64_rounding(kRefBF16, Overflow::Inf, [](double x) { return uint32_t{f64_to_bf16(x)}; });
  check_f64_rounding(kRefF16, Overflow::Inf, [](double x) { return uint32_t{f64_to_f16(x)}; });
  check_f64_rounding(kRefE4M3, Overflow::Saturate, [](double x) { return uint32_t{f64_to_e4m3(x)}; });
  check_f64_rounding(kRefE4M3, Overflow::NaN, [](double x) { return uint32_t{f64_to_e4m3(x, false)}; });
  check_f64_rounding(kRefE5M2, Overflow::Inf, [](double x) { return uint32_t{f64_to_e5m2(x)}; });
  check_f64_rounding(kRefE2M1, Overflow::Saturate, [](double x) { return uint32_t{f64_to_e2m1(x)}; });
}

TEST(DTypeConvert, F64ToBF16DoubleRoundingCase) {
  // 1 + 2^-8 is halfway between bf16 1.0 (0x3F80) and 1 + 2^-7 (0x3F81). Slightly above it, the
  // double must round up; going through f32 would first land exactly on the tie and go to even 1.0.
  const double x = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  EXPECT_EQ(f32_to_bf16(static_cast<float>(x)), 0x3F80) << "the trap: f32 tie goes to even";
  EXPECT_EQ(f64_to_bf16(x), 0x3F81);
  uint16_t out = 0;
  convert(&x, DType::F64, &out, DType::BF16, 1);
  EXPECT_EQ(out, 0x3F81);
  // Same for i64 → bf16: 2^60 + 2^52 + 1 is just above the tie; as a double it would be the tie.
  const int64_t i = (int64_t{1} << 60) + (int64_t{1} << 52) + 1;
  convert(&i, DType::I64, &out, DType::BF16, 1);
  EXPECT_EQ(bf16_to_f32(out), std::ldexp(1.0f, 60) + std::ldexp(1.0f, 53));
  const int64_t neg = -i;
  convert(&neg, DType::I64, &out, DType::BF16, 1);
  EXPECT_EQ(bf16_to_f32(out), -(std::ldexp(1.0f, 60) + std::ldexp(1.0f, 53)));
}

TEST(DTypeConvert, I64ToNarrowFloatsRoundOnce) {
  // Around halfway points of every binade from the format's integers up to 2^62 (above 2^53 an
  // i64 → f64 conversion would itself round).
  for (const RefFormat* f : {&kRefBF16, &kRefF16, &kRefE5M2}) {
    const RefTable& ref = ref_table(*f);
    std::vector<int64_t> xs;
    for (int k = f->man_bits + 1; k <= 62; ++k) {
      for (int64_t m = 0; m < 4; ++m) {
        const int64_t mid = (int64_t{1} << k) + (2 * m + 1) * (int64_t{1} << (k - f->man_bits - 1));
        for (int64_t d : {-2, -1, 0, 1, 2}) xs.push_back(mid + d);
      }
    }
    xs.push_back(std::numeric_limits<int64_t>::max());
    xs.push_back(std::numeric_limits<int64_t>::min());
    const DType t = f == &kRefBF16 ? DType::BF16 : f == &kRefF16 ? DType::F16 : DType::F8_E5M2;
    for (int64_t x : xs) {
      for (int64_t v : {x, x == std::numeric_limits<int64_t>::min() ? x : -x}) {
        uint16_t got = 0;  // e5m2 fills only the low byte
        convert(&v, DType::I64, &got, t, 1);
        EXPECT_EQ(got, ref.encode(static_cast<Real>(v), Overflow::Inf)) << f->name << " " << v;
      }
    }
  }
  // i64 → f32/f64 is one correct rounding too.
  const int64_t big = (int64_t{1} << 62) + (int64_t{1} << 9) + 1;  // just above an f64 tie
  double d = 0;
  convert(&big, DType::I64, &d, DType::F64, 1);
  EXPECT_EQ(d, std::ldexp(1.0, 62) + std::ldexp(1.0, 10));
  const int64_t f32tie = (int64_t{1} << 24) + 1;
  float f = 0;
  convert(&f32tie, DType::I64, &f, DType::F32, 1);
  EXPECT_EQ(f, 16777216.0f);
}

TEST(DTypeConvert, NaNAndInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float neg_nan = -nan;
  EXPECT_EQ(f32_to_bf16(inf), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-inf), 0xFF80);
  EXPECT_EQ(f32_to_f16(-inf), 0xFC00);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00) << "halfway past f16 max ties to inf";
  EXPECT_EQ(f32_to_f16(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7FA12345)), 0x7FE1) << "payload kept, quiet";
  EXPECT_EQ(f32_to_f16(f32_from_bits(0x7FA12345)), 0x7F09) << "payload kept, quiet";
  EXPECT_EQ(f32_to_bf16(neg_nan) & 0x8000, 0x8000);
  EXPECT_EQ(f32_to_e4m3(nan), 0x7F);
  EXPECT_EQ(f32_to_e4m3(neg_nan), 0xFF);
  EXPECT_EQ(f32_to_e4m3(inf), 0x7E) << "saturating: inf → 448";
  EXPECT_EQ(f32_to_e4m3(-inf), 0xFE);
  EXPECT_EQ(f32_to_e4m3(inf, false), 0x7F) << "non-saturating (PyTorch): inf → NaN";
  EXPECT_EQ(f32_to_e4m3(-500.0f, false), 0xFF);
  EXPECT_EQ(f32_to_e4m3(464.0f, false), 0x7E) << "tie between 448 and (virtual) 480 goes to even 448";
  EXPECT_EQ(f32_to_e4m3(464.01f, false), 0x7F);
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7E);
  EXPECT_EQ(f32_to_e5m2(nan), 0x7F);
  EXPECT_EQ(f32_to_e5m2(neg_nan), 0xFF);
  EXPECT_EQ(f32_to_e5m2(inf), 0x7C);
  EXPECT_EQ(f32_to_e5m2(-inf, true), 0xFB);
  EXPECT_EQ(f32_to_e5m2(61440.0f), 0x7C) << "halfway past max ties to inf";
  EXPECT_EQ(f32_to_e5m2(61439.0f), 0x7B);
  EXPECT_EQ(f32_to_e2m1(inf), 0x7);
  EXPECT_EQ(f32_to_e2m1(-inf), 0xF);
  EXPECT_THROW(f32_to_e2m1(nan), Error);
  EXPECT_THROW(f64_to_e2m1(std::nan("")), Error);
  EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_e2m1(-0.0f), 0x8);
  EXPECT_EQ(f32_to_bf16(-1e-45f), 0x8000) << "rounds to -0";
  EXPECT_EQ(f32_to_f16(-1e-10f), 0x8000);
}

// ---- convert(): every pair of dtypes ----

// Test-side element access, built on the reference (floats) and plain casts (integers).
const RefFormat* ref_format(DType t) {
  switch (t) {
    case DType::BF16: return &kRefBF16;
    case DType::F16: return &kRefF16;
    case DType::F8_E4M3: return &kRefE4M3;
    case DType::F8_E5M2: return &kRefE5M2;
    case DType::F4_E2M1: return &kRefE2M1;
    default: return nullptr;
  }
}

void put(DType t, std::vector<uint8_t>& buf, size_t i, Real v) {
  uint8_t* p = buf.data();
  if (const RefFormat* f = ref_format(t)) {
    const uint32_t code = ref_table(*f).encode(v, Overflow::Saturate);
    if (t == DType::F4_E2M1) {
      p[i / 2] = static_cast<uint8_t>((p[i / 2] & (i % 2 ? 0x0F : 0xF0)) | (code << (4 * (i % 2))));
    } else if (dtype_bits(t) == 16) {
      const uint16_t c = static_cast<uint16_t>(code);
      std::memcpy(p + 2 * i, &c, 2);
    } else {
      p[i] = static_cast<uint8_t>(code);
    }
    return;
  }
  auto store = [&](auto x) { std::memcpy(p + i * sizeof(x), &x, sizeof(x)); };
  switch (t) {
    case DType::F32: store(static_cast<float>(v)); break;
    case DType::F64: store(static_cast<double>(v)); break;
    case DType::I8: store(static_cast<int8_t>(v)); break;
    case DType::U8: store(static_cast<uint8_t>(v)); break;
    case DType::I16: store(static_cast<int16_t>(v)); break;
    case DType::I32: store(static_cast<int32_t>(v)); break;
    case DType::I64: store(static_cast<int64_t>(v)); break;
    case DType::Bool: store(static_cast<uint8_t>(v != 0)); break;
    default: break;
  }
}

Real get(DType t, const std::vector<uint8_t>& buf, size_t i) {
  const uint8_t* p = buf.data();
  if (const RefFormat* f = ref_format(t)) {
    uint32_t code = 0;
    if (t == DType::F4_E2M1) code = (p[i / 2] >> (4 * (i % 2))) & 0xF;
    else if (dtype_bits(t) == 16) code = static_cast<uint32_t>(p[2 * i] | (p[2 * i + 1] << 8));
    else code = p[i];
    return ref_decode(*f, code);
  }
  auto load = [&](auto x) {
    std::memcpy(&x, p + i * sizeof(x), sizeof(x));
    return static_cast<Real>(x);
  };
  switch (t) {
    case DType::F32: return load(float{});
    case DType::F64: return load(double{});
    case DType::I8: return load(int8_t{});
    case DType::U8: return load(uint8_t{});
    case DType::I16: return load(int16_t{});
    case DType::I32: return load(int32_t{});
    case DType::I64: return load(int64_t{});
    case DType::Bool: return load(uint8_t{});
    default: return 0;
  }
}

bool representable(DType t, Real v) {
  if (t == DType::Bool) return v == 0 || v == 1;
  if (t == DType::U8 && v < 0) return false;
  if (!dtype_is_float(t) && v != std::trunc(v)) return false;
  return true;  // the value set below fits every float format and every integer range
}

TEST(DTypeConvert, ConvertsEveryPairOfDTypes) {
  const Real pool[] = {0, 1, 2, 3, 4, 6, -1, -4, -6, 0.5L, 1.5L, -0.5L, -3};
  for (DType s : kAllDTypes) {
    for (DType d : kAllDTypes) {
      std::vector<Real> vals;
      for (Real v : pool)
        if (representable(s, v) && (representable(d, v) || d == DType::Bool)) vals.push_back(v);
      // Long enough to cross chunk boundaries, odd so packed buffers end mid-byte.
      const size_t n = 5001;
      for (size_t misalign : {0, 1}) {
        std::vector<uint8_t> src(dtype_nbytes(s, n) + 8, 0), dst(dtype_nbytes(d, n) + 8, 0xAB);
        std::vector<uint8_t> src_elems(dtype_nbytes(s, n) + 8, 0);
        for (size_t i = 0; i < n; ++i) put(s, src_elems, i, vals[(i * 7 + i / 3) % vals.size()]);
        std::memcpy(src.data() + misalign, src_elems.data(), dtype_nbytes(s, n));
        convert(src.data() + misalign, s, dst.data() + misalign, d, n);
        std::vector<uint8_t> out(dst.begin() + static_cast<long>(misalign), dst.end());
        size_t failures = 0;
        for (size_t i = 0; i < n; ++i) {
          const Real v = vals[(i * 7 + i / 3) % vals.size()];
          const Real want = d == DType::Bool ? (v != 0) : v;
          const Real got = get(d, out, i);
          if (got != want && ++failures <= 3)
            ADD_FAILURE() << dtype_name(s) << " → " << dtype_name(d) << " element " << i << ": got "
                          << static_cast<double>(got) << ", want " << static_cast<double>(want);
        }
        EXPECT_EQ(dst[misalign + dtype_nbytes(d, n)], 0xAB) << "wrote past the end " << dtype_name(d);
        if (d == DType::F4_E2M1) {
          EXPECT_EQ(out[n / 2] >> 4, 0) << "unused high nibble is zero";
        }
      }
    }
  }
}

TEST(DTypeConvert, ConvertMatchesScalarFunctionsOnAllSixteenBitPatterns) {
  std::vector<uint16_t> bits(65536);
  for (uint32_t b = 0; b < 65536; ++b) bits[b] = static_cast<uint16_t>(b);
  std::vector<float> f(65536);
  std::vector<uint16_t> back(65536);
  for (DType t : {DType::BF16, DType::F16}) {
    convert(bits.data(), t, f.data(), DType::F32, bits.size());
    convert(f.data(), DType::F32, back.data(), t, bits.size());
    for (uint32_t b = 0; b < 65536; ++b) {
      const float want = t == DType::BF16 ? bf16_to_f32(bits[b]) : f16_to_f32(bits[b]);
      ASSERT_EQ(f32_bits(f[b]), f32_bits(want)) << dtype_name(t) << " " << b;
      ASSERT_EQ(back[b], t == DType::BF16 ? f32_to_bf16(f[b]) : f32_to_f16(f[b])) << dtype_name(t) << " " << b;
    }
  }
  // bf16 → f16 goes through f32 exactly: equals decode-then-encode.
  std::vector<uint16_t> h(65536);
  convert(bits.data(), DType::BF16, h.data(), DType::F16, bits.size());
  for (uint32_t b = 0; b < 65536; ++b) ASSERT_EQ(h[b], f32_to_f16(bf16_to_f32(bits[b]))) << b;
}

TEST(DTypeConvert, PackedE2M1NibbleOrder) {
  // Even element → low nibble (spec/quant.md §1.2.3): {1, -2} → 0x2 | 0xC << 4; {6} → 0x7.
  const float x[3] = {1.0f, -2.0f, 6.0f};
  uint8_t packed[2] = {0xFF, 0xFF};
  convert(x, DType::F32, packed, DType::F4_E2M1, 3);
  EXPECT_EQ(packed[0], 0xC2);
  EXPECT_EQ(packed[1], 0x07);
  const uint8_t codes[2] = {0x35, 0x9A};  // elements: 0x5=3, 0x3=1.5, 0xA=-1, 0x9=-0.5
  float y[4];
  convert(codes, DType::F4_E2M1, y, DType::F32, 4);
  EXPECT_EQ(y[0], 3.0f);
  EXPECT_EQ(y[1], 1.5f);
  EXPECT_EQ(y[2], -1.0f);
  EXPECT_EQ(y[3], -0.5f);
  // Same-type copy of an odd count clears the unused nibble.
  uint8_t copy[2] = {0, 0};
  const uint8_t odd[2] = {0x35, 0xFA};
  convert(odd, DType::F4_E2M1, copy, DType::F4_E2M1, 3);
  EXPECT_EQ(copy[0], 0x35);
  EXPECT_EQ(copy[1], 0x0A);
  // NaN names the element.
  const float with_nan[3] = {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN()};
  try {
    convert(with_nan, DType::F32, packed, DType::F4_E2M1, 3);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("element 2"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("NaN"));
  }
}

// ---- integers ----

template <typename S, typename D>
D convert_one(S v, DType s, DType d) {
  D out{};
  convert(&v, s, &out, d, 1);
  return out;
}

std::string convert_error(const void* src, DType s, DType d, size_t n) {
  std::vector<uint8_t> out(dtype_nbytes(d, n) + 8);
  try {
    convert(src, s, out.data(), d, n);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DTypeConvert, FloatToIntTruncatesTowardZero) {
  EXPECT_EQ((convert_one<float, int32_t>(2.9f, DType::F32, DType::I32)), 2);
  EXPECT_EQ((convert_one<float, int32_t>(-2.9f, DType::F32, DType::I32)), -2);
  EXPECT_EQ((convert_one<float, uint8_t>(-0.9f, DType::F32, DType::U8)), 0);
  EXPECT_EQ((convert_one<float, uint8_t>(255.9f, DType::F32, DType::U8)), 255);
  EXPECT_EQ((convert_one<float, int8_t>(-128.5f, DType::F32, DType::I8)), -128);
  EXPECT_EQ((convert_one<double, int64_t>(-std::ldexp(1.0, 63), DType::F64, DType::I64)),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ((convert_one<double, int64_t>(std::nextafter(std::ldexp(1.0, 63), 0.0), DType::F64, DType::I64)),
            std::numeric_limits<int64_t>::max() - 1023);
  EXPECT_EQ((convert_one<float, int32_t>(2147483520.0f, DType::F32, DType::I32)), 2147483520);
  EXPECT_EQ((convert_one<uint16_t, int16_t>(0xC0A0, DType::BF16, DType::I16)), -5) << "bf16 -5.0";
  EXPECT_EQ((convert_one<uint8_t, int32_t>(0xD4, DType::F8_E4M3, DType::I32)), -12) << "e4m3 -12";
}

TEST(DTypeConvert, OutOfRangeAndNaNToIntAreErrors) {
  const float too_big[2] = {1.0f, 2147483648.0f};
  std::string msg = convert_error(too_big, DType::F32, DType::I32, 2);
  EXPECT_THAT(msg, ::testing::HasSubstr("element 1"));
  EXPECT_THAT(msg, ::testing::HasSubstr("2147483648"));
  EXPECT_THAT(msg, ::testing::HasSubstr("I32"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  msg = convert_error(&nan, DType::F32, DType::I64, 1);
  EXPECT_THAT(msg, ::testing::HasSubstr("NaN"));
  const float inf = -std::numeric_limits<float>::infinity();
  EXPECT_THAT(convert_error(&inf, DType::F32, DType::I64, 1), ::testing::HasSubstr("-inf"));
  const double two63 = std::ldexp(1.0, 63);
  EXPECT_NE(convert_error(&two63, DType::F64, DType::I64, 1), "");
  const float minus_one = -1.0f;
  EXPECT_THAT(convert_error(&minus_one, DType::F32, DType::U8, 1), ::testing::HasSubstr("-1"));
  const float f256 = 256.0f;
  EXPECT_NE(convert_error(&f256, DType::F32, DType::U8, 1), "");
  const float fm129 = -129.0f;
  EXPECT_NE(convert_error(&fm129, DType::F32, DType::I8, 1), "");
  const uint16_t bf16_inf = 0x7F80;
  EXPECT_NE(convert_error(&bf16_inf, DType::BF16, DType::I32, 1), "");
  const uint8_t e4m3_nan = 0x7F;
  EXPECT_THAT(convert_error(&e4m3_nan, DType::F8_E4M3, DType::I8, 1), ::testing::HasSubstr("NaN"));
}

TEST(DTypeConvert, IntToIntRangeChecked) {
  EXPECT_EQ((convert_one<int64_t, int8_t>(-128, DType::I64, DType::I8)), -128);
  EXPECT_EQ((convert_one<int32_t, uint8_t>(255, DType::I32, DType::U8)), 255);
  EXPECT_EQ((convert_one<uint8_t, int16_t>(200, DType::U8, DType::I16)), 200);
  EXPECT_EQ((convert_one<int8_t, int64_t>(-5, DType::I8, DType::I64)), -5);
  const int64_t v300[3] = {1, 2, 300};
  std::string msg = convert_error(v300, DType::I64, DType::I8, 3);
  EXPECT_THAT(msg, ::testing::HasSubstr("element 2"));
  EXPECT_THAT(msg, ::testing::HasSubstr("300"));
  const int32_t neg = -1;
  EXPECT_THAT(convert_error(&neg, DType::I32, DType::U8, 1), ::testing::HasSubstr("-1"));
  const uint8_t u255 = 255;
  EXPECT_NE(convert_error(&u255, DType::U8, DType::I8, 1), "");
  const int64_t big = int64_t{1} << 40;
  EXPECT_NE(convert_error(&big, DType::I64, DType::I32, 1), "");
}

TEST(DTypeConvert, Bool) {
  const float f[5] = {0.0f, -0.0f, 0.1f, -3.0f, std::numeric_limits<float>::quiet_NaN()};
  uint8_t b[5];
  convert(f, DType::F32, b, DType::Bool, 5);
  EXPECT_EQ(std::vector<uint8_t>(b, b + 5), (std::vector<uint8_t>{0, 0, 1, 1, 1}));
  const int32_t i[3] = {0, 7, -7};
  convert(i, DType::I32, b, DType::Bool, 3);
  EXPECT_EQ(std::vector<uint8_t>(b, b + 3), (std::vector<uint8_t>{0, 1, 1}));
  const uint8_t raw[3] = {0, 1, 2};  // a nonzero byte reads as true
  float out[3];
  convert(raw, DType::Bool, out, DType::F32, 3);
  EXPECT_EQ(out[2], 1.0f);
  uint8_t e4m3[3];
  convert(raw, DType::Bool, e4m3, DType::F8_E4M3, 3);
  EXPECT_EQ(e4m3[1], 0x38) << "e4m3 1.0";
}

TEST(DTypeConvert, IntToSaturatingFormats) {
  const int32_t v[4] = {1000, -1000, 7, 100000};
  uint8_t out[4];
  convert(v, DType::I32, out, DType::F8_E4M3, 4);
  EXPECT_EQ(out[0], 0x7E) << "e4m3 saturates by default";
  EXPECT_EQ(out[1], 0xFE);
  convert(v, DType::I32, out, DType::F4_E2M1, 4);
  EXPECT_EQ(out[0], 0xF7) << "1000 → 6, -1000 → -6";
  EXPECT_EQ(out[1], 0x77) << "7 is a tie between 6 and (virtual) 8, saturates to 6; 100000 → 6";
  convert(v, DType::I32, out, DType::F8_E5M2, 4);
  EXPECT_EQ(out[3], 0x7C) << "e5m2 overflows to inf by default";
}

}  // namespace
}  // namespace nemotron
