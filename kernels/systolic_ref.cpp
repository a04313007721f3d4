// Cycle-stepped PE-level reference of the systolic array. Plain on purpose: every cycle each PE
// reads the registers its neighbours latched in the previous cycle, computes, and latches its own.
// Operands carry the index they belong to (k for OS, m/n for WS/IS) so that the skew is checked,
// not assumed. Slow; it exists to be trusted.
#include <cstring>
#include <vector>

#include "kernels/systolic.h"
#include "kernels/systolic_mac.h"
#include "src/base/error.h"

namespace st {
namespace {


// A register travelling through the array: a value, the index it belongs to, and a valid bit.
template <class T>
struct Reg {
  T v{};
  int64_t idx = -1;
  bool valid = false;
};

// OS: PE(i,j) owns output (m0+i, n0+j). A[m0+i, k] enters row i from the left at cycle k + i,
// B[k, n0+j] enters column j from the top at cycle k + j; both meet in PE(i,j) at cycle k + i + j.
template <class T, class Mac>
int64_t os_fold(int R, int C, int64_t m0, int64_t n0, const GemmShape& g,
                const std::vector<T>& A, const std::vector<T>& B, std::vector<T>& out, Mac mac) {
  std::vector<Reg<T>> a(R * C), b(R * C), a_next(R * C), b_next(R * C);
  std::vector<T> acc(R * C, T{});  // +0
  const int64_t cycles = g.K + R + C - 2;
  for (int64_t t = 0; t < cycles; ++t) {
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < C; ++j) {
        Reg<T> ain, bin;
        if (j == 0) {
          int64_t k = t - i;
          if (k >= 0 && k < g.K && m0 + i < g.M) ain = {A[(m0 + i) * g.K + k], k, true};
        } else {
          ain = a[i * C + j - 1];
        }
        if (i == 0) {
          int64_t k = t - j;
          if (k >= 0 && k < g.K && n0 + j < g.N) bin = {B[k * g.N + n0 + j], k, true};
        } else {
          bin = b[(i - 1) * C + j];
        }
        if (ain.valid && bin.valid) {
          ST_INVARIANT(ain.idx == bin.idx);
          acc[i * C + j] = mac(acc[i * C + j], ain.v, bin.v);
        }
        a_next[i * C + j] = ain;
        b_next[i * C + j] = bin;
      }
    }
    std::swap(a, a_next);
    std::swap(b, b_next);
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j)
      if (m0 + i < g.M && n0 + j < g.N) out[(m0 + i) * g.N + n0 + j] = acc[i * C + j];
  return cycles;
}

// WS and IS share one structure: a stationary R x C operand is shifted in from the top (R cycles),
// then row i streams S[i][t] from the left (skewed by i) while partial sums run down the columns.
// PE(i,j) adds stationary[i][j] * s into the partial sum of stream index t = cycle - i - j; the
// bottom row hands finished chunk sums to the accumulator memory, which adds them in chunk order.
// stationary(i,j) / streamed(i,t) return false where the PE or slot is empty (past the GEMM edge).
template <class T, class Mac, class Add, class Stat, class Strm, class Emit>
int64_t stationary_fold(int R, int C, int64_t T_len, Stat stationary, Strm streamed, Emit emit,
                        Mac mac, Add add) {
  // Preload: the stationary operand shifts down one row per cycle; after R cycles row i holds the
  // value injected at cycle R-1-i.
  std::vector<Reg<T>> w(R * C), w_next(R * C);
  for (int p = 0; p < R; ++p) {
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) {
        if (i == 0) {
          T v{};
          bool ok = stationary(R - 1 - p, j, v);
          w_next[j] = {v, R - 1 - p, ok};
        } else {
          w_next[i * C + j] = w[(i - 1) * C + j];
        }
      }
    std::swap(w, w_next);
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) ST_INVARIANT(w[i * C + j].idx == i);

  std::vector<Reg<T>> a(R * C), a_next(R * C), ps(R * C), ps_next(R * C);
  const int64_t stream_cycles = T_len + R + C - 2;
  for (int64_t t = 0; t < stream_cycles; ++t) {
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < C; ++j) {
        Reg<T> ain;
        if (j == 0) {
          int64_t m = t - i;
          T v{};
          if (m >= 0 && m < T_len && streamed(i, m, v)) ain = {v, m, true};
        } else {
          ain = a[i * C + j - 1];
        }
        Reg<T> pin;
        if (i == 0) {
          int64_t m = t - j;
          if (m >= 0 && m < T_len) pin = {T{}, m, true};  // a fresh partial sum starts at +0
        } else {
          pin = ps[(i - 1) * C + j];
        }
        Reg<T> pout = pin;
        const Reg<T>& wr = w[i * C + j];
        if (pin.valid && ain.valid && wr.valid) {
          ST_INVARIANT(ain.idx == pin.idx);
          pout.v = mac(pin.v, ain.v, wr.v);
        }
        // An empty PE (no stationary value, or no streamed value) passes the sum through untouched.
        a_next[i * C + j] = ain;
        ps_next[i * C + j] = pout;
      }
    }
    std::swap(a, a_next);
    std::swap(ps, ps_next);
    // Bottom row: the partial sums latched this cycle leave the array.
    for (int j = 0; j < C; ++j) {
      const Reg<T>& out = ps[(R - 1) * C + j];
      if (out.valid && t - (R - 1) - j == out.idx) emit(out.idx, j, out.v);
    }
  }
  (void)add;
  return R + stream_cycles;
}

template <class T, class Mac, class Add>
int64_t run_reference(const ArrayConfig& cfg, const GemmShape& g, const std::vector<T>& A,
                      const std::vector<T>& B, std::vector<T>& out, Mac mac, Add add) {
  const int R = cfg.rows, C = cfg.cols;
  int64_t cycles = 0;
  if (cfg.dataflow == Dataflow::os) {
    for (int64_t m0 = 0; m0 < g.M; m0 += R)
      for (int64_t n0 = 0; n0 < g.N; n0 += C) cycles += os_fold<T>(R, C, m0, n0, g, A, B, out, mac);
    return cycles;
  }
  // WS / IS: the accumulator memory starts at +0 and adds each chunk's sum in chunk order.
  std::fill(out.begin(), out.end(), T{});
  for (int64_t k0 = 0; k0 < g.K; k0 += R) {
    if (cfg.dataflow == Dataflow::ws) {
      // Stationary B[k0+i, n0+j]; stream A[m, k0+i] over m; output (m, n0+j).
      for (int64_t n0 = 0; n0 < g.N; n0 += C) {
        auto stat = [&](int i, int j, T& v) {
          if (k0 + i >= g.K || n0 + j >= g.N) return false;
          v = B[(k0 + i) * g.N + n0 + j];
          return true;
        };
        auto strm = [&](int i, int64_t m, T& v) {
          if (k0 + i >= g.K) return false;
          v = A[m * g.K + k0 + i];
          return true;
        };
        auto emit = [&](int64_t m, int j, T v) {
          if (n0 + j < g.N) { T& o = out[m * g.N + n0 + j]; o = add(o, v); }
        };
        cycles += stationary_fold<T>(R, C, g.M, stat, strm, emit, mac, add);
      }
    } else {
      // IS: stationary A[m0+j, k0+i]; stream B[k0+i, n] over n; output (m0+j, n).
      for (int64_t m0 = 0; m0 < g.M; m0 += C) {
        auto stat = [&](int i, int j, T& v) {
          if (k0 + i >= g.K || m0 + j >= g.M) return false;
          v = A[(m0 + j) * g.K + k0 + i];
          return true;
        };
        auto strm = [&](int i, int64_t n, T& v) {
          if (k0 + i >= g.K) return false;
          v = B[(k0 + i) * g.N + n];
          return true;
        };
        auto emit = [&](int64_t n, int j, T v) {
          if (m0 + j < g.M) { T& o = out[(m0 + j) * g.N + n]; o = add(o, v); }
        };
        cycles += stationary_fold<T>(R, C, g.N, stat, strm, emit, mac, add);
      }
    }
  }
  return cycles;
}

}  // namespace

int64_t systolic_gemm_reference(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B,
                                float* C, int64_t ldc) {
  ST_INVARIANT(cfg.format != Format::int8);
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return 0;
  // Operands enter the array in its input format.
  std::vector<float> a(g.M * g.K), b(g.K * g.N), out(g.M * g.N);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t k = 0; k < g.K; ++k) a[m * g.K + k] = round_to(cfg.format, A.at(m, k), cfg.subnormals);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t n = 0; n < g.N; ++n) b[k * g.N + n] = round_to(cfg.format, B.at(k, n), cfg.subnormals);
  const bool fused = cfg.fused_mac || cfg.format != Format::fp32;
  const Subnormals sub = cfg.subnormals;
  auto mac = [fused, sub](float acc, float x, float y) { return pe_mac(acc, x, y, fused, sub); };
  auto add = [sub](float acc, float s) { return pe_add(acc, s, sub); };
  int64_t cycles = run_reference<float>(cfg, g, a, b, out, mac, add);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < g.N; ++n) C[m * ldc + n] = canonicalize_nan(out[m * g.N + n]);
  return cycles;
}

int64_t systolic_gemm_reference_i8(const ArrayConfig& cfg, const GemmShape& g, const int8_t* A,
                                   const int8_t* B, int32_t* C) {
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return 0;
  std::vector<int32_t> a(A, A + g.M * g.K), b(B, B + g.K * g.N), out(g.M * g.N);
  // Two's-complement adder: wraps modulo 2^32 (computed in uint32 to stay defined in C++).
  auto mac = [](int32_t acc, int32_t x, int32_t y) {
    return static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(x * y));
  };
  auto add = [](int32_t acc, int32_t s) {
    return static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(s));
  };
  int64_t cycles = run_reference<int32_t>(cfg, g, a, b, out, mac, add);
  std::memcpy(C, out.data(), out.size() * sizeof(int32_t));
  return cycles;
}

}  // namespace st
