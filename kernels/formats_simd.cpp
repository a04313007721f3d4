// AVX-512 round_array: the same conversions as formats.cpp, sixteen lanes at a time.
#include <immintrin.h>

#include <cstring>

#include "kernels/formats.h"

namespace st {
namespace {

inline __m512i flush_bits(__m512i b) {
  // exponent field zero (zero or subnormal) -> keep only the sign
  const __m512i exp_mask = _mm512_set1_epi32(0x7F800000);
  const __m512i sign = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  __mmask16 sub = _mm512_testn_epi32_mask(b, exp_mask);
  return _mm512_mask_and_epi32(b, sub, b, sign);
}

inline __m512i bf16_round(__m512i b) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i inf = _mm512_set1_epi32(0x7F800000);
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(b, abs_mask), inf);
  __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(0xFFFF, b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)), lsb);
  __m512i q = _mm512_or_si512(b, _mm512_set1_epi32(0x00400000));  // quiet NaN
  return _mm512_and_si512(_mm512_mask_mov_epi32(r, nan, q), hi);
}

inline __m512 fp16_round(__m512 x, bool flush) {
  __m512 y = _mm512_maskz_cvtph_ps(0xFFFF, _mm512_maskz_cvtps_ph(0xFFFF, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  if (flush) {
    // a subnormal fp16 result (|y| < 2^-14) becomes a zero of the same sign
    const __m512 min_normal = _mm512_set1_ps(6.103515625e-05f);
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
    __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(y), min_normal, _CMP_LT_OQ);
    y = _mm512_mask_and_ps(y, m, y, sign);
  }
  return y;
}

}  // namespace

void round_array(Format f, Subnormals s, float* x, int64_t n) { round_array_to(f, s, x, x, n); }

void round_array_to(Format f, Subnormals s, const float* src, float* dst, int64_t n) {
  if (f == Format::int8) {
    for (int64_t i = 0; i < n; ++i) dst[i] = round_to(f, src[i], s);
    return;
  }
  const bool flush = s == Subnormals::flush;
  if (f == Format::fp32 && !flush) {
    if (dst != src) std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i b = _mm512_loadu_si512(src + i);
    if (flush) b = flush_bits(b);
    if (f == Format::bf16) b = bf16_round(b);
    else if (f == Format::fp16) b = _mm512_castps_si512(fp16_round(_mm512_castsi512_ps(b), flush));
    _mm512_storeu_si512(dst + i, b);
  }
  for (; i < n; ++i) dst[i] = round_to(f, src[i], s);
}

}  // namespace st
