#pragma once
// The PE's arithmetic, shared by the PE-level reference and the scalar edges of the fast kernel.
#include <cmath>

#include "kernels/formats.h"

namespace st {

// One multiply-accumulate of a PE: fused -> round(x*y + acc); unfused -> round(round(x*y) + acc).
// Under Subnormals::flush a subnormal result becomes a zero of the same sign.
inline float pe_mac(float acc, float x, float y, bool fused, Subnormals sub) {
  float r = fused ? std::fma(x, y, acc) : flush_subnormal(x * y, sub) + acc;
  return flush_subnormal(r, sub);
}

// The accumulator memory's adder (WS/IS chunk sums).
inline float pe_add(float acc, float s, Subnormals sub) { return flush_subnormal(acc + s, sub); }

}  // namespace st
