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

// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 shuffle intrinsics (they start from
// _mm512_undefined_ps); a known false positive, silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels/scratch.h"
#include "kernels/systolic.h"
#include "kernels/systolic_mac.h"
#include "src/base/error.h"

namespace st {
namespace {

constexpr int kNR = 32;          // micro-tile columns (two 16-lane registers)
constexpr int kPanelsM = 8;      // macro tile = kPanelsM * MR rows
constexpr int kPanelsN = 8;      // macro tile = kPanelsN * kNR columns
constexpr int64_t kTargetKC = 256;

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

// One micro tile over a k block given as consecutive segments (lengths seg[0..nseg)). Ap: (sum, kMR)
// packed; Bp: (sum, kNR) packed; T: (kMR, kNR) running accumulators. Chunked (WS/IS): each segment
// is one array chunk: a chain from +0, then added into T. Not chunked (OS): one chain continuing
// from T through every segment.
template <int kMR, bool Fused, bool Flush, bool Chunked>
void micro(const int32_t* seg, int nseg, const float* __restrict Ap, const float* __restrict Bp,
           float* __restrict T) {
  const float* a = Ap;
  const float* b = Bp;
  __m512 c[kMR][2];
  if constexpr (!Chunked) {
#pragma GCC unroll 16
    for (int r = 0; r < kMR; ++r) {
      c[r][0] = _mm512_load_ps(T + r * kNR);
      c[r][1] = _mm512_load_ps(T + r * kNR + 16);
    }
  }
  for (int sgi = 0; sgi < nseg; ++sgi) {
    const int64_t len = seg[sgi];
    if constexpr (Chunked) {
#pragma GCC unroll 16
      for (int r = 0; r < kMR; ++r) {
        c[r][0] = _mm512_setzero_ps();
        c[r][1] = _mm512_setzero_ps();
      }
    }
    for (int64_t k = 0; k < len; ++k) {
      __m512 b0 = _mm512_load_ps(b + k * kNR);
      __m512 b1 = _mm512_load_ps(b + k * kNR + 16);
#pragma GCC unroll 16
      for (int r = 0; r < kMR; ++r) {
        __m512 av = _mm512_set1_ps(a[k * kMR + r]);
        c[r][0] = vmac<Fused, Flush>(c[r][0], av, b0);
        c[r][1] = vmac<Fused, Flush>(c[r][1], av, b1);
      }
    }
    a += len * kMR;
    b += len * kNR;
    if constexpr (Chunked) {
#pragma GCC unroll 16
      for (int r = 0; r < kMR; ++r) {
        __m512 t0 = _mm512_add_ps(_mm512_load_ps(T + r * kNR), c[r][0]);
        __m512 t1 = _mm512_add_ps(_mm512_load_ps(T + r * kNR + 16), c[r][1]);
        if constexpr (Flush) {
          t0 = flush_lanes(t0);
          t1 = flush_lanes(t1);
        }
        _mm512_store_ps(T + r * kNR, t0);
        _mm512_store_ps(T + r * kNR + 16, t1);
      }
    }
  }
  if constexpr (!Chunked) {
#pragma GCC unroll 16
    for (int r = 0; r < kMR; ++r) {
      _mm512_store_ps(T + r * kNR, c[r][0]);
      _mm512_store_ps(T + r * kNR + 16, c[r][1]);
    }
  }
}

using MicroFn = void (*)(const int32_t*, int, const float*, const float*, float*);

template <int kMR>
MicroFn pick_micro(bool fused, bool flush, bool chunked) {
  if (fused) {
    if (flush) return chunked ? micro<kMR, true, true, true> : micro<kMR, true, true, false>;
    return chunked ? micro<kMR, true, false, true> : micro<kMR, true, false, false>;
  }
  if (flush) return chunked ? micro<kMR, false, true, true> : micro<kMR, false, true, false>;
  return chunked ? micro<kMR, false, false, true> : micro<kMR, false, false, false>;
}

// In-register 16x16 transpose: on return r[i] holds column i of the input rows.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int j = 0; j < 4; ++j) {
    u[4 * j] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0x44);
    u[4 * j + 1] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0xEE);
    u[4 * j + 2] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0x44);
    u[4 * j + 3] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0xEE);
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + i + 4], 0x88);
      t[8 * h + i + 4] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + i + 4], 0xDD);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
  }
}

// Copies a (rows x K) block whose rows are `ld` apart into dst transposed: dst[k * stride + r] for
// r < lanes (rows <= lanes <= 16); lanes past `rows` are written as zeros.
inline void transpose_block(const float* src, int64_t ld, int64_t rows, int64_t K, float* dst,
                            int64_t stride, int lanes) {
  const __mmask16 wmask = static_cast<__mmask16>((1u << lanes) - 1u);
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    const int64_t kn = std::min<int64_t>(16, K - k0);
    const __mmask16 kmask = static_cast<__mmask16>((1u << kn) - 1u);
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(kmask, src + i * ld + k0) : _mm512_setzero_ps();
    transpose16(r);
    for (int64_t kk = 0; kk < kn; ++kk) _mm512_mask_storeu_ps(dst + (k0 + kk) * stride, wmask, r[kk]);
  }
}

// One operand as the packer sees it: entries (l, k), l the outer index (A: row m, B: column n).
// A matrix operand is kept as an (L x K) view `lk` (A itself; B read transposed), so one packing
// routine serves both roles and the operand swap below.
struct Side {
  MatView lk;
  const OperandSource* source = nullptr;
};

Side side_of(const GemmOperand& op, bool is_b) {
  if (op.generated()) return Side{MatView{}, &op.source};
  return Side{is_b ? MatView{op.view.data, op.view.ld, !op.view.trans} : op.view, nullptr};
}

// Transposes an (rows x K) l-major block (rows <= width <= 32, rows `ld` apart) into the panel
// layout dst[k * width + l], lanes past `rows` zero.
inline void transpose_to_panel(const float* src, int64_t ld, int64_t rows, int64_t K, float* dst, int width) {
  const int64_t lo = std::min<int64_t>(rows, 16);
  transpose_block(src, ld, lo, K, dst, width, std::min(width, 16));
  if (width > 16)
    transpose_block(src + 16 * ld, ld, std::max<int64_t>(rows - 16, 0), K, dst + 16, width, width - 16);
}

// k block of a generated l-major operand: staged through a small buffer, then transposed.
constexpr int64_t kStageK = 256;

// Packs entries l in [l0, l0 + width) (past L: zero) and every k as one panel (K, width), then
// rounds it to the array's input format in one vectorized pass (the operand conversion at the
// array edge). The loops follow the operand's storage so that reads are contiguous.
void pack_panel(const ArrayConfig& cfg, const Side& op, int64_t L, int64_t K, int width, int64_t l0, float* dst) {
  const int64_t rows = std::min<int64_t>(width, L - l0);
  if (op.source && op.source->k_major) {
    op.source->fill(l0, l0 + rows, 0, K, dst, width);
    if (rows < width)
      for (int64_t k = 0; k < K; ++k) std::fill(dst + k * width + rows, dst + (k + 1) * width, 0.0f);
  } else if (op.source) {
    float* stage = scratch_floats(ScratchSlot::gemm_stage, 32 * kStageK);
    for (int64_t k0 = 0; k0 < K; k0 += kStageK) {
      const int64_t kn = std::min(kStageK, K - k0);
      op.source->fill(l0, l0 + rows, k0, k0 + kn, stage, kStageK);
      transpose_to_panel(stage, kStageK, rows, kn, dst + k0 * width, width);
    }
  } else if (!op.lk.trans) {
    transpose_to_panel(op.lk.data + l0 * op.lk.ld, op.lk.ld, rows, K, dst, width);
  } else {
    for (int64_t k = 0; k < K; ++k) {
      const float* src = op.lk.data + k * op.lk.ld + l0;
      float* d = dst + k * width;
      for (int64_t r = 0; r < rows; ++r) d[r] = src[r];
      for (int64_t r = rows; r < width; ++r) d[r] = 0.0f;
    }
  }
  if (!(op.source && op.source->rounded)) round_array(cfg.format, cfg.subnormals, dst, K * width);
}

inline __m512 canonical_nan_lanes(__m512 v) {
  __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(v, nan, _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(kCanonicalNaN))));
}

// Writes a finished micro tile t (kMR, kNR) holding outputs rows [m0, m0+rows) x cols [n0, n0+cols)
// to C (row-major, ldc), or to C transposed when out_trans. NaNs become the canonical NaN.
template <int kMR>
void store_tile(const float* t, int64_t rows, int64_t cols, int64_t m0, int64_t n0, float* C,
                int64_t ldc, bool out_trans) {
  if (!out_trans) {
    const __mmask16 lo = static_cast<__mmask16>((1u << std::min<int64_t>(cols, 16)) - 1u);
    const __mmask16 hi = static_cast<__mmask16>((1u << std::max<int64_t>(cols - 16, 0)) - 1u);
    for (int64_t r = 0; r < rows; ++r) {
      float* dst = C + (m0 + r) * ldc + n0;
      _mm512_mask_storeu_ps(dst, lo, canonical_nan_lanes(_mm512_load_ps(t + r * kNR)));
      _mm512_mask_storeu_ps(dst + 16, hi, canonical_nan_lanes(_mm512_load_ps(t + r * kNR + 16)));
    }
    return;
  }
  // Transposed: column c of the tile becomes a row of C; a register transpose per 16 columns.
  const __mmask16 rmask = static_cast<__mmask16>((1u << rows) - 1u);
  for (int half = 0; half < 2; ++half) {
    __m512 v[16];
    for (int r = 0; r < 16; ++r)
      v[r] = r < kMR ? _mm512_load_ps(t + r * kNR + 16 * half) : _mm512_setzero_ps();
    transpose16(v);
    for (int64_t c = 16 * half; c < std::min<int64_t>(cols, 16 * half + 16); ++c)
      _mm512_mask_storeu_ps(C + (n0 + c) * ldc + m0, rmask, canonical_nan_lanes(v[c - 16 * half]));
  }
}

// Runs C (M x N) = A B with the micro kernel of height kMR. Output element (m, n) is written to
// C[m * ldc + n], or to C[n * ldc + m] when out_trans (the caller swapped the operands).
// Parallel over strips along the dimension with more panels; the operand private to a strip is
// packed inside it (hot in cache), the shared one once up front. A strip holds up to kPanels panels,
// fewer when that leaves too few strips to keep every thread busy (tiling never changes a bit: each
// output's chain is the same whatever tile it is in).
template <int kMR>
void run_tiles(const ArrayConfig& cfg, const GemmShape& g, const Side& A, const Side& B, float* C,
               int64_t ldc, bool out_trans, const std::vector<int32_t>* chunks) {
  const int64_t pm = ceil_div(g.M, kMR), pn = ceil_div(g.N, kNR);
  // Parallel over column strips (B packed per strip) unless A has more macro tiles.
  const bool strips_n = ceil_div(pn, kPanelsN) >= ceil_div(pm, kPanelsM);
  const int64_t own_panels = strips_n ? pn : pm;
  const int64_t per_strip = std::clamp<int64_t>(own_panels / (4 * int64_t{omp_get_max_threads()}), 1,
                                                strips_n ? kPanelsN : kPanelsM);
  const int64_t strips = ceil_div(own_panels, per_strip);
  const int64_t tiles_other = strips_n ? ceil_div(pm, kPanelsM) : ceil_div(pn, kPanelsN);
  float* Ap = strips_n ? scratch_floats(ScratchSlot::gemm_a, pm * kMR * g.K) : nullptr;  // (pm, K, kMR), shared
  float* Bp = strips_n ? nullptr : scratch_floats(ScratchSlot::gemm_b, pn * kNR * g.K);  // (pn, K, kNR), shared
  if (strips_n) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pm; ++p) pack_panel(cfg, A, g.M, g.K, kMR, p * kMR, Ap + p * g.K * kMR);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < pn; ++q) pack_panel(cfg, B, g.N, g.K, kNR, q * kNR, Bp + q * g.K * kNR);
  }

  const bool chunked = cfg.dataflow != Dataflow::os;
  const bool fused = cfg.fused_mac;  // every float format (an fp16 product is exact either way)
  const bool flush = cfg.subnormals == Subnormals::flush;
  MicroFn fn = pick_micro<kMR>(fused, flush, chunked);
  // Cache blocking over k: a block is a run of whole array chunks (WS/IS: R k's each, or the
  // caller's chunks), so a chain is never split; OS has one chain, paused between blocks.
  struct KBlock {
    int64_t k0 = 0, kc = 0;
    int32_t seg0 = 0, nseg = 0;
  };
  std::vector<int32_t> segs;
  if (!chunked) {
    for (int64_t k0 = 0; k0 < g.K; k0 += kTargetKC) segs.push_back(static_cast<int32_t>(std::min(kTargetKC, g.K - k0)));
  } else if (chunks) {
    segs = *chunks;
  } else {
    for (int64_t k0 = 0; k0 < g.K; k0 += cfg.rows) segs.push_back(static_cast<int32_t>(std::min<int64_t>(cfg.rows, g.K - k0)));
  }
  std::vector<KBlock> blocks;
  for (size_t i = 0; i < segs.size();) {
    KBlock b{blocks.empty() ? 0 : blocks.back().k0 + blocks.back().kc, 0, static_cast<int32_t>(i), 0};
    while (i < segs.size() && (b.nseg == 0 || (chunked && b.kc + segs[i] <= kTargetKC))) {
      b.kc += segs[i++];
      ++b.nseg;
    }
    blocks.push_back(b);
  }
  ST_INVARIANT(blocks.empty() || blocks.back().k0 + blocks.back().kc == g.K);
  constexpr int64_t kTile = int64_t{kPanelsM} * kPanelsN * kMR * kNR;

#pragma omp parallel
  {
    float* T = scratch_floats(ScratchSlot::gemm_tile, kTile);
    // The strip's private panels: all of its B (or A) panels, (per_strip, K, width).
    float* own = scratch_floats(ScratchSlot::gemm_strip, per_strip * (strips_n ? kNR : kMR) * g.K);
#pragma omp for schedule(dynamic, 1)
    for (int64_t st = 0; st < strips; ++st) {
      const int64_t own0 = st * per_strip, own1 = std::min(own_panels, own0 + per_strip);
      for (int64_t o = own0; o < own1; ++o) {
        if (strips_n) pack_panel(cfg, B, g.N, g.K, kNR, o * kNR, own + (o - own0) * g.K * kNR);
        else pack_panel(cfg, A, g.M, g.K, kMR, o * kMR, own + (o - own0) * g.K * kMR);
      }
      for (int64_t other = 0; other < tiles_other; ++other) {
        const int64_t p0 = strips_n ? other * kPanelsM : own0, p1 = strips_n ? std::min(pm, p0 + kPanelsM) : own1;
        const int64_t q0 = strips_n ? own0 : other * kPanelsN, q1 = strips_n ? own1 : std::min(pn, q0 + kPanelsN);
        auto a_panel = [&](int64_t p) { return strips_n ? Ap + p * g.K * kMR : own + (p - p0) * g.K * kMR; };
        auto b_panel = [&](int64_t q) { return strips_n ? own + (q - q0) * g.K * kNR : Bp + q * g.K * kNR; };
        const int64_t np = p1 - p0;
        std::memset(T, 0, sizeof(float) * size_t(np * (q1 - q0) * kMR * kNR));  // accumulators start at +0
        for (const KBlock& kb : blocks)
          for (int64_t q = q0; q < q1; ++q)
            for (int64_t p = p0; p < p1; ++p) {
              float* t = T + ((q - q0) * np + (p - p0)) * kMR * kNR;
              fn(segs.data() + kb.seg0, kb.nseg, a_panel(p) + kb.k0 * kMR, b_panel(q) + kb.k0 * kNR, t);
            }
        for (int64_t q = q0; q < q1; ++q)
          for (int64_t p = p0; p < p1; ++p)
            store_tile<kMR>(T + ((q - q0) * np + (p - p0)) * kMR * kNR, std::min<int64_t>(kMR, g.M - p * kMR),
                            std::min<int64_t>(kNR, g.N - q * kNR), p * kMR, q * kNR, C, ldc, out_trans);
      }
    }
  }
}

}  // namespace

void systolic_gemm(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B, float* C,
                   int64_t ldc) {
  systolic_gemm(cfg, g, GemmOperand(A), GemmOperand(B), C, ldc);
}

void systolic_gemm(const ArrayConfig& cfg, const GemmShape& g, const GemmOperand& A, const GemmOperand& B,
                   float* C, int64_t ldc, const std::vector<int32_t>* chunks) {
  ST_INVARIANT(cfg.format != Format::int8);
  ST_INVARIANT(cfg.rows >= 1 && cfg.cols >= 1);
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K <= 0) {
    for (int64_t m = 0; m < g.M; ++m) std::fill(C + m * ldc, C + m * ldc + g.N, 0.0f);
    return;
  }
  // The micro kernel vectorizes over columns. When N is narrow and M is not, compute
  // C^T = B^T A^T instead: each output still sees its own k's in the same order, so the bits are
  // the same, and the wide dimension fills the vector lanes.
  const bool swap = g.N < kNR && g.M > g.N;
  const GemmShape s = swap ? GemmShape{g.N, g.M, g.K} : g;
  const Side a = side_of(A, false), b = side_of(B, true);
  // Height of the micro tile: 12 rows (24 accumulators) unless 8 wastes fewer padded rows.
  const int64_t waste12 = ceil_div(s.M, 12) * 12 - s.M, waste8 = ceil_div(s.M, 8) * 8 - s.M;
  if (chunks) {
    int64_t sum = 0;
    for (int32_t c : *chunks) {
      ST_INVARIANT(c >= 0 && c <= cfg.rows);
      sum += c;
    }
    ST_INVARIANT(sum == g.K);
  }
  if (waste8 < waste12) run_tiles<8>(cfg, s, swap ? b : a, swap ? a : b, C, ldc, swap, chunks);
  else run_tiles<12>(cfg, s, swap ? b : a, swap ? a : b, C, ldc, swap, chunks);
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

float systolic_output(const ArrayConfig& cfg, int64_t K, const std::function<float(int64_t)>& a,
                      const std::function<float(int64_t)>& b, const std::vector<int32_t>* chunks) {
  ST_INVARIANT(cfg.format != Format::int8);
  const bool os = cfg.dataflow == Dataflow::os;
  const int64_t chunk = os ? std::max<int64_t>(K, 1) : cfg.rows;
  std::vector<int32_t> own;
  if (os || !chunks) {
    for (int64_t k0 = 0; k0 < K; k0 += chunk) own.push_back(static_cast<int32_t>(std::min(chunk, K - k0)));
    chunks = &own;
  }
  float out = 0.0f;
  int64_t k0 = 0;
  for (int32_t len : *chunks) {
    float s = 0.0f;
    for (int64_t k = k0; k < k0 + len; ++k) s = pe_mac(s, a(k), b(k), cfg.fused_mac, cfg.subnormals);
    out = os ? s : pe_add(out, s, cfg.subnormals);
    k0 += len;
  }
  ST_INVARIANT(k0 == K);
  return out != out ? bits_f32(kCanonicalNaN) : out;
}

}  // namespace st
