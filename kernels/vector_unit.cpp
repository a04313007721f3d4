// Vector-unit numerics: lane-partitioned reductions and the unit's special functions.
// The fast paths process whole rows of `lanes` elements (row r holds elements r*lanes .. +lanes-1, so
// element i lands in lane i % lanes as the order requires); the inner loops are element-wise over
// lanes, which the compiler vectorizes without reassociating anything.
#include "kernels/vector_unit.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/formats.h"
#include "src/base/error.h"

namespace st::vu {

LaneSum::LaneSum(int lanes) : p_(static_cast<size_t>(lanes), 0.0f), lanes_(lanes) {
  ST_INVARIANT(lanes >= 1);
}

// Shared driver: `one(lane, i)` accumulates element i into lane; `row(p, i0)` accumulates the
// `lanes` elements starting at i0 into p[0..lanes).
template <class One, class Row>
static void feed(int lanes, int& pos, float* p, int64_t n, One one, Row row) {
  int64_t i = 0;
  while (i < n && pos != 0) {  // finish the partly filled row left by the previous piece
    one(pos, i);
    ++i;
    pos = (pos + 1) % lanes;
  }
  for (; i + lanes <= n; i += lanes) row(p, i);
  for (; i < n; ++i) {
    one(pos, i);
    pos = (pos + 1) % lanes;
  }
}

void LaneSum::add(const float* x, int64_t n) {
  const int L = lanes_;
  feed(L, pos_, p_.data(), n, [&](int l, int64_t i) { p_[l] += x[i]; },
       [&](float* __restrict p, int64_t i0) {
         const float* __restrict xs = x + i0;
         for (int j = 0; j < L; ++j) p[j] += xs[j];
       });
}

void LaneSum::add_dot(const float* x, const float* y, int64_t n) {
  const int L = lanes_;
  feed(L, pos_, p_.data(), n, [&](int l, int64_t i) { p_[l] = std::fma(x[i], y[i], p_[l]); },
       [&](float* __restrict p, int64_t i0) {
         const float* __restrict xs = x + i0;
         const float* __restrict ys = y + i0;
         for (int j = 0; j < L; ++j) p[j] = std::fma(xs[j], ys[j], p[j]);
       });
}

void LaneSum::add_sq_dev(const float* x, float m, int64_t n) {
  const int L = lanes_;
  feed(L, pos_, p_.data(), n,
       [&](int l, int64_t i) {
         float d = x[i] - m;
         p_[l] = std::fma(d, d, p_[l]);
       },
       [&](float* __restrict p, int64_t i0) {
         const float* __restrict xs = x + i0;
         for (int j = 0; j < L; ++j) {
           float d = xs[j] - m;
           p[j] = std::fma(d, d, p[j]);
         }
       });
}

void LaneSum::add_dev_dot(const float* x, float m, const float* y, int64_t n) {
  const int L = lanes_;
  feed(L, pos_, p_.data(), n, [&](int l, int64_t i) { p_[l] = std::fma(x[i] - m, y[i], p_[l]); },
       [&](float* __restrict p, int64_t i0) {
         const float* __restrict xs = x + i0;
         const float* __restrict ys = y + i0;
         for (int j = 0; j < L; ++j) p[j] = std::fma(xs[j] - m, ys[j], p[j]);
       });
}

float LaneSum::total() const {
  float acc = 0.0f;
  for (float v : p_) acc += v;
  return acc;
}

float sum_naive(const float* x, int64_t n, int lanes) {
  std::vector<float> p(static_cast<size_t>(lanes), 0.0f);
  for (int64_t i = 0; i < n; ++i) p[i % lanes] += x[i];
  float acc = 0.0f;
  for (int l = 0; l < lanes; ++l) acc += p[l];
  return acc;
}

float sum_sq_dev_naive(const float* x, float m, int64_t n, int lanes) {
  std::vector<float> p(static_cast<size_t>(lanes), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    float d = x[i] - m;
    p[i % lanes] = std::fma(d, d, p[i % lanes]);
  }
  float acc = 0.0f;
  for (int l = 0; l < lanes; ++l) acc += p[l];
  return acc;
}

float div(float a, float b) { return a / b; }

float rsqrt(float x) { return 1.0f / std::sqrt(x); }

namespace {
// Range-reduction constants: ln2 = kLn2Hi + kLn2Lo (kLn2Hi is ln2 rounded to fp32).
constexpr float kLog2e = 0x1.715476p+0f;
constexpr float kLn2Hi = 0x1.62e430p-1f;
constexpr float kLn2Lo = -0x1.05c610p-29f;
constexpr float kExpOverflow = 0x1.62e430p+6f;   // ~88.7228: exp above this is +Inf in fp32
constexpr float kExpUnderflow = -0x1.9fe368p+6f; // ~-103.97: exp below this rounds to +0
// 1/n! for n = 0..7 (Taylor coefficients of exp), rounded to fp32.
constexpr float kExpC[8] = {1.0f, 1.0f, 0.5f, 0x1.555556p-3f, 0x1.555556p-5f, 0x1.111112p-7f,
                            0x1.6c16c2p-10f, 0x1.a01a02p-13f};
// 2/(2j+1) for j = 0..4: log m = s * (2 + z (2/3 + z (2/5 + z (2/7 + z 2/9)))), z = s^2.
constexpr float kLogC[5] = {2.0f, 0x1.555556p-1f, 0x1.99999ap-2f, 0x1.24924ap-2f, 0x1.c71c72p-3f};
constexpr float kSqrtHalf = 0x1.6a09e6p-1f;
}  // namespace

float exp(float x) {
  if (x != x) return bits_f32(kCanonicalNaN);
  if (x > kExpOverflow) return std::numeric_limits<float>::infinity();
  if (x < kExpUnderflow) return 0.0f;
  // nearbyint is an exact IEEE operation (round to nearest even in the default mode).
  float k = std::nearbyint(x * kLog2e);
  float r = std::fma(-k, kLn2Hi, x);
  r = std::fma(-k, kLn2Lo, r);
  float p = kExpC[7];
  for (int i = 6; i >= 0; --i) p = std::fma(p, r, kExpC[i]);
  // ldexp is an exact scaling (correctly rounded only when the result is subnormal).
  return std::ldexp(p, static_cast<int>(k));
}

float log(float x) {
  if (x != x || x < 0) return bits_f32(kCanonicalNaN);
  if (x == 0) return -std::numeric_limits<float>::infinity();
  if (x == std::numeric_limits<float>::infinity()) return x;
  int e = 0;
  uint32_t b = f32_bits(x);
  if ((b & 0x7F800000u) == 0) {  // subnormal: scale into the normal range first (exact)
    x *= 0x1p23f;
    e = -23;
    b = f32_bits(x);
  }
  e += static_cast<int>((b >> 23) & 0xFF) - 127;
  float m = bits_f32((b & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
  if (m > 2.0f * kSqrtHalf) {
    m *= 0.5f;  // exact
    ++e;
  }
  float s = (m - 1.0f) / (m + 1.0f);  // m - 1 is exact (Sterbenz)
  float z = s * s;
  float q = kLogC[4];
  for (int i = 3; i >= 0; --i) q = std::fma(q, z, kLogC[i]);
  float lm = s * q;
  float fe = static_cast<float>(e);
  return std::fma(fe, kLn2Hi, std::fma(fe, kLn2Lo, lm));
}

}  // namespace st::vu
