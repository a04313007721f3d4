#pragma once
// The address generator of a lowered convolution operand: the unit BP-im2col adds in front of the
// array. It maps every element of a *virtual* lowered matrix to an address in a compact tensor or
// to "zero", so the lowered matrix is never stored: the GEMM asks for panels and gets them filled
// straight from X / dY (src/ops/conv.cpp), zeros injected on the way.
//
// The matrices are the transposed lowered operands of kernels/lowering.h, rows = the reduction
// index (a, r, t), columns = pixels (n, y, x) over all N images:
//   im2col(out_h, out_w, stride)  fwd_a^T and dw_b_zero_free^T (out = P, Q; stride = the conv's),
//                                 dw_b_window^T (out = Pd, Qd; stride 1); a = c, backing X
//   dx_bp                         dx_a_bp^T, a = k, backing the compact dY (zeros generated)
//   dx_explicit                   dx_a_explicit^T, a = k, backing the materialized U_pad
//   dx_phase                      dx_a_phase^T of one stride phase, a = k, backing the compact dY
// Every one of them is separable:
//   T[(a, r, t), (n, y, x)] = backing[n * n_stride + a * a_stride + htab[r][y] + wtab[t][x]]
// and zero where htab or wtab holds -1 (padding, an inserted zero, a tap of another stride phase).
// VirtualMatrix (lowering.h) is the naive reference; tests/test_lowering.cpp compares them.
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/lowering.h"

namespace st {

class AddressGenerator;

// Which generator, for which convolution: a value the work descriptions carry (src/cost/work.h), so
// the cost models can rebuild the very generator the numerics use and count the backing elements a
// tile of the lowered operand touches (its footprint).
struct GeneratorRecipe {
  enum class Kind : uint8_t {
    im2col,       // im2col(conv, out_h, out_w, stride_h, stride_w)
    dx_bp,        // dx_bp(conv)
    dx_explicit,  // dx_explicit(conv)
    dx_phase,     // dx_phase(conv, taps_h, taps_w, rows_h, rows_w)
    dilated_dy,   // dilated_dy(conv)
  };
  Kind kind = Kind::im2col;
  ConvDesc conv;
  int64_t out_h = 0, out_w = 0, stride_h = 1, stride_w = 1;  // im2col
  std::vector<int64_t> taps_h, taps_w, rows_h, rows_w;        // dx_phase
  // Rows tap-major (the channel-tap mapping, AddressGenerator::set_tap_major): (tap, channel), each
  // tap's channels padded to `channels_padded` (0: none), the padding rows zeros.
  bool tap_major = false;
  int64_t channels_padded = 0;
  AddressGenerator make() const;
};

class AddressGenerator {
 public:
  static AddressGenerator im2col(const ConvDesc& d, int64_t out_h, int64_t out_w, int64_t stride_h,
                                 int64_t stride_w);
  static AddressGenerator dx_bp(const ConvDesc& d);
  static AddressGenerator dx_explicit(const ConvDesc& d);
  // dx_a_phase^T of stride phase (phi_h, phi_w): rows (k, tap of the phase), columns the phase's
  // pixels (n, rows_h[i], rows_w[j]); taps / rows as lowering.h's phase_taps / phase_rows.
  static AddressGenerator dx_phase(const ConvDesc& d, const std::vector<int64_t>& taps_h,
                                   const std::vector<int64_t>& taps_w, const std::vector<int64_t>& rows_h,
                                   const std::vector<int64_t>& rows_w);
  // The dilated dY of dW under BP-im2col (lowering.h dw_a_bp, K x N Pd Qd), NOT transposed: rows
  // (a = k, R = S = 1), columns (n, y, x) over Pd x Qd, backing the compact dY; the inserted zeros
  // (y or x not a multiple of the stride) are generated. The numerics pack this operand directly
  // (pack_dw_a_dilated); the cost models use the generator to count what a tile of it reads.
  static AddressGenerator dilated_dy(const ConvDesc& d);

  // The channel-tap mapping: the rows become tap-major, row (u, a) = u * a_pad + a with u = r S + t
  // the tap and a the channel, each tap's channels padded with zero rows up to a_pad (>= channels();
  // the cost model's GEMM pads them to the array rows, the numerics do not pad). Columns unchanged.
  AddressGenerator& set_tap_major(int64_t a_pad);
  bool tap_major() const { return tap_major_; }
  int64_t channels_padded() const { return a_pad_; }
  // Row `row` as (channel a, taps r, t) in either order; false for a padding row (a zero row).
  bool row_coords(int64_t row, int64_t& a, int64_t& r, int64_t& t) const;

  int64_t rows() const { return a_pad_ * R_ * S_; }
  int64_t cols() const { return N_ * out_h_ * out_w_; }
  // The separable form, for the cost model's footprint counting (src/cost/footprint.h):
  //   index = n * n_stride + a * a_stride + h_offset(r, y) + w_offset(t, x)
  // with h_offset a multiple of row_pitch (a backing row times its width) and w_offset in
  // [0, row_pitch); -1 where the element is a zero.
  int64_t images() const { return N_; }
  int64_t channels() const { return A_; }
  int64_t taps_h() const { return R_; }
  int64_t taps_w() const { return S_; }
  int64_t out_h() const { return out_h_; }
  int64_t out_w() const { return out_w_; }
  int64_t n_stride() const { return n_stride_; }
  int64_t a_stride() const { return a_stride_; }
  int64_t row_pitch() const { return pitch_; }
  int64_t backing_elems() const { return backing_elems_; }
  int64_t h_offset(int64_t r, int64_t y) const { return htab_[size_t(r * out_h_ + y)]; }
  int64_t w_offset(int64_t t, int64_t x) const { return wtab_[size_t(t * out_w_ + x)]; }
  // Index of element (row, col) in the backing tensor, or -1 for a zero.
  int64_t index(int64_t row, int64_t col) const;
  // dst[(row - row0) * ld + (col - col0)] for rows [row0, row1), columns [col0, col1).
  // Serial and thread-safe (the GEMM's threads call it for disjoint panels); AVX-512 gathers along
  // the columns when every index fits in 32 bits, scalar otherwise.
  void fill(const float* backing, int64_t row0, int64_t row1, int64_t col0, int64_t col1, float* dst,
            int64_t ld) const;

 private:
  AddressGenerator(int64_t N, int64_t A, int64_t R, int64_t S, int64_t out_h, int64_t out_w, int64_t n_stride,
                   int64_t a_stride, int64_t backing_elems, int64_t pitch);
  // How the lanes of one output line (consecutive columns x) address the backing tensor.
  enum class Columns : uint8_t {
    unit,    // wtab[t][x] = x + w_shift[t]: one masked load (stride-1 im2col and dX, explicit)
    step2,   // wtab[t][x] = 2x + w_shift[t]: two loads and an even-lane permute (stride-2 im2col)
    expand,  // the valid lanes read consecutive addresses: one expanding load (strided dX from dY)
    gather,  // anything else: AVX-512 gathers
  };
  void set_columns(Columns mode, const std::function<int64_t(int64_t)>& shift);
  void fill_lines(const float* backing, int64_t row0, int64_t row1, int64_t c0, int cnt, float* out,
                  int64_t ld) const;
  void fill_scalar(const float* backing, int64_t row0, int64_t row1, int64_t col0, int64_t col1, float* dst,
                   int64_t ld) const;

  int64_t N_, A_, R_, S_, out_h_, out_w_;
  int64_t n_stride_, a_stride_;
  int64_t backing_elems_, pitch_;
  bool tap_major_ = false;
  int64_t a_pad_;                // channels per tap, padding included (A_ unless tap-major and padded)
  Columns columns_ = Columns::gather;
  std::vector<int64_t> w_shift_;  // unit / step2: wtab[t][x] = step * x + w_shift[t] where valid
  bool narrow_;                  // all indices fit in int32: the vector path applies
  std::vector<int64_t> htab_;    // (R, out_h): row offset of tap r at output row y, or -1
  std::vector<int64_t> wtab_;    // (S, out_w): column offset of tap t at output column x, or -1
};

}  // namespace st
