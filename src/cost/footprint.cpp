// See footprint.h.
#include "src/cost/footprint.h"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "src/base/error.h"

namespace st {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// [lo, hi) of a linear index over rows of `width`: at most three rectangles (row range x column
// range): the partial first row, the whole rows between, the partial last row.
struct Rect {
  int64_t r0, r1, c0, c1;
};
int rects(int64_t lo, int64_t hi, int64_t width, Rect out[3]) {
  const int64_t a = lo / width, b = (hi - 1) / width;
  if (a == b) {
    out[0] = {a, a + 1, lo - a * width, hi - a * width};
    return 1;
  }
  const bool first_whole = lo % width == 0, last_whole = hi % width == 0;
  const int64_t mid0 = first_whole ? a : a + 1, mid1 = last_whole ? b + 1 : b;
  int n = 0;
  if (!first_whole) out[n++] = {a, a + 1, lo - a * width, width};
  if (mid1 > mid0) out[n++] = {mid0, mid1, 0, width};
  if (!last_whole) out[n++] = {b, b + 1, 0, hi - b * width};
  return n;
}

// [lo, hi) of a linear index over blocks of `period` (channels of R S taps, images of out_h out_w
// pixels): runs of (count, [lo', hi') inside one block).
struct Run {
  int64_t count, lo, hi;
};
int runs(int64_t lo, int64_t hi, int64_t period, Run out[3]) {
  const int64_t a = lo / period, b = (hi - 1) / period;
  if (a == b) {
    out[0] = {1, lo - a * period, hi - a * period};
    return 1;
  }
  const bool first_whole = lo % period == 0, last_whole = hi % period == 0;
  const int64_t mid0 = first_whole ? a : a + 1, mid1 = last_whole ? b + 1 : b;
  int n = 0;
  if (!first_whole) out[n++] = {1, lo - a * period, period};
  if (mid1 > mid0) out[n++] = {mid1 - mid0, 0, period};
  if (!last_whole) out[n++] = {1, 0, hi - b * period};
  return n;
}

}  // namespace

FootprintCounter::FootprintCounter(const AddressGenerator& g) : g_(g) {
  taps_ = g.taps_h() * g.taps_w();
  pixels_ = g.out_h() * g.out_w();
  const int64_t pitch = g.row_pitch();
  if (pitch < 1) throw std::logic_error("footprint: the generator has no row pitch");
  int64_t max_h = -1;
  for (int64_t r = 0; r < g.taps_h(); ++r)
    for (int64_t y = 0; y < g.out_h(); ++y) {
      const int64_t h = g.h_offset(r, y);
      if (h < 0) continue;
      if (h % pitch != 0) throw std::logic_error("footprint: a row offset is not a multiple of the row pitch");
      max_h = std::max(max_h, h / pitch);
    }
  for (int64_t t = 0; t < g.taps_w(); ++t)
    for (int64_t x = 0; x < g.out_w(); ++x)
      if (g.w_offset(t, x) >= pitch) throw std::logic_error("footprint: a column offset is outside the row");
  rows_ = max_h + 1;
  // Distinct (image, channel, row, column) must be distinct backing elements.
  if (rows_ * pitch > g.a_stride() || (g.images() > 1 && g.channels() * g.a_stride() > g.n_stride()))
    throw std::logic_error("footprint: the generator's (image, channel) blocks overlap");
  hw_ = ceil_div(std::max<int64_t>(rows_, 1), 64);
  ww_ = ceil_div(pitch, 64);
}

void FootprintCounter::row_set(int64_t r0, int64_t r1, int64_t y0, int64_t y1, uint64_t* bits) const {
  std::fill(bits, bits + hw_, 0);
  const int64_t pitch = g_.row_pitch();
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t y = y0; y < y1; ++y) {
      const int64_t h = g_.h_offset(r, y);
      if (h >= 0) bits[(h / pitch) >> 6] |= uint64_t(1) << ((h / pitch) & 63);
    }
}

void FootprintCounter::col_set(int64_t t0, int64_t t1, int64_t x0, int64_t x1, uint64_t* bits) const {
  std::fill(bits, bits + ww_, 0);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t x = x0; x < x1; ++x) {
      const int64_t w = g_.w_offset(t, x);
      if (w >= 0) bits[w >> 6] |= uint64_t(1) << (w & 63);
    }
}

int64_t FootprintCounter::one_pair(int64_t u0, int64_t u1, int64_t v0, int64_t v1) {
  const std::array<int64_t, 4> key = {u0, u1, v0, v1};
  if (auto it = memo_.find(key); it != memo_.end()) return it->second;
  Rect taps[3], pix[3];
  const int nt = rects(u0, u1, g_.taps_w(), taps), np = rects(v0, v1, g_.out_w(), pix);
  // The products H_k x W_k of every (tap rectangle, pixel rectangle) pair.
  const int m = nt * np;
  scratch_.assign(size_t(m) * size_t(hw_ + ww_), 0);
  uint64_t* H = scratch_.data();
  uint64_t* W = H + size_t(m) * size_t(hw_);
  int k = 0;
  for (int i = 0; i < nt; ++i)
    for (int j = 0; j < np; ++j, ++k) {
      row_set(taps[i].r0, taps[i].r1, pix[j].r0, pix[j].r1, H + size_t(k) * size_t(hw_));
      col_set(taps[i].c0, taps[i].c1, pix[j].c0, pix[j].c1, W + size_t(k) * size_t(ww_));
    }
  // |union of H_k x W_k| = sum over backing rows h of |union of the W_k whose H_k holds h|: group
  // the rows by which products hold them (a signature of m <= 9 bits).
  int64_t rows_with[512] = {};
  for (int64_t w = 0; w < hw_; ++w) {
    uint64_t any = 0;
    for (int q = 0; q < m; ++q) any |= H[size_t(q) * size_t(hw_) + size_t(w)];
    while (any) {
      const int b = std::countr_zero(any);
      any &= any - 1;
      unsigned sig = 0;
      for (int q = 0; q < m; ++q) sig |= unsigned((H[size_t(q) * size_t(hw_) + size_t(w)] >> b) & 1) << q;
      ++rows_with[sig];
    }
  }
  int64_t total = 0;
  for (unsigned sig = 1; sig < (1u << m); ++sig) {
    if (rows_with[sig] == 0) continue;
    int64_t cols = 0;
    for (int64_t w = 0; w < ww_; ++w) {
      uint64_t u = 0;
      for (int q = 0; q < m; ++q)
        if (sig >> q & 1) u |= W[size_t(q) * size_t(ww_) + size_t(w)];
      cols += std::popcount(u);
    }
    total += rows_with[sig] * cols;
  }
  memo_.emplace(key, total);
  return total;
}

int64_t FootprintCounter::footprint(int64_t q0, int64_t q1, int64_t v0, int64_t v1) {
  ST_INVARIANT(0 <= q0 && q0 < q1 && q1 <= g_.rows() && 0 <= v0 && v0 < v1 && v1 <= g_.cols());
  if (g_.tap_major()) return footprint_tap_major(q0, q1, v0, v1);
  Run ch[3], im[3];
  const int nc = runs(q0, q1, taps_, ch), ni = runs(v0, v1, pixels_, im);
  int64_t total = 0;
  for (int i = 0; i < nc; ++i)
    for (int j = 0; j < ni; ++j) total += ch[i].count * im[j].count * one_pair(ch[i].lo, ch[i].hi, im[j].lo, im[j].hi);
  return total;
}

// Tap-major rows (the channel-tap mapping): row q = u * Ap + a. Rows [q0, q1) hold taps u_first ..
// u_last; the first tap only for channels >= c_lo, the last only for channels < c_hi, the ones
// between for every channel. So a channel's taps are one contiguous range of u, and the channels
// fall into at most 3 classes with the same range (cut at c_lo and c_hi); channels are disjoint
// backing blocks, so the footprint is, per class, its real channels x one_pair(that tap range).
int64_t FootprintCounter::footprint_tap_major(int64_t q0, int64_t q1, int64_t v0, int64_t v1) {
  const int64_t Ap = g_.channels_padded(), A = g_.channels();
  const int64_t u_first = q0 / Ap, u_last = (q1 - 1) / Ap;
  const int64_t c_lo = q0 - u_first * Ap, c_hi = q1 - u_last * Ap;
  Run im[3];
  const int ni = runs(v0, v1, pixels_, im);
  int64_t cuts[4] = {0, std::min(c_lo, A), std::min(c_hi, A), A};
  std::sort(cuts, cuts + 4);
  int64_t total = 0;
  for (int i = 0; i < 3; ++i) {
    const int64_t a0 = cuts[i], a1 = cuts[i + 1];
    if (a1 <= a0) continue;
    // Channels [a0, a1): every one has the same tap range (no cut inside).
    const int64_t u0 = a0 >= c_lo ? u_first : u_first + 1;
    const int64_t u1 = a0 < c_hi ? u_last + 1 : u_last;
    if (u1 <= u0) continue;
    for (int j = 0; j < ni; ++j) total += (a1 - a0) * im[j].count * one_pair(u0, u1, im[j].lo, im[j].hi);
  }
  return total;
}

int64_t FootprintCounter::pass_elements(int64_t tile_g, int64_t tile_p, Halo halo) {
  ST_INVARIANT(tile_g >= 1 && tile_p >= 1);
  const int64_t rows = g_.rows();
  int64_t total = 0;
  for (int64_t q0 = 0; q0 < rows; q0 += tile_g) total += row_tile_elements(q0, std::min(rows, q0 + tile_g), tile_p, halo);
  return total;
}

int64_t FootprintCounter::row_tile_elements(int64_t q0, int64_t q1, int64_t tile_p, Halo halo) {
  ST_INVARIANT(tile_p >= 1);
  const int64_t cols = g_.cols();
  if (halo == Halo::keep) return footprint(q0, q1, 0, cols);
  int64_t total = 0;
  for (int64_t v0 = 0; v0 < cols; v0 += tile_p) total += footprint(q0, q1, v0, std::min(cols, v0 + tile_p));
  return total;
}

AddressGenerator generator_of(const OperandDesc& o) {
  ST_INVARIANT(o.generator != nullptr);
  AddressGenerator g = o.generator->make();
  const int64_t want_rows = o.generator_transposed ? o.cols : o.rows;
  const int64_t want_cols = o.generator_transposed ? o.rows : o.cols;
  if (g.rows() != want_rows || g.cols() != want_cols)
    throw std::logic_error("work description: the operand's generator does not span the operand");
  return g;
}

}  // namespace st
