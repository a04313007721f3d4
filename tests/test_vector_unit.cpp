// Vector-unit numerics: the fast lane-partitioned reductions equal their naive references bit for
// bit (any piece split, any lanes), exp is within 2 ulp and log within 3 ulp of the true functions, and special
// values behave as documented in kernels/vector_unit.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/formats.h"
#include "kernels/vector_unit.h"

using namespace st;

namespace {

// Distance in units in the last place between a float and a double reference.
double ulp_error(float got, double want) {
  double ulp = std::ldexp(1.0, std::ilogb(float(want)) - 23);
  return std::fabs(double(got) - want) / ulp;
}

TEST(VectorUnit, LaneSumFastEqualsNaiveAnySplit) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> d(-1e3f, 1e3f);
  for (int lanes : {1, 2, 3, 7, 16, 32, 33}) {
    for (int64_t n : {0, 1, 5, 31, 32, 33, 100, 1000, 4099}) {
      std::vector<float> x(n), y(n);
      for (auto& v : x) v = d(rng);
      for (auto& v : y) v = d(rng);
      const float m = 3.25f;
      // Feed in irregular pieces: the lane position must carry over.
      vu::LaneSum s(lanes), q(lanes), dot(lanes);
      for (int64_t i = 0, piece = 1; i < n; i += piece, piece = piece * 3 % 17 + 1) {
        int64_t k = std::min(piece, n - i);
        s.add(x.data() + i, k);
        q.add_sq_dev(x.data() + i, m, k);
        dot.add_dot(x.data() + i, y.data() + i, k);
      }
      float want = vu::sum_naive(x.data(), n, lanes);
      float got = s.total();
      EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << "sum lanes " << lanes << " n " << n;
      float wq = vu::sum_sq_dev_naive(x.data(), m, n, lanes), gq = q.total();
      EXPECT_EQ(std::memcmp(&gq, &wq, 4), 0) << "sq_dev lanes " << lanes << " n " << n;
      std::vector<float> p(lanes, 0.0f);
      for (int64_t i = 0; i < n; ++i) p[i % lanes] = std::fma(x[i], y[i], p[i % lanes]);
      float wd = 0.0f;
      for (float v : p) wd += v;
      float gd = dot.total();
      EXPECT_EQ(std::memcmp(&gd, &wd, 4), 0) << "dot lanes " << lanes << " n " << n;
    }
  }
}

TEST(VectorUnit, LaneOrderIsTheDocumentedOne) {
  // 4 lanes over {1e8, 1, -1e8, 1, 1, 1}: lane 0 = (0 + 1e8) + 1 = 1e8, lane 1 = 1 + 1 = 2,
  // lane 2 = -1e8, lane 3 = 1; combined ((((0 + 1e8) + 2) + -1e8) + 1) = 1 (1e8 + 2 rounds to 1e8).
  const float x[] = {1e8f, 1.0f, -1e8f, 1.0f, 1.0f, 1.0f};
  vu::LaneSum s(4);
  s.add(x, 6);
  EXPECT_EQ(s.total(), 1.0f);
  EXPECT_EQ(vu::sum_naive(x, 6, 4), 1.0f);
  // A sequential sum would give ((((1e8 + 1) - 1e8) + 1) + 1) + 1 = 3: the order matters and is fixed.
  EXPECT_EQ(vu::sum_naive(x, 6, 1), 3.0f);
}

TEST(VectorUnit, ExpWithin2UlpOverTheNormalRange) {
  double worst = 0;
  for (float x = -87.0f; x < 88.7f; x += 0.00937f) {
    double e = ulp_error(vu::exp(x), std::exp(double(x)));
    worst = std::max(worst, e);
  }
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> d(-2.0f, 2.0f);
  for (int i = 0; i < 200000; ++i) {
    float x = d(rng);
    worst = std::max(worst, ulp_error(vu::exp(x), std::exp(double(x))));
  }
  EXPECT_LE(worst, 2.0);
  RecordProperty("exp_max_ulp", std::to_string(worst));
}

TEST(VectorUnit, ExpSpecialValues) {
  EXPECT_EQ(vu::exp(0.0f), 1.0f);
  EXPECT_EQ(vu::exp(-0.0f), 1.0f);
  EXPECT_EQ(vu::exp(-200.0f), 0.0f);
  EXPECT_EQ(vu::exp(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(vu::exp(89.0f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(vu::exp(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f32_bits(vu::exp(std::numeric_limits<float>::quiet_NaN())), kCanonicalNaN);
  // Subnormal results: within 1 ulp of the subnormal grid.
  float e = vu::exp(-100.0f);
  EXPECT_NEAR(double(e), std::exp(-100.0), 1.5 * std::ldexp(1.0, -149));
}

TEST(VectorUnit, LogWithin3Ulp) {
  double worst = 0;
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<uint32_t> bits(0x00800000u, 0x7F7FFFFFu);  // positive normals
  for (int i = 0; i < 300000; ++i) {
    float x = bits_f32(bits(rng));
    if (std::fabs(x - 1.0f) < 0.01f) continue;  // relative error near log(1) = 0 is not the metric
    worst = std::max(worst, ulp_error(vu::log(x), std::log(double(x))));
  }
  // The rounding of s = (m-1)/(m+1) dominates for m near sqrt(2)^-+1, where e = 0: 2.25 ulp measured.
  EXPECT_LE(worst, 3.0);
  // Near 1: absolute error below 2^-24 * |log x| + 1 ulp of 1e-9 scale.
  for (float x = 0.99f; x < 1.01f; x += 1e-5f)
    EXPECT_NEAR(double(vu::log(x)), std::log(double(x)), 4e-7 * std::fabs(std::log(double(x))) + 1e-12);
  EXPECT_EQ(vu::log(1.0f), 0.0f);
  EXPECT_EQ(vu::log(0.0f), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f32_bits(vu::log(-1.0f)), kCanonicalNaN);
  EXPECT_NEAR(double(vu::log(1e-45f)), std::log(double(1e-45f)), 1e-5);  // subnormal input
}

// The modeled unit's results are fixed bit patterns: these were produced by this emulator and must
// come out the same on every host (a libm-dependent implementation would fail here somewhere).
TEST(VectorUnit, GoldenBits) {
  EXPECT_EQ(f32_bits(vu::exp(1.0f)), 0x402df854u);
  EXPECT_EQ(f32_bits(vu::exp(-3.7f)), 0x3cca88fdu);
  EXPECT_EQ(f32_bits(vu::exp(50.5f)), 0x63e7b299u);
  EXPECT_EQ(f32_bits(vu::log(10.0f)), 0x40135d8eu);
  EXPECT_EQ(f32_bits(vu::log(0.3f)), 0xbf9a1bc8u);
  EXPECT_EQ(f32_bits(vu::rsqrt(3.0f)), 0x3f13cd3au);
}

}  // namespace
