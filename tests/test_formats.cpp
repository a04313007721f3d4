// Number formats: exhaustive checks over every fp32 bit pattern.
#include <gtest/gtest.h>

#include <cstring>

#include <random>
#include <omp.h>

#include <Eigen/Core>
#include <atomic>
#include <cmath>
#include <limits>

#include "kernels/formats.h"

using namespace st;

namespace {

bool is_nan_bits(uint32_t b) { return (b & 0x7FFFFFFFu) > 0x7F800000u; }

// Runs check(bits) over all 2^32 patterns in parallel; returns the number of failures and the first.
template <class F>
uint64_t all_patterns(F check, uint32_t* first_bad) {
  std::atomic<uint64_t> bad{0};
  std::atomic<uint32_t> first{0};
#pragma omp parallel for schedule(static)
  for (int64_t hi = 0; hi < (int64_t{1} << 16); ++hi) {
    uint64_t local = 0;
    for (uint32_t lo = 0; lo < (1u << 16); ++lo) {
      uint32_t b = static_cast<uint32_t>(hi << 16) | lo;
      if (!check(b)) {
        if (local++ == 0 && bad.load() == 0) first.store(b);
      }
    }
    bad += local;
  }
  *first_bad = first.load();
  return bad.load();
}

// Flush reference for bf16: a subnormal input is a signed zero, everything else as Eigen rounds it.
uint16_t bf16_flush_reference(float x) {
  uint32_t b = f32_bits(x);
  if ((b & 0x7F800000u) == 0) return static_cast<uint16_t>((b >> 16) & 0x8000u);
  return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(x));
}

}  // namespace

TEST(Bf16, ExhaustiveKeepMatchesEigen) {
  uint32_t first = 0;
  uint64_t bad = all_patterns(
      [](uint32_t b) {
        float x = bits_f32(b);
        uint16_t got = to_bf16(x, Subnormals::keep);
        uint16_t want = Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(x));
        if (is_nan_bits(b)) {
          // Eigen squashes every NaN to the default qNaN; we keep sign and top payload bits and set
          // the quiet bit. Both must be a quiet NaN of the input's sign.
          return (got & 0x7FC0u) == 0x7FC0u && (got & 0x8000u) == (want & 0x8000u) &&
                 got == static_cast<uint16_t>((b >> 16) | 0x40u);
        }
        return got == want;
      },
      &first);
  EXPECT_EQ(bad, 0u) << "first mismatch at fp32 bits 0x" << std::hex << first;
}

TEST(Bf16, ExhaustiveFlushMatchesReference) {
  uint32_t first = 0;
  uint64_t bad = all_patterns(
      [](uint32_t b) {
        if (is_nan_bits(b))
          return to_bf16(bits_f32(b), Subnormals::flush) == static_cast<uint16_t>((b >> 16) | 0x40u);
        return to_bf16(bits_f32(b), Subnormals::flush) == bf16_flush_reference(bits_f32(b));
      },
      &first);
  EXPECT_EQ(bad, 0u) << "first mismatch at fp32 bits 0x" << std::hex << first;
}

TEST(Bf16, RoundTripOfEveryBf16IsExact) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    if (is_nan_bits(h << 16)) continue;
    ASSERT_EQ(to_bf16(from_bf16(static_cast<uint16_t>(h))), h);
  }
}

TEST(Fp16, ExhaustiveKeepMatchesCompiler) {
  uint32_t first = 0;
  uint64_t bad = all_patterns(
      [](uint32_t b) {
        float x = bits_f32(b);
        _Float16 h = static_cast<_Float16>(x);
        uint16_t want;
        std::memcpy(&want, &h, 2);
        uint16_t got = to_fp16(x, Subnormals::keep);
        if (is_nan_bits(b)) return (got & 0x7E00u) == 0x7E00u && (got & 0x8000u) == (want & 0x8000u);
        return got == want;
      },
      &first);
  EXPECT_EQ(bad, 0u) << "first mismatch at fp32 bits 0x" << std::hex << first;
}

TEST(Fp16, ExhaustiveFlushZeroesSubnormalInputsAndResults) {
  uint32_t first = 0;
  uint64_t bad = all_patterns(
      [](uint32_t b) {
        float x = bits_f32(b);
        uint16_t got = to_fp16(x, Subnormals::flush);
        if (is_nan_bits(b)) return (got & 0x7E00u) == 0x7E00u;
        uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
        if ((b & 0x7F800000u) == 0) return got == sign;  // subnormal (or zero) input
        _Float16 h = static_cast<_Float16>(x);
        uint16_t keep;
        std::memcpy(&keep, &h, 2);
        if ((keep & 0x7C00u) == 0) return got == sign;  // subnormal (or zero) result
        return got == keep;
      },
      &first);
  EXPECT_EQ(bad, 0u) << "first mismatch at fp32 bits 0x" << std::hex << first;
}

TEST(Fp16, FromFp16IsExactForEveryPattern) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    _Float16 v;
    uint16_t hh = static_cast<uint16_t>(h);
    std::memcpy(&v, &hh, 2);
    float want = static_cast<float>(v);
    float got = from_fp16(hh);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got));
      continue;
    }
    ASSERT_EQ(f32_bits(got), f32_bits(want)) << "fp16 bits 0x" << std::hex << h;
  }
}

TEST(Int8, RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(to_int8(0.5f), 0);
  EXPECT_EQ(to_int8(1.5f), 2);
  EXPECT_EQ(to_int8(2.5f), 2);
  EXPECT_EQ(to_int8(-0.5f), 0);
  EXPECT_EQ(to_int8(-1.5f), -2);
  EXPECT_EQ(to_int8(-2.5f), -2);
  EXPECT_EQ(to_int8(126.5f), 126);
  EXPECT_EQ(to_int8(127.49f), 127);
  EXPECT_EQ(to_int8(127.5f), 127);
  EXPECT_EQ(to_int8(1000.0f), 127);
  EXPECT_EQ(to_int8(-128.4f), -128);
  EXPECT_EQ(to_int8(-128.5f), -128);
  EXPECT_EQ(to_int8(-1e9f), -128);
  EXPECT_EQ(to_int8(std::numeric_limits<float>::infinity()), 127);
  EXPECT_EQ(to_int8(-std::numeric_limits<float>::infinity()), -128);
  EXPECT_EQ(to_int8(std::numeric_limits<float>::quiet_NaN()), 0);
  for (int v = -128; v <= 127; ++v) EXPECT_EQ(to_int8(static_cast<float>(v)), v);
}

TEST(Formats, NamesRoundTrip) {
  for (Format f : {Format::fp32, Format::bf16, Format::fp16, Format::int8}) {
    auto p = parse_format(to_string(f));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(*p, f);
  }
  EXPECT_FALSE(parse_format("fp8").has_value());
  EXPECT_EQ(format_bytes(Format::bf16), 2);
  EXPECT_EQ(format_bytes(Format::int8), 1);
}

TEST(Formats, RoundToKeepsValuesOfTheFormat) {
  EXPECT_EQ(round_to(Format::bf16, 1.00390625f), 1.0f);   // 1 + 2^-8: tie, rounds to even
  EXPECT_EQ(round_to(Format::bf16, 1.01171875f), 1.015625f);  // 1 + 3*2^-8: tie, rounds up to even
  EXPECT_EQ(round_to(Format::fp16, 65519.0f), 65504.0f);
  EXPECT_TRUE(std::isinf(round_to(Format::fp16, 65520.0f)));
  EXPECT_EQ(round_to(Format::fp32, 1e-40f, Subnormals::flush), 0.0f);
  EXPECT_TRUE(std::signbit(round_to(Format::fp32, -1e-40f, Subnormals::flush)));
}

// round_array_to (out of place) gives round_array's bits and leaves its source untouched.
TEST(RoundArray, OutOfPlaceEqualsInPlace) {
  std::mt19937 rng(3);
  std::vector<float> src(1000);
  for (auto& v : src) v = bits_f32(static_cast<uint32_t>(rng()));
  const std::vector<float> keep = src;
  for (Format f : {Format::fp32, Format::bf16, Format::fp16, Format::int8})
    for (Subnormals s : {Subnormals::keep, Subnormals::flush}) {
      std::vector<float> in_place = src, out(src.size());
      round_array(f, s, in_place.data(), static_cast<int64_t>(in_place.size()) - 5);
      round_array_to(f, s, src.data(), out.data(), static_cast<int64_t>(src.size()) - 5);
      for (size_t i = 0; i + 5 < src.size(); ++i)
        ASSERT_EQ(f32_bits(out[i]), f32_bits(in_place[i])) << to_string(f) << " " << i;
      ASSERT_EQ(0, std::memcmp(src.data(), keep.data(), src.size() * sizeof(float)));
    }
}

TEST(RoundArray, VectorizedEqualsScalarForEveryPattern) {
  for (Format f : {Format::fp32, Format::bf16, Format::fp16})
    for (Subnormals s : {Subnormals::keep, Subnormals::flush}) {
      std::atomic<uint64_t> bad{0};
#pragma omp parallel
      {
        std::vector<float> buf(1 << 16);
#pragma omp for schedule(static)
        for (int64_t hi = 0; hi < (int64_t{1} << 16); ++hi) {
          for (uint32_t lo = 0; lo < (1u << 16); ++lo) buf[lo] = bits_f32(static_cast<uint32_t>(hi << 16) | lo);
          round_array(f, s, buf.data(), static_cast<int64_t>(buf.size()) - 3);  // exercise the scalar tail
          uint64_t local = 0;
          for (uint32_t lo = 0; lo < (1u << 16) - 3; ++lo) {
            float want = round_to(f, bits_f32(static_cast<uint32_t>(hi << 16) | lo), s);
            local += f32_bits(buf[lo]) != f32_bits(want);  // NaNs too: same payload rules
          }
          bad += local;
        }
      }
      EXPECT_EQ(bad.load(), 0u) << to_string(f) << " " << to_string(s);
    }
}
