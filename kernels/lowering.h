#pragma once
// Lowering of a convolution onto the array's GEMM C[M,N] = A[M,K] B[K,N] (kernels/systolic.h:
// A streamed / ifmap-like, B weight-like), for the three directions and three lowering modes
// (DESIGN.md "Lowering", reference/bp-im2col.md).
//
// Shapes (NCHW, dilation 1). X (N,C,H,W), W (K,C,R,S), Y (N,K,P,Q),
//   P = (H + pt + pb - R) / sh + 1, a_h = (H + pt + pb - R) mod sh (leftover rows), Pd = (P-1) sh + 1.
//
// The GEMMs (rows x reduction x cols), identical element order in every mode:
//   fwd:  Y^T (NPQ x K)   = im2col(X) (NPQ x CRS)            . W^T (CRS x K)
//   dX:   dX^T (NHW x C)  = B'^T (NHW x KRS)                  . W' (KRS x C)
//         B'^T[(n,h,w),(k,r',t')] = U_pad[n,k,h+r',w+t'], W'[(k,r',t'),c] = W[k,c,R-1-r',S-1-t']
//         (r' is the rotated tap, rbar = R-1-r' the original one: the element is
//          dY[n,k,(h+pt-rbar)/sh,(w+pl-tbar)/sw] when both divisions are exact and in range, else 0)
//   dW:   dW (K x CRS)    = dilated dY (K x N Pd Qd)          . X-window (N Pd Qd x CRS)   [explicit, bp]
//         dW (K x CRS)    = dY_mat (K x NPQ)                  . im2col(X) (NPQ x CRS)      [zero-skip]
//
// Modes:
//   explicit   U_pad (dX) and the dilated U (dW) are materialized, zeros included, then im2col'ed.
//   bp_im2col  the same virtual matrices, every element generated from the compact dY by address
//              arithmetic; zeros never stored, injected at the array edge. Same GEMM shape.
//   zero_skip  dX: one sub-GEMM per stride phase (phi_h, phi_w) over the output rows h with
//              (h + pt) mod sh == phi_h, reducing only over the taps rbar == phi_h (mod sh), in the
//              same (k, r', t') order; dW: the zero-free form. No MAC on an inserted zero.
//
// Bits: explicit and bp_im2col consume identical virtual matrices, so their results are bitwise
// equal for every dataflow. zero_skip only drops products that are exactly zero (an inserted zero
// times a weight). The accumulator starts at +0 and +0 + (+-0) = +0, and a dropped zero never changes
// a sum that is not -0: with OS (one chain over k) the bits are equal, except that a fused MAC whose
// product underflows (fp32, bf16), or flush mode, can leave -0, which a dropped +0 product would have
// turned into +0 (the sign of a zero result: zero-skip hardware computes its own chain, so that -0 is
// its result; BP-im2col's host skip paths recompute every -0 output with the full chain and keep
// explicit's bits, src/ops/conv.cpp). WS/IS cut k
// into chunks of the array rows; dropping zeros regroups the non-zero terms into different chunks
// and the rounding can differ, unless the full reduction fits in one chunk (K_red <= rows), or the
// arithmetic is exact (small integers). Exception: a non-finite weight times an inserted zero is a
// NaN in explicit / bp_im2col (the array really multiplies it) and absent in zero_skip.
// Mappings (ArrayConfig::conv_mapping, kernels/systolic.h). Every reduction above is channel-major:
// (c, r, t) fwd, (k, r', t') dX, (k, r'_phi, t'_phi) a dX phase; that is im2col's order, the
// array rows filled with channel x tap, chunks of `rows` cutting across channels and taps.
// channel_tap reorders the SAME reduction tap-major, (tap, channel): channels on the array rows,
// taps walked in time. Element a * U + u of a channel-major reduction (A channels, U taps) is at
// position u * A + a (tap_major_order). On WS/IS each tap's A channels are cut into chunks of
// `rows` (tap_chunks): the partial sum of a chunk runs down a column from +0, the chunk sums are
// added into the accumulator in order (tap by tap, chunk by chunk), so every tap starts a fresh
// fold and a tap with A < rows leaves rows - A rows idle. OS, which has no row folds, keeps one
// chain per output over the tap-major reduction (the output stays in its PE while the taps go by).
// dW's reduction runs over pixels, not channels: channel_tap orders its OUTPUT columns tap-major
// ((r, t, c): one weight tap's channels side by side), which changes no chain and so no bit.
// What changes with the order is which elements a tile of the lowered operand holds (the cost).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/systolic.h"

namespace st {

enum class Lowering : uint8_t { explicit_im2col, bp_im2col, zero_skip };
std::string_view to_string(Lowering l);                  // "explicit", "bp-im2col", "zero-skip"
std::optional<Lowering> parse_lowering(std::string_view s);
// parse_lowering for a user's value: a UserError naming `flag` and the allowed values otherwise.
Lowering lowering_from_flag(std::string_view s, std::string_view flag = "--lowering");
// parse_conv_mapping for a user's value: a UserError naming `flag` and the allowed values otherwise.
ConvMapping conv_mapping_from_flag(std::string_view s, std::string_view flag = "--mapping");
inline constexpr Lowering kAllLowerings[] = {Lowering::explicit_im2col, Lowering::bp_im2col,
                                             Lowering::zero_skip};

enum class Direction : uint8_t { fwd, bwd_data, bwd_weights };
std::string_view to_string(Direction d);

struct ConvDesc {
  int64_t N = 1, C = 1, H = 1, W = 1;   // src (N, C, H, W)
  int64_t K = 1, R = 1, S = 1;          // wei (K, C, R, S)
  int64_t sh = 1, sw = 1;               // strides
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // paddings: top, left, bottom, right

  int64_t P() const { return (H + pt + pb - R) / sh + 1; }
  int64_t Q() const { return (W + pl + pr - S) / sw + 1; }
  int64_t ah() const { return (H + pt + pb - R) % sh; }   // leftover rows
  int64_t aw() const { return (W + pl + pr - S) % sw; }
  int64_t Pd() const { return (P() - 1) * sh + 1; }       // zero-inserted dY rows
  int64_t Qd() const { return (Q() - 1) * sw + 1; }
  int64_t Hu() const { return H + R - 1; }                // padded zero-inserted dY (U_pad) rows
  int64_t Wu() const { return W + S - 1; }
  int64_t src_elems() const { return N * C * H * W; }
  int64_t wei_elems() const { return K * C * R * S; }
  int64_t dst_elems() const { return N * K * P() * Q(); }
  double fwd_macs() const { return double(N) * K * C * R * S * P() * Q(); }
  // benchdnn-style problem string: mb2ic3ih7oc4kh3sh2ph1 (iw/kw/sw/pw only when they differ,
  // pb/pr only when asymmetric). Usable as a gtest parameter name.
  std::string str() const;
  // Throws UserError naming the field when the shape is impossible (non-positive sizes, strides
  // outside 1..4, padding outside 0..R-1 / 0..S-1, empty output).
  void validate() const;
};

// Tap geometry along one axis (rows: size H, taps R, stride sh, pad pt, output P).
struct Axis {
  int64_t in, taps, stride, pad, out;
};
inline Axis axis_h(const ConvDesc& d) { return {d.H, d.R, d.sh, d.pt, d.P()}; }
inline Axis axis_w(const ConvDesc& d) { return {d.W, d.S, d.sw, d.pl, d.Q()}; }
// V = #{(y, r): y < out, r < taps, 0 <= stride*y + r - pad < in}: non-zero (y, tap) pairs.
int64_t valid_pairs(const Axis& a);
// Stride phase phi of an input index i: (i + pad) mod stride. Taps of phase phi (original index
// rbar == phi mod stride) in rotated order (rbar descending), and the input indices of the phase.
std::vector<int64_t> phase_taps(const Axis& a, int64_t phi);
std::vector<int64_t> phase_rows(const Axis& a, int64_t phi);

// Element counts of the reference's "Counting" section (reference/bp-im2col.md).
struct ConvCounts {
  int64_t dy = 0;                 // N K P Q
  int64_t dy_inserted = 0;        // N K Pd Qd
  int64_t dy_padded = 0;          // N K Hu Wu (U_pad)
  int64_t bprime_entries = 0;     // K R S N H W (explicit B')
  int64_t bprime_nonzero = 0;     // N K V_h V_w
  double macs_fwd = 0, macs_dx_explicit = 0, macs_dx_useful = 0, macs_dx_phase = 0;
  double macs_dw_explicit = 0, macs_dw_zero_free = 0;
};
ConvCounts conv_counts(const ConvDesc& d);

// [j] = the channel-major position (a * U + u) of tap-major position j (= u * A + a).
std::vector<int64_t> tap_major_order(int64_t A, int64_t U);
// The array chunks of a tap-major reduction of A channels x U taps on `rows` rows: for each tap,
// ceil(A / rows) chunks (rows, ..., the rest).
std::vector<int32_t> tap_chunks(int64_t A, int64_t U, int64_t rows);

// ---- The virtual lowered matrices -------------------------------------------------------------
// One interface for every operand of every direction and mode: element (row, col) of the virtual
// matrix maps to an index into its backing tensor, or to -1 (a zero: padding or an inserted zero).
// Used to define the lowering, by the tests and by the slow reference path; the fast packers below
// produce exactly these matrices (tested) with contiguous inner loops.
enum class Operand : uint8_t {
  fwd_a,        // im2col(X)                  NPQ x CRS   -> X
  fwd_b,        // W^T                        CRS x K     -> W
  dx_a_bp,      // B'^T from compact dY       NHW x KRS   -> dY (zeros generated)
  dx_a_explicit,// B'^T from U_pad            NHW x KRS   -> U_pad (N, K, Hu, Wu)
  dx_b,         // W' (rotated, swapped)      KRS x C     -> W
  dx_a_phase,   // phase sub-GEMM A           (N H_phi W_phi) x (K R_phi S_phi) -> dY
  dx_b_phase,   // phase sub-GEMM B           (K R_phi S_phi) x C               -> W
  dw_a_bp,      // dilated dY from compact dY K x N Pd Qd -> dY (zeros generated)
  dw_a_explicit,// dilated dY from U          K x N Pd Qd -> U (N, K, Pd, Qd)
  dw_b_window,  // X windows at stride 1      N Pd Qd x CRS -> X
  dw_a_zero_free,// dY_mat                    K x NPQ     -> dY
  dw_b_zero_free,// im2col(X)^T... as rows    NPQ x CRS   -> X
};

class VirtualMatrix {
 public:
  VirtualMatrix(const ConvDesc& d, Operand op, int64_t phi_h = 0, int64_t phi_w = 0);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  Operand op() const { return op_; }
  int64_t index(int64_t r, int64_t c) const;     // into the backing tensor, or -1 for a zero
  // Dense row-major copy (rows x cols) from the backing tensor: the slow, obviously-right packer.
  std::vector<float> dense(const float* backing) const;

 private:
  ConvDesc d_;
  Operand op_;
  int64_t rows_ = 0, cols_ = 0;
  std::vector<int64_t> th_, tw_, hh_, ww_;  // phase taps (rbar) and rows (h) for the phase operands
};

// Materialization of the explicit baseline (what it writes to DRAM).
// U_pad (N, K, Hu, Wu): dY zero-inserted by the strides and padded by R-1-pt / R-1-pb+a_h rows.
void materialize_u_pad(const ConvDesc& d, const float* dy, float* u_pad);
// U (N, K, Pd, Qd): dY zero-inserted by the strides (the dilated kernel of dW).
void materialize_u(const ConvDesc& d, const float* dy, float* u);

// ---- Fast packers (contiguous inner loops, OpenMP over the outer loop, deterministic) ------------
// Generalized im2col of X, transposed: dst (C R S) x (n1-n0) P' Q', row (c,r,t), column (n,y,x),
// element X[n, c, stride_h*y + r - pt, stride_w*x + t - pl] (0 outside). With (P', Q', stride) =
// (P, Q, s) it is fwd_a^T / dw_b_zero_free^T; with (Pd, Qd, 1) it is dw_b_window^T.
void pack_im2col_t(const ConvDesc& d, const float* x, int64_t n0, int64_t n1, int64_t out_h,
                   int64_t out_w, int64_t stride_h, int64_t stride_w, float* dst);
// dx_a^T for images [n0, n1): (K R S) x (n1-n0) H W, from compact dY (bp) or from U_pad (explicit).
void pack_dx_a_t_bp(const ConvDesc& d, const float* dy, int64_t n0, int64_t n1, float* dst);
void pack_dx_a_t_explicit(const ConvDesc& d, const float* u_pad, int64_t n0, int64_t n1, float* dst);
// (All three are kernels/address_gen.h fills; the GEMM uses the generator panel by panel.)
// dx_a_phase^T: (K R_phi S_phi) x (N H_phi W_phi).
void pack_dx_a_t_phase(const ConvDesc& d, const float* dy, const std::vector<int64_t>& taps_h,
                       const std::vector<int64_t>& taps_w, const std::vector<int64_t>& rows_h,
                       const std::vector<int64_t>& rows_w, float* dst);
// Weight operands. fwd_b (CRS x K) needs no packing: it is W (K x CRS) read transposed.
// dx_b (KRS x C, taps = all rbar descending) and dx_b_phase (K R_phi S_phi x C).
void pack_dx_b(const ConvDesc& d, const float* w, const std::vector<int64_t>& taps_h,
               const std::vector<int64_t>& taps_w, float* dst);
// dW A operands: K x N Pd Qd (dilated, from dY or from U) and K x NPQ (zero-free).
void pack_dw_a_dilated(const ConvDesc& d, const float* dy, float* dst);
void pack_dw_a_from_u(const ConvDesc& d, const float* u, float* dst);
void pack_dw_a_zero_free(const ConvDesc& d, const float* dy, float* dst);

}  // namespace st
