// Fast bit-accurate GEMM of the modeled array (AVX-512, OpenMP).
//
// Why it is exact: every output element is a chain of MACs whose order the dataflow defines
// (systolic.h). Here each output lives in one SIMD lane of one accumulator register and sees its
// k's in increasing order; for WS/IS the chain restarts from +0 at every multiple of R (the array
// rows) and the chunk sum is added to the accumulator tile, as the accumulator memory does. Cache
// blocking over k only pauses a chain (the running value is stored and reloaded), it never splits
// one. Work is split over output tiles, each computed wholly by one thread, so the thread count
// cannot change a bit.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/systolic.h"
#include "kernels/systolic_mac.h"
#include "src/error.h"

namespace st {
namespace {

constexpr int kMR = 12;          // micro-tile rows (broadcast A values)
constexpr int kNR = 32;          // micro-tile columns (two 16-lane registers)
constexpr int kPanelsM = 8;      // macro tile = kPanelsM * kMR rows
constexpr int kPanelsN = 8;      // macro tile = kPanelsN * kNR columns
constexpr int64_t kTargetKC = 256;

struct AlignedDelete {
  void operator()(float* p) const { std::free(p); }
};
using Buf = std::unique_ptr<float[], AlignedDelete>;
Buf alloc_floats(int64_t n) {
  size_t bytes = ((static_cast<size_t>(std::max<int64_t>(n, 1)) * 4 + 63) / 64) * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return Buf(p);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Flush-to-zero of subnormal lanes, keeping the sign (Subnormals::flush).
inline __m512 flush_lanes(__m512 r) {
  const __m512 tiny = _mm512_set1_ps(1.17549435e-38f);  // FLT_MIN
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u)));
  __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(r), tiny, _CMP_LT_OQ);
  return _mm512_mask_and_ps(r, m, r, sign);
}

template <bool Fused, bool Flush>
inline __m512 vmac(__m512 acc, __m512 a, __m512 b) {
  __m512 r;
  if constexpr (Fused) {
    r = _mm512_fmadd_ps(a, b, acc);
  } else {
    __m512 p = _mm512_mul_ps(a, b);
    if constexpr (Flush) p = flush_lanes(p);
    r = _mm512_add_ps(p, acc);
  }
  if constexpr (Flush) r = flush_lanes(r);
  return r;
}

// One micro tile over kc k's. Ap: (kc, kMR) packed; Bp: (kc, kNR) packed; T: (kMR, kNR) running
// accumulators. Chunked (WS/IS): chains of `chunk` k's start from +0 and are added into T.
// Not chunked (OS): the chain continues from T.
template <bool Fused, bool Flush, bool Chunked>
void micro(int64_t kc, int64_t chunk, const float* __restrict Ap, const float* __restrict Bp,
           float* __restrict T) {
  for (int64_t k0 = 0; k0 < kc; k0 += chunk) {
    const int64_t len = std::min(chunk, kc - k0);
    __m512 c[kMR][2];
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      if constexpr (Chunked) {
        c[r][0] = _mm512_setzero_ps();
        c[r][1] = _mm512_setzero_ps();
      } else {
        c[r][0] = _mm512_load_ps(T + r * kNR);
        c[r][1] = _mm512_load_ps(T + r * kNR + 16);
      }
    }
    const float* a = Ap + k0 * kMR;
    const float* b = Bp + k0 * kNR;
    for (int64_t k = 0; k < len; ++k) {
      __m512 b0 = _mm512_load_ps(b + k * kNR);
      __m512 b1 = _mm512_load_ps(b + k * kNR + 16);
#pragma GCC unroll 12
      for (int r = 0; r < kMR; ++r) {
        __m512 av = _mm512_set1_ps(a[k * kMR + r]);
        c[r][0] = vmac<Fused, Flush>(c[r][0], av, b0);
        c[r][1] = vmac<Fused, Flush>(c[r][1], av, b1);
      }
    }
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      if constexpr (Chunked) {
        __m512 t0 = _mm512_add_ps(_mm512_load_ps(T + r * kNR), c[r][0]);
        __m512 t1 = _mm512_add_ps(_mm512_load_ps(T + r * kNR + 16), c[r][1]);
        if constexpr (Flush) {
          t0 = flush_lanes(t0);
          t1 = flush_lanes(t1);
        }
        _mm512_store_ps(T + r * kNR, t0);
        _mm512_store_ps(T + r * kNR + 16, t1);
      } else {
        _mm512_store_ps(T + r * kNR, c[r][0]);
        _mm512_store_ps(T + r * kNR + 16, c[r][1]);
      }
    }
  }
}

using MicroFn = void (*)(int64_t, int64_t, const float*, const float*, float*);

MicroFn pick_micro(bool fused, bool flush, bool chunked) {
  if (fused) {
    if (flush) return chunked ? micro<true, true, true> : micro<true, true, false>;
    return chunked ? micro<true, false, true> : micro<true, false, false>;
  }
  if (flush) return chunked ? micro<false, true, true> : micro<false, true, false>;
  return chunked ? micro<false, false, true> : micro<false, false, false>;
}

// Packs rows [0, M) of A (M x K) into panels of kMR rows: panel p holds (K, kMR), rows past M zero.
// Values are rounded to the array's input format on the way (the operand conversion at the edge).
void pack_a(const ArrayConfig& cfg, const GemmShape& g, MatView A, float* Ap) {
  const int64_t panels = ceil_div(g.M, kMR);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = Ap + p * g.K * kMR;
    for (int64_t k = 0; k < g.K; ++k)
      for (int r = 0; r < kMR; ++r) {
        int64_t m = p * kMR + r;
        dst[k * kMR + r] = m < g.M ? round_to(cfg.format, A.at(m, k), cfg.subnormals) : 0.0f;
      }
  }
}

// Packs B (K x N) into panels of kNR columns: panel q holds (K, kNR), columns past N zero.
void pack_b(const ArrayConfig& cfg, const GemmShape& g, MatView B, float* Bp) {
  const int64_t panels = ceil_div(g.N, kNR);
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < panels; ++q) {
    float* dst = Bp + q * g.K * kNR;
    for (int64_t k = 0; k < g.K; ++k)
      for (int c = 0; c < kNR; ++c) {
        int64_t n = q * kNR + c;
        dst[k * kNR + c] = n < g.N ? round_to(cfg.format, B.at(k, n), cfg.subnormals) : 0.0f;
      }
  }
}

}  // namespace

void systolic_gemm(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B, float* C,
                   int64_t ldc) {
  ST_INVARIANT(cfg.format != Format::int8);
  ST_INVARIANT(cfg.rows >= 1 && cfg.cols >= 1);
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    for (int64_t m = 0; m < g.M; ++m) std::fill(C + m * ldc, C + m * ldc + g.N, 0.0f);
    return;
  }
  const int64_t pm = ceil_div(g.M, kMR), pn = ceil_div(g.N, kNR);
  Buf Ap = alloc_floats(pm * kMR * g.K);  // (pm, K, kMR)
  Buf Bp = alloc_floats(pn * kNR * g.K);  // (pn, K, kNR)
  pack_a(cfg, g, A, Ap.get());
  pack_b(cfg, g, B, Bp.get());

  const bool chunked = cfg.dataflow != Dataflow::os;
  const bool fused = cfg.fused_mac || cfg.format != Format::fp32;
  const bool flush = cfg.subnormals == Subnormals::flush;
  MicroFn fn = pick_micro(fused, flush, chunked);
  // A k block is a whole number of array-row chunks so that chunk boundaries stay at multiples of R.
  const int64_t R = cfg.rows;
  const int64_t chunk = chunked ? R : g.K;
  const int64_t kc_blk = chunked ? R * std::max<int64_t>(1, kTargetKC / R) : kTargetKC;

  const int64_t tiles_m = ceil_div(pm, kPanelsM), tiles_n = ceil_div(pn, kPanelsN);
#pragma omp parallel
  {
    Buf T = alloc_floats(int64_t{kPanelsM} * kPanelsN * kMR * kNR);
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t tm = 0; tm < tiles_m; ++tm) {
      for (int64_t tn = 0; tn < tiles_n; ++tn) {
        const int64_t p0 = tm * kPanelsM, p1 = std::min(pm, p0 + kPanelsM);
        const int64_t q0 = tn * kPanelsN, q1 = std::min(pn, q0 + kPanelsN);
        std::memset(T.get(), 0, sizeof(float) * kPanelsM * kPanelsN * kMR * kNR);  // +0
        for (int64_t k0 = 0; k0 < g.K; k0 += kc_blk) {
          const int64_t kc = std::min(kc_blk, g.K - k0);
          for (int64_t q = q0; q < q1; ++q)
            for (int64_t p = p0; p < p1; ++p) {
              float* t = T.get() + ((q - q0) * kPanelsM + (p - p0)) * kMR * kNR;
              fn(kc, std::min(chunk, kc), Ap.get() + (p * g.K + k0) * kMR,
                 Bp.get() + (q * g.K + k0) * kNR, t);
            }
        }
        for (int64_t q = q0; q < q1; ++q)
          for (int64_t p = p0; p < p1; ++p) {
            const float* t = T.get() + ((q - q0) * kPanelsM + (p - p0)) * kMR * kNR;
            for (int r = 0; r < kMR; ++r) {
              int64_t m = p * kMR + r;
              if (m >= g.M) break;
              for (int c = 0; c < kNR; ++c) {
                int64_t n = q * kNR + c;
                if (n >= g.N) break;
                C[m * ldc + n] = canonicalize_nan(t[r * kNR + c]);
              }
            }
          }
      }
    }
  }
}

void systolic_gemm_i8(const ArrayConfig& cfg, const GemmShape& g, const int8_t* A, const int8_t* B,
                      int32_t* C) {
  (void)cfg;  // integer sums are exact modulo 2^32: the dataflow's order cannot change them
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < g.M; ++m) {
    uint32_t* row = reinterpret_cast<uint32_t*>(C + m * g.N);
    std::fill(row, row + g.N, 0u);
    for (int64_t k = 0; k < g.K; ++k) {
      const uint32_t a = static_cast<uint32_t>(static_cast<int32_t>(A[m * g.K + k]));
      const int8_t* b = B + k * g.N;
      for (int64_t n = 0; n < g.N; ++n) row[n] += a * static_cast<uint32_t>(static_cast<int32_t>(b[n]));
    }
  }
}

}  // namespace st
