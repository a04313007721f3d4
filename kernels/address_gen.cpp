#include "kernels/address_gen.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "src/base/error.h"

namespace st {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kMaxTaps = 16;  // per axis, for the vector path's per-tap registers

// The address lane 0 would read: `off` may be negative when the first lanes are masked off (they are
// never read), so it is formed as an integer, not by pointer arithmetic outside the tensor.
inline const float* lane0(const float* backing, int64_t off) {
  return reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(backing) + static_cast<uintptr_t>(off * 4));
}

// The reduction row's (a, r, t), advanced one row at a time in (a, r, t) order, or tap-major in
// (r, t, a) order with Ap channels per tap (a >= the real channels: a padding row).
struct TapCursor {
  int64_t R, S, Ap;
  bool tap_major;
  int64_t a, r, t;
  TapCursor(int64_t R_, int64_t S_, int64_t Ap_, bool tm, int64_t row)
      : R(R_), S(S_), Ap(Ap_), tap_major(tm),
        a(tm ? row % Ap_ : row / (R_ * S_)), r(tm ? row / Ap_ / S_ : row / S_ % R_), t(tm ? row / Ap_ % S_ : row % S_) {}
  void next() {
    if (tap_major) {
      if (++a < Ap) return;
      a = 0;
      if (++t == S) {
        t = 0;
        ++r;
      }
      return;
    }
    if (++t == S) {
      t = 0;
      if (++r == R) {
        r = 0;
        ++a;
      }
    }
  }
};

}  // namespace

AddressGenerator::AddressGenerator(int64_t N, int64_t A, int64_t R, int64_t S, int64_t out_h, int64_t out_w,
                                   int64_t n_stride, int64_t a_stride, int64_t backing_elems, int64_t pitch)
    : N_(N), A_(A), R_(R), S_(S), out_h_(out_h), out_w_(out_w), n_stride_(n_stride), a_stride_(a_stride),
      backing_elems_(backing_elems), pitch_(pitch), a_pad_(A),
      narrow_(backing_elems <= std::numeric_limits<int32_t>::max() && R <= kMaxTaps && S <= kMaxTaps),
      htab_(static_cast<size_t>(R * out_h), -1), wtab_(static_cast<size_t>(S * out_w), -1) {}

AddressGenerator AddressGenerator::im2col(const ConvDesc& d, int64_t out_h, int64_t out_w, int64_t stride_h,
                                          int64_t stride_w) {
  AddressGenerator g(d.N, d.C, d.R, d.S, out_h, out_w, d.C * d.H * d.W, d.H * d.W, d.src_elems(), d.W);
  for (int64_t r = 0; r < d.R; ++r)
    for (int64_t y = 0; y < out_h; ++y) {
      const int64_t h = stride_h * y + r - d.pt;
      if (h >= 0 && h < d.H) g.htab_[r * out_h + y] = h * d.W;
    }
  for (int64_t t = 0; t < d.S; ++t)
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t w = stride_w * x + t - d.pl;
      if (w >= 0 && w < d.W) g.wtab_[t * out_w + x] = w;
    }
  g.set_columns(stride_w == 1 ? Columns::unit : stride_w == 2 ? Columns::step2 : Columns::gather,
                [&](int64_t t) { return t - d.pl; });
  return g;
}

AddressGenerator AddressGenerator::dx_bp(const ConvDesc& d) {
  const int64_t P = d.P(), Q = d.Q();
  AddressGenerator g(d.N, d.K, d.R, d.S, d.H, d.W, d.K * P * Q, P * Q, d.dst_elems(), Q);
  // Rotated tap r' = R-1-rbar: output row h receives dY row u / sh of the original tap rbar when
  // u = h + pt - rbar is a non-negative multiple of the stride inside dY (else an inserted zero or
  // padding).
  for (int64_t rp = 0; rp < d.R; ++rp)
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t u = h + d.pt - (d.R - 1 - rp);
      if (u >= 0 && u % d.sh == 0 && u / d.sh < P) g.htab_[rp * d.H + h] = u / d.sh * Q;
    }
  for (int64_t tp = 0; tp < d.S; ++tp)
    for (int64_t w = 0; w < d.W; ++w) {
      const int64_t v = w + d.pl - (d.S - 1 - tp);
      if (v >= 0 && v % d.sw == 0 && v / d.sw < Q) g.wtab_[tp * d.W + w] = v / d.sw;
    }
  g.set_columns(d.sw == 1 ? Columns::unit : Columns::expand, [&](int64_t tp) { return d.pl - (d.S - 1 - tp); });
  return g;
}

AddressGenerator AddressGenerator::dx_explicit(const ConvDesc& d) {
  const int64_t Hu = d.Hu(), Wu = d.Wu();
  AddressGenerator g(d.N, d.K, d.R, d.S, d.H, d.W, d.K * Hu * Wu, Hu * Wu, d.N * d.K * Hu * Wu, Wu);
  for (int64_t rp = 0; rp < d.R; ++rp)
    for (int64_t h = 0; h < d.H; ++h) g.htab_[rp * d.H + h] = (h + rp) * Wu;
  for (int64_t tp = 0; tp < d.S; ++tp)
    for (int64_t w = 0; w < d.W; ++w) g.wtab_[tp * d.W + w] = w + tp;
  g.set_columns(Columns::unit, [&](int64_t tp) { return tp; });
  return g;
}

AddressGenerator AddressGenerator::dx_phase(const ConvDesc& d, const std::vector<int64_t>& taps_h,
                                            const std::vector<int64_t>& taps_w, const std::vector<int64_t>& rows_h,
                                            const std::vector<int64_t>& rows_w) {
  const int64_t P = d.P(), Q = d.Q();
  const int64_t nth = int64_t(taps_h.size()), ntw = int64_t(taps_w.size());
  const int64_t nh = int64_t(rows_h.size()), nw = int64_t(rows_w.size());
  AddressGenerator g(d.N, d.K, nth, ntw, nh, nw, d.K * P * Q, P * Q, d.dst_elems(), Q);
  // Within a phase the divisions are exact; out of range means padding.
  for (int64_t it = 0; it < nth; ++it)
    for (int64_t ih = 0; ih < nh; ++ih) {
      const int64_t u = rows_h[ih] + d.pt - taps_h[it];
      if (u >= 0 && u / d.sh < P) g.htab_[it * nh + ih] = u / d.sh * Q;
    }
  for (int64_t jt = 0; jt < ntw; ++jt)
    for (int64_t iw = 0; iw < nw; ++iw) {
      const int64_t v = rows_w[iw] + d.pl - taps_w[jt];
      if (v >= 0 && v / d.sw < Q) g.wtab_[jt * nw + iw] = v / d.sw;
    }
  // Consecutive phase columns are sw apart in dX and 1 apart in dY.
  if (nw > 0) g.set_columns(Columns::unit, [&](int64_t jt) { return (rows_w[0] + d.pl - taps_w[jt]) / d.sw; });
  return g;
}

AddressGenerator AddressGenerator::dilated_dy(const ConvDesc& d) {
  const int64_t P = d.P(), Q = d.Q(), Pd = d.Pd(), Qd = d.Qd();
  AddressGenerator g(d.N, d.K, 1, 1, Pd, Qd, d.K * P * Q, P * Q, d.dst_elems(), Q);
  for (int64_t y = 0; y < Pd; ++y)
    if (y % d.sh == 0) g.htab_[size_t(y)] = y / d.sh * Q;
  for (int64_t x = 0; x < Qd; ++x)
    if (x % d.sw == 0) g.wtab_[size_t(x)] = x / d.sw;
  g.set_columns(d.sw == 1 ? Columns::unit : Columns::gather, [](int64_t) { return 0; });
  return g;
}

AddressGenerator GeneratorRecipe::make() const {
  AddressGenerator g = [&] {
    switch (kind) {
      case Kind::im2col: return AddressGenerator::im2col(conv, out_h, out_w, stride_h, stride_w);
      case Kind::dx_bp: return AddressGenerator::dx_bp(conv);
      case Kind::dx_explicit: return AddressGenerator::dx_explicit(conv);
      case Kind::dx_phase: return AddressGenerator::dx_phase(conv, taps_h, taps_w, rows_h, rows_w);
      case Kind::dilated_dy: return AddressGenerator::dilated_dy(conv);
    }
    ST_INVARIANT(false);
    return AddressGenerator::dx_bp(conv);
  }();
  if (tap_major) g.set_tap_major(channels_padded > 0 ? channels_padded : g.channels());
  return g;
}

AddressGenerator& AddressGenerator::set_tap_major(int64_t a_pad) {
  ST_INVARIANT(a_pad >= A_);
  tap_major_ = true;
  a_pad_ = a_pad;
  return *this;
}

bool AddressGenerator::row_coords(int64_t row, int64_t& a, int64_t& r, int64_t& t) const {
  const TapCursor c(R_, S_, a_pad_, tap_major_, row);
  a = c.a, r = c.r, t = c.t;
  return a < A_;
}

void AddressGenerator::set_columns(Columns mode, const std::function<int64_t(int64_t)>& shift) {
  columns_ = mode;
  if (mode == Columns::expand) {
    // Valid columns of a line must read consecutive addresses, in column order.
    for (int64_t t = 0; t < S_; ++t) {
      int64_t prev = -1;
      for (int64_t x = 0; x < out_w_; ++x) {
        const int64_t w = wtab_[t * out_w_ + x];
        if (w < 0) continue;
        ST_INVARIANT(prev < 0 || w == prev + 1);
        prev = w;
      }
    }
    return;
  }
  if (mode != Columns::unit && mode != Columns::step2) return;
  const int64_t step = mode == Columns::unit ? 1 : 2;
  w_shift_.resize(static_cast<size_t>(S_));
  for (int64_t t = 0; t < S_; ++t) {
    w_shift_[t] = shift(t);
    for (int64_t x = 0; x < out_w_; ++x) {
      const int64_t w = wtab_[t * out_w_ + x];
      ST_INVARIANT(w < 0 || w == step * x + w_shift_[t]);
    }
  }
}

int64_t AddressGenerator::index(int64_t row, int64_t col) const {
  int64_t a, r, t;
  if (!row_coords(row, a, r, t)) return -1;  // a padding row of the channel-tap mapping
  const int64_t n = col / (out_h_ * out_w_), y = col / out_w_ % out_h_, x = col % out_w_;
  const int64_t h = htab_[r * out_h_ + y], w = wtab_[t * out_w_ + x];
  if (h < 0 || w < 0) return -1;
  return n * n_stride_ + a * a_stride_ + h + w;
}

void AddressGenerator::fill_scalar(const float* backing, int64_t row0, int64_t row1, int64_t col0, int64_t col1,
                                   float* dst, int64_t ld) const {
  for (int64_t row = row0; row < row1; ++row)
    for (int64_t col = col0; col < col1; ++col) {
      const int64_t i = index(row, col);
      dst[(row - row0) * ld + (col - col0)] = i < 0 ? 0.0f : backing[i];
    }
}

// One 16-column chunk starting at column c0 without gathers: the lanes of one output line (n, y)
// read addresses with a known pattern (Columns), so each line's lanes are one or two loads per row.
void AddressGenerator::fill_lines(const float* backing, int64_t row0, int64_t row1, int64_t c0, int cnt,
                                  float* out, int64_t ld) const {
  constexpr int kMaxLines = 4;
  int lines = 0;
  __mmask16 lmask[kMaxLines];
  int64_t lbase[kMaxLines];                  // n * n_stride (+ step * (x_first - first lane))
  int64_t lh[kMaxLines][kMaxTaps];           // htab[r][y] of the line, -1: a zero row
  alignas(64) int32_t woff[kMaxTaps][kLanes];
  for (int j = 0; j < cnt;) {
    const int64_t col = c0 + j, line = col / out_w_, x = col % out_w_;
    const int len = static_cast<int>(std::min<int64_t>(cnt - j, out_w_ - x));
    const int64_t n = line / out_h_, y = line % out_h_;
    lmask[lines] = static_cast<__mmask16>(((1u << len) - 1u) << j);
    const int64_t step = columns_ == Columns::unit ? 1 : columns_ == Columns::step2 ? 2 : 0;
    lbase[lines] = n * n_stride_ + step * (x - j);
    for (int64_t r = 0; r < R_; ++r) lh[lines][r] = htab_[r * out_h_ + y];
    for (int k = 0; k < len; ++k)
      for (int64_t t = 0; t < S_; ++t) woff[t][j + k] = static_cast<int32_t>(wtab_[t * out_w_ + x + k]);
    ++lines;
    j += len;
  }
  __mmask16 wm[kMaxTaps];
  const __mmask16 lanes = static_cast<__mmask16>((1u << cnt) - 1u);
  for (int64_t t = 0; t < S_; ++t)
    wm[t] = _mm512_mask_cmpge_epi32_mask(lanes, _mm512_load_si512(woff[t]), _mm512_setzero_si512());
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  TapCursor c(R_, S_, a_pad_, tap_major_, row0);
  for (int64_t row = row0; row < row1; ++row, c.next()) {
    __m512 v = _mm512_setzero_ps();
    for (int l = 0; l < lines && c.a < A_; ++l) {
      const __mmask16 m = lmask[l] & wm[c.t];
      if (lh[l][c.r] < 0 || !m) continue;
      const int64_t base = lbase[l] + c.a * a_stride_ + lh[l][c.r];
      if (columns_ == Columns::unit) {
        // Lane j reads backing[base + w_shift + j]; masked-off lanes are not read.
        v = _mm512_mask_loadu_ps(v, m, lane0(backing, base + w_shift_[c.t]));
      } else if (columns_ == Columns::step2) {
        // Lane j reads backing[base + w_shift + 2j]: the even elements of 32 consecutive floats,
        // loaded only where a lane needs them.
        const float* p = lane0(backing, base + w_shift_[c.t]);
        const uint32_t m32 = _pdep_u32(m, 0x55555555u);
        const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m32 & 0xffffu), p);
        const __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m32 >> 16), p + 16);
        v = _mm512_mask_mov_ps(v, m, _mm512_permutex2var_ps(lo, even, hi));
      } else {
        // The valid lanes read consecutive addresses from the first valid lane's.
        const int first = __builtin_ctz(m);
        v = _mm512_mask_expandloadu_ps(v, m, backing + base + woff[c.t][first]);
      }
    }
    _mm512_mask_storeu_ps(out + (row - row0) * ld, lanes, v);
  }
}

void AddressGenerator::fill(const float* backing, int64_t row0, int64_t row1, int64_t col0, int64_t col1,
                            float* dst, int64_t ld) const {
  ST_INVARIANT(row0 >= 0 && row1 <= rows() && col0 >= 0 && col1 <= cols());
  if (!narrow_) {
    fill_scalar(backing, row0, row1, col0, col1, dst, ld);
    return;
  }
  const int64_t plane = out_h_ * out_w_;
  for (int64_t c0 = col0; c0 < col1; c0 += kLanes) {
    const int cnt = static_cast<int>(std::min<int64_t>(kLanes, col1 - c0));
    if (columns_ != Columns::gather && (out_w_ >= kLanes / 2 || cnt <= out_w_)) {  // <= 3 lines a chunk
      fill_lines(backing, row0, row1, c0, cnt, dst + (c0 - col0), ld);
      continue;
    }
    const __mmask16 lanes = static_cast<__mmask16>((1u << cnt) - 1u);
    // Per lane: the image's base offset and the per-tap row / column offsets (-1: zero).
    alignas(64) int32_t base[kLanes] = {};
    alignas(64) int32_t hoff[kMaxTaps][kLanes], woff[kMaxTaps][kLanes];
    for (int j = 0; j < kLanes; ++j) {
      const int64_t col = c0 + std::min(j, cnt - 1);  // lanes past cnt repeat the last (masked off)
      const int64_t n = col / plane, y = col / out_w_ % out_h_, x = col % out_w_;
      base[j] = static_cast<int32_t>(n * n_stride_);
      for (int64_t r = 0; r < R_; ++r) hoff[r][j] = static_cast<int32_t>(htab_[r * out_h_ + y]);
      for (int64_t t = 0; t < S_; ++t) woff[t][j] = static_cast<int32_t>(wtab_[t * out_w_ + x]);
    }
    __m512i hv[kMaxTaps], wv[kMaxTaps];
    __mmask16 hm[kMaxTaps], wm[kMaxTaps];
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t r = 0; r < R_; ++r) {
      hv[r] = _mm512_load_si512(hoff[r]);
      hm[r] = _mm512_mask_cmpge_epi32_mask(lanes, hv[r], zero);
    }
    for (int64_t t = 0; t < S_; ++t) {
      wv[t] = _mm512_load_si512(woff[t]);
      wm[t] = _mm512_cmpge_epi32_mask(wv[t], zero);
    }
    const __m512i bv = _mm512_load_si512(base);
    float* out = dst + (c0 - col0);
    TapCursor c(R_, S_, a_pad_, tap_major_, row0);
    for (int64_t row = row0; row < row1; ++row, c.next()) {
      if (c.a >= A_) {  // a padding row of the channel-tap mapping
        _mm512_mask_storeu_ps(out + (row - row0) * ld, lanes, _mm512_setzero_ps());
        continue;
      }
      const __m512i idx = _mm512_add_epi32(_mm512_add_epi32(bv, _mm512_set1_epi32(static_cast<int32_t>(c.a * a_stride_))),
                                           _mm512_add_epi32(hv[c.r], wv[c.t]));
      const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), hm[c.r] & wm[c.t], idx, backing, 4);
      _mm512_mask_storeu_ps(out + (row - row0) * ld, lanes, v);
    }
  }
}

}  // namespace st
