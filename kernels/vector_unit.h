#pragma once
// Numerics of the modeled vector unit (non-conv ops): fp32 everywhere, with the reduction order and
// the transcendental algorithms fixed by the modeled hardware, so results are the same bits on any
// host and for any OMP_NUM_THREADS.
//
// Reductions (sum over n elements, `lanes` = spec.vector.lanes): element i goes to lane i % lanes;
// each lane accumulates its elements in increasing i starting from +0; the lanes are then combined
// in lane order: total = ((+0 + p_0) + p_1) + ... + p_{lanes-1}. A reduction may be fed in several
// pieces (BN: one channel is N strided runs of H*W elements): the lane position carries over, so
// the result depends only on the flattened element order, never on how it was fed.
// Variants: plain sum (p += x), sum of products (p = fma(x, y, p)), sum of squared deviations
// (d = x - m; p = fma(d, d, p)), sum of deviation products (p = fma(x - m, y, p)).
//
// Special functions (the modeled unit's algorithms, emulated exactly with basic IEEE operations and
// explicit fma; no libm call whose result may differ between libm versions):
// - div(a, b): IEEE fp32 division, correctly rounded (div_cycles).
// - rsqrt(x): 1 / sqrt(x), two correctly rounded IEEE operations (rsqrt_cycles).
// - exp(x): x = k ln2 + r (k = nearest integer of x log2 e, Cody-Waite two-constant reduction with
//   fma), exp(r) by a degree-7 Taylor polynomial in Horner form with fma (|r| <= ln2/2, truncation
//   < 6e-9 relative), scaled by 2^k with an exact ldexp (exp_cycles). Within 2 ulp of exp (tested).
// - log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1), odd
//   polynomial to s^9 with fma; + e ln2 (two constants). Counted as an exp (same transcendental
//   unit, exp_cycles). Within 3 ulp of log away from x = 1 (tested; 2.25 measured).
#include <cstdint>
#include <vector>

namespace st::vu {

// Lane-partitioned accumulator; see the header comment for the order it defines.
class LaneSum {
 public:
  explicit LaneSum(int lanes);
  void add(const float* x, int64_t n);                              // p += x
  void add_dot(const float* x, const float* y, int64_t n);          // p = fma(x, y, p)
  void add_sq_dev(const float* x, float m, int64_t n);              // d = x - m; p = fma(d, d, p)
  void add_dev_dot(const float* x, float m, const float* y, int64_t n);  // p = fma(x - m, y, p)
  float total() const;                                              // lanes combined in lane order

 private:
  std::vector<float> p_;  // (lanes) partial sums
  int lanes_;
  int pos_ = 0;           // lane of the next element
};

// Naive reference of the same order: p[i % lanes] op= ..., one element at a time.
float sum_naive(const float* x, int64_t n, int lanes);
float sum_sq_dev_naive(const float* x, float m, int64_t n, int lanes);

float div(float a, float b);
float rsqrt(float x);
float exp(float x);
float log(float x);

}  // namespace st::vu
