// Cycle-stepped PE-level reference of the systolic array. Plain on purpose: every cycle each PE
// reads the registers its neighbours latched in the previous cycle, computes, and latches its own.
// Operands carry the index they belong to (k for OS, m/n for WS/IS) so that the skew is checked,
// not assumed. Slow; it exists to be trusted.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/systolic.h"
#include "kernels/systolic_mac.h"
#include "src/base/error.h"

namespace st {
namespace {

// A register travelling through the array. `slot`: the array's fixed schedule drives this register
// (the control sequence is the same for every fold, whatever part of the array the fold uses);
// `valid`: it also carries data of the GEMM (false past the GEMM's edge, where the slot is idle).
// `idx` is the index the operand belongs to (k for OS, the stream index m/n for WS/IS), so the skew
// is checked, not assumed.
template <class T>
struct Reg {
  T v{};
  int64_t idx = -1;
  bool slot = false;
  bool valid = false;
};

// A fold runs until every register its schedule drove has left the array; the cycles returned are
// the cycles observed, never a formula. The step bound only turns a schedule that never drains (a
// bug) into an invariant failure instead of a hang.
constexpr int64_t kStepLimitPerElement = 4;

// OS: PE(i,j) owns output (m0+i, n0+j). Row i of A enters from the left at cycle k + i, column j of
// B from the top at cycle k + j (k = 0..K-1), for every row / column of the array; they meet in
// PE(i,j) at cycle k + i + j. A register leaves the array after the last PE of its row (column) has
// latched it. Every valid PE must do exactly K MACs, each output is written once.
template <class T, class Mac>
int64_t os_fold(int R, int C, int64_t m0, int64_t n0, const GemmShape& g,
                const std::vector<T>& A, const std::vector<T>& B, std::vector<T>& out,
                std::vector<uint8_t>& written, Mac mac) {
  std::vector<Reg<T>> a(R * C), b(R * C), a_next(R * C), b_next(R * C);
  std::vector<T> acc(R * C, T{});  // +0
  std::vector<int64_t> macs(R * C, 0);
  const int64_t limit = kStepLimitPerElement * (g.K + R + C + 2);
  // The last cycle at which the schedule injects anything (row R-1 / column C-1 get k = K-1 last).
  const int64_t last_injection = g.K - 1 + std::max(R, C) - 1;
  int64_t t = 0;
  for (bool busy = true; busy;) {
    ST_INVARIANT(t < limit);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < C; ++j) {
        Reg<T> ain, bin;
        if (j == 0) {
          const int64_t k = t - i;
          if (k >= 0 && k < g.K) {
            ain = {T{}, k, true, m0 + i < g.M};
            if (ain.valid) ain.v = A[(m0 + i) * g.K + k];
          }
        } else {
          ain = a[i * C + j - 1];
        }
        if (i == 0) {
          const int64_t k = t - j;
          if (k >= 0 && k < g.K) {
            bin = {T{}, k, true, n0 + j < g.N};
            if (bin.valid) bin.v = B[k * g.N + n0 + j];
          }
        } else {
          bin = b[(i - 1) * C + j];
        }
        ST_INVARIANT(ain.slot == bin.slot);  // the skews meet: both streams reach PE(i,j) together
        if (ain.slot) ST_INVARIANT(ain.idx == bin.idx);
        if (ain.valid && bin.valid) {
          acc[i * C + j] = mac(acc[i * C + j], ain.v, bin.v);
          ++macs[i * C + j];
        }
        // The last column / row consumes the register: it leaves the array after this cycle.
        a_next[i * C + j] = j == C - 1 ? Reg<T>{} : ain;
        b_next[i * C + j] = i == R - 1 ? Reg<T>{} : bin;
      }
    }
    std::swap(a, a_next);
    std::swap(b, b_next);
    ++t;
    // Registers still inside, or slots not yet injected, keep the fold running.
    busy = t <= last_injection;
    for (int e = 0; e < R * C && !busy; ++e) busy = a[e].slot || b[e].slot;
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) {
      if (m0 + i >= g.M || n0 + j >= g.N) {
        ST_INVARIANT(macs[i * C + j] == 0);
        continue;
      }
      ST_INVARIANT(macs[i * C + j] == g.K);
      const int64_t o = (m0 + i) * g.N + n0 + j;
      ST_INVARIANT(written[o] == 0);
      written[o] = 1;
      out[o] = acc[i * C + j];
    }
  return t;
}

// WS and IS share one structure: a stationary R x C operand is shifted in from the top (one row per
// cycle, until every PE holds the value of its own row), then row i streams S[i][t] from the left
// (skewed by i) while partial sums run down the columns. PE(i,j) adds stationary[i][j] * s into the
// partial sum of stream index t = cycle - i - j; the bottom row hands finished chunk sums to the
// accumulator memory, which adds them in chunk order. Every column of the array carries partial sums
// (the schedule is fixed); emit() receives only those of the GEMM's columns, each exactly once.
// stationary(i,j) / streamed(i,t) return false where the PE or slot is empty (past the GEMM edge).
template <class T, class Mac, class Add, class Stat, class Strm, class Emit>
int64_t stationary_fold(int R, int C, int64_t T_len, Stat stationary, Strm streamed, Emit emit,
                        Mac mac, Add add) {
  // Preload: row 0 receives the value for row R-1 first; shifting stops when every row holds its own.
  std::vector<Reg<T>> w(R * C), w_next(R * C);
  int64_t cycles = 0;
  for (int64_t injected = 0;; ++injected) {
    bool loaded = true;
    for (int i = 0; i < R && loaded; ++i) loaded = w[i * C].slot && w[i * C].idx == i;
    if (loaded) break;
    ST_INVARIANT(injected < R);  // more shifts than rows: the preload schedule is broken
    for (int i = 0; i < R; ++i)
      for (int j = 0; j < C; ++j) {
        if (i == 0) {
          const int row = R - 1 - static_cast<int>(injected);
          T v{};
          const bool ok = stationary(row, j, v);
          w_next[j] = {v, row, true, ok};
        } else {
          w_next[i * C + j] = w[(i - 1) * C + j];
        }
      }
    std::swap(w, w_next);
    ++cycles;
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) ST_INVARIANT(w[i * C + j].slot && w[i * C + j].idx == i);

  std::vector<Reg<T>> a(R * C), a_next(R * C), ps(R * C), ps_next(R * C);
  std::vector<int64_t> left(C, 0);  // partial sums that left each column's bottom
  const int64_t limit = kStepLimitPerElement * (T_len + R + C + 2);
  for (int64_t t = 0;; ++t) {
    ST_INVARIANT(t < limit);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < C; ++j) {
        Reg<T> ain;
        if (j == 0) {
          const int64_t m = t - i;
          if (m >= 0 && m < T_len) {
            T v{};
            const bool ok = streamed(i, m, v);
            ain = {v, m, true, ok};
          }
        } else {
          ain = a[i * C + j - 1];
        }
        Reg<T> pin;
        if (i == 0) {
          const int64_t m = t - j;
          if (m >= 0 && m < T_len) pin = {T{}, m, true, true};  // a fresh partial sum starts at +0
        } else {
          pin = ps[(i - 1) * C + j];
        }
        ST_INVARIANT(ain.slot == pin.slot);
        Reg<T> pout = pin;
        const Reg<T>& wr = w[i * C + j];
        if (pin.slot) {
          ST_INVARIANT(ain.idx == pin.idx);
          // An empty PE (no stationary value, or no streamed value) passes the sum through untouched.
          if (ain.valid && wr.valid) pout.v = mac(pin.v, ain.v, wr.v);
        }
        a_next[i * C + j] = j == C - 1 ? Reg<T>{} : ain;
        ps_next[i * C + j] = pout;
      }
    }
    std::swap(a, a_next);
    std::swap(ps, ps_next);
    ++cycles;
    // Bottom row: the partial sums latched this cycle leave the array.
    for (int j = 0; j < C; ++j) {
      Reg<T>& out = ps[(R - 1) * C + j];
      if (!out.slot) continue;
      ST_INVARIANT(out.idx == left[j]);  // in stream order, none skipped, none twice
      ++left[j];
      emit(out.idx, j, out.v);
      out = Reg<T>{};
    }
    bool busy = false;
    for (int e = 0; e < R * C && !busy; ++e) busy = a[e].slot || ps[e].slot;
    bool drained = true;
    for (int j = 0; j < C; ++j) drained = drained && left[j] == T_len;
    if (!busy && drained) break;
  }
  (void)add;
  return cycles;
}

template <class T, class Mac, class Add>
int64_t run_reference(const ArrayConfig& cfg, const GemmShape& g, const std::vector<T>& A,
                      const std::vector<T>& B, std::vector<T>& out, Mac mac, Add add,
                      const std::vector<int32_t>* chunk_list = nullptr) {
  const int R = cfg.rows, C = cfg.cols;
  // Several arrays: column fold j (the fold starting at column c0 = j * C) runs on array j mod count;
  // each array steps its folds one after another, all arrays at once (the result: the busiest).
  std::vector<int64_t> busy(size_t(std::max(1, cfg.count)), 0);
  auto array_of = [&](int64_t c0) { return size_t((c0 / C) % int64_t(busy.size())); };
  if (cfg.dataflow == Dataflow::os) {
    std::vector<uint8_t> written(out.size(), 0);
    for (int64_t m0 = 0; m0 < g.M; m0 += R)
      for (int64_t n0 = 0; n0 < g.N; n0 += C) busy[array_of(n0)] += os_fold<T>(R, C, m0, n0, g, A, B, out, written, mac);
    for (uint8_t w : written) ST_INVARIANT(w == 1);  // every output emitted exactly once
    return *std::max_element(busy.begin(), busy.end());
  }
  // WS / IS: the accumulator memory starts at +0 and adds each chunk's sum in chunk order.
  std::fill(out.begin(), out.end(), T{});
  std::vector<int32_t> emitted(out.size(), 0);  // chunk sums received per output
  // The row folds: the caller's chunks of K (channel-tap: one per tap and channel chunk), or R k's.
  std::vector<int32_t> lens;
  if (chunk_list) {
    lens = *chunk_list;
  } else {
    for (int64_t k0 = 0; k0 < g.K; k0 += R) lens.push_back(static_cast<int32_t>(std::min<int64_t>(R, g.K - k0)));
  }
  int64_t k_end = 0;
  for (int32_t len : lens) {
    ST_INVARIANT(len >= 0 && len <= R);
    k_end += len;
  }
  ST_INVARIANT(k_end == g.K);
  int32_t chunks = 0;
  int64_t k0 = 0;
  for (int32_t len : lens) {
    ++chunks;
    const int64_t k1 = k0 + len;  // this fold's k's: [k0, k1), loaded into rows 0 .. len-1
    if (cfg.dataflow == Dataflow::ws) {
      // Stationary B[k0+i, n0+j]; stream A[m, k0+i] over m; output (m, n0+j).
      for (int64_t n0 = 0; n0 < g.N; n0 += C) {
        auto stat = [&](int i, int j, T& v) {
          if (k0 + i >= k1 || n0 + j >= g.N) return false;
          v = B[(k0 + i) * g.N + n0 + j];
          return true;
        };
        auto strm = [&](int i, int64_t m, T& v) {
          if (k0 + i >= k1) return false;
          v = A[m * g.K + k0 + i];
          return true;
        };
        auto emit = [&](int64_t m, int j, T v) {
          if (n0 + j < g.N) {
            const int64_t o = m * g.N + n0 + j;
            out[o] = add(out[o], v);
            ST_INVARIANT(++emitted[o] == chunks);  // once per chunk, in chunk order
          }
        };
        busy[array_of(n0)] += stationary_fold<T>(R, C, g.M, stat, strm, emit, mac, add);
      }
    } else {
      // IS: stationary A[m0+j, k0+i]; stream B[k0+i, n] over n; output (m0+j, n).
      for (int64_t m0 = 0; m0 < g.M; m0 += C) {
        auto stat = [&](int i, int j, T& v) {
          if (k0 + i >= k1 || m0 + j >= g.M) return false;
          v = A[(m0 + j) * g.K + k0 + i];
          return true;
        };
        auto strm = [&](int i, int64_t n, T& v) {
          if (k0 + i >= k1) return false;
          v = B[(k0 + i) * g.N + n];
          return true;
        };
        auto emit = [&](int64_t n, int j, T v) {
          if (m0 + j < g.M) {
            const int64_t o = (m0 + j) * g.N + n;
            out[o] = add(out[o], v);
            ST_INVARIANT(++emitted[o] == chunks);  // once per chunk, in chunk order
          }
        };
        busy[array_of(m0)] += stationary_fold<T>(R, C, g.N, stat, strm, emit, mac, add);
      }
    }
    k0 = k1;
  }
  for (int32_t e : emitted) ST_INVARIANT(e == chunks);  // every output received every chunk once
  return *std::max_element(busy.begin(), busy.end());
}

}  // namespace

int64_t systolic_gemm_reference(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B,
                                float* C, int64_t ldc, const std::vector<int32_t>* chunks) {
  ST_INVARIANT(cfg.format != Format::int8);
  if (g.M <= 0 || g.N <= 0 || g.K <= 0) return 0;
  // Operands enter the array in its input format.
  std::vector<float> a(g.M * g.K), b(g.K * g.N), out(g.M * g.N);
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t k = 0; k < g.K; ++k) a[m * g.K + k] = round_to(cfg.format, A.at(m, k), cfg.subnormals);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t n = 0; n < g.N; ++n) b[k * g.N + n] = round_to(cfg.format, B.at(k, n), cfg.subnormals);
  const bool fused = cfg.fused_mac;  // every float format (an fp16 product is exact either way)
  const Subnormals sub = cfg.subnormals;
  auto mac = [fused, sub](float acc, float x, float y) { return pe_mac(acc, x, y, fused, sub); };
  auto add = [sub](float acc, float s) { return pe_add(acc, s, sub); };
  int64_t cycles = run_reference<float>(cfg, g, a, b, out, mac, add, chunks);
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
