#pragma once
// The modeled systolic array: GEMM C[M,N] = A[M,K] * B[K,N] executed bit-accurately.
//
// Convention (used everywhere: kernels, cost model, lowerings): A is the streamed operand (im2col'ed
// activations, "ifmap"), B the weight-like operand ("filter"), C the output. Mapping onto an array
// of R rows x C cols (SCALE-Sim's table, reference/scalesim-cycles.md):
//   OS: M -> rows, N -> cols, K streamed in time.      cycles per fold T + R + C - 2
//   WS: K -> rows, N -> cols, M streamed in time.      cycles per fold 2R + C + T - 2
//   IS: K -> rows, M -> cols, N streamed in time.      cycles per fold 2R + C + T - 2
// folds = ceil(rows/R) * ceil(cols/C).
//
// Several arrays (ArrayConfig::count = A): a core holds A identical R x C arrays. The folds along the
// GEMM dim mapped to the array COLUMNS (OS/WS: N, IS: M) are dealt round-robin, column fold j to
// array j mod A; every row fold (K for WS/IS, M for OS) of a column stays on its array, in order. So
// every output is produced by one array with exactly the chain above (K is never split): the bits do
// not depend on A. The arrays run concurrently: compute cycles = row folds x ceil(column folds / A)
// x cycles per fold (the busiest array); total folds are unchanged.
//
// Accumulation order (what makes the bits):
//   OS:    PE(m,n) does acc = mac(acc, a[m,k], b[k,n]) for k = 0..K-1, acc starting at +0.
//   WS/IS: K is cut into chunks of R. In chunk j a partial sum runs down a column, s_j = mac chain
//          over the chunk's k in increasing order starting at +0; PEs of a partly filled chunk pass
//          the sum through untouched. The accumulator memory then does out = ((+0 + s_0) + s_1) + ...
//   mac(acc, a, b) = fma(a, b, acc) when fused, round(round(a*b) + acc) when unfused, for every
//   float format (fp16 products are exact in fp32, so there the two agree; a bf16 product below
//   fp32's normal range is not, and there they differ).
// Operands are rounded to the input format on entry (round_to). With Subnormals::flush, operands
// and every MAC / accumulator result that is subnormal become zeros of the same sign.
// Output NaNs are written as the canonical quiet NaN. int8: int32 accumulation, wrapping modulo 2^32.
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "kernels/formats.h"

namespace st {

enum class Dataflow : uint8_t { os, ws, is };
std::string_view to_string(Dataflow d);
std::optional<Dataflow> parse_dataflow(std::string_view s);

// How a convolution meets the array (kernels/lowering.h "Mappings"): im2col packs the whole
// reduction (channel x tap, channel-major) onto the array rows; channel_tap puts channels on the
// rows and walks the taps in time: the reduction ordered tap-major, each tap's channels in chunks
// of `rows` (WS/IS; OS keeps one chain over the tap-major reduction).
enum class ConvMapping : uint8_t { im2col, channel_tap };
std::string_view to_string(ConvMapping m);                   // "im2col", "channel_tap"
std::optional<ConvMapping> parse_conv_mapping(std::string_view s);

struct ArrayConfig {
  int rows = 32;
  int cols = 32;
  Dataflow dataflow = Dataflow::ws;
  Format format = Format::bf16;        // input (operand) format; accumulator is fp32 (int32 for int8)
  bool fused_mac = true;               // fused multiply-add, or multiply then add (every float format)
  Subnormals subnormals = Subnormals::keep;
  int count = 1;                       // identical arrays sharing the core's buffers (see above)
  ConvMapping conv_mapping = ConvMapping::im2col;  // how convolutions are lowered onto the array
};

// A row-major matrix view with a leading dimension; `trans` reads it transposed, so an operand
// stored as (K x M) can serve as A (M x K) without a copy.
struct MatView {
  const float* data = nullptr;
  int64_t ld = 0;
  bool trans = false;
  float at(int64_t r, int64_t c) const { return trans ? data[c * ld + r] : data[r * ld + c]; }
};

struct GemmShape {
  int64_t M = 0, N = 0, K = 0;
};

// Closed-form compute cycles of one GEMM on the array (stall-free). gemm_folds: all folds, over every
// array; gemm_compute_cycles: the busiest of the cfg.count arrays (row folds x ceil(column folds /
// count) x cycles per fold).
int64_t gemm_folds(const ArrayConfig& cfg, const GemmShape& g);
int64_t gemm_cycles_per_fold(const ArrayConfig& cfg, const GemmShape& g);
int64_t gemm_compute_cycles(const ArrayConfig& cfg, const GemmShape& g);

// Fast bit-accurate kernel: C (M x N, leading dimension ldc) = A * B on the modeled array.
// Vectorized and OpenMP-parallel over output tiles; every output is produced by one thread in the
// fixed order above, so results are identical for any thread count. Floating formats only.
void systolic_gemm(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B, float* C,
                   int64_t ldc);

// An operand generated on demand instead of read from memory: the lowered matrices of a convolution
// (im2col, BP-im2col) are produced panel by panel straight from X / dY, as the modeled address
// generator does, and never stored whole. Indices: l is the operand's outer index (A: row m,
// B: column n), k the reduction index. fill(l0, l1, k0, k1, dst, ld) writes the entries
// l in [l0, l1), k in [k0, k1):
//   k_major = true:  dst[(k - k0) * ld + (l - l0)]   (the natural layout of a transposed im2col)
//   k_major = false: dst[(l - l0) * ld + (k - k0)]
// It is called from several GEMM threads at once for disjoint ranges: it must be thread-safe and
// must not open OpenMP regions. Values are rounded to the array's format by the GEMM, as for MatView.
struct OperandSource {
  std::function<void(int64_t l0, int64_t l1, int64_t k0, int64_t k1, float* dst, int64_t ld)> fill;
  bool k_major = true;
  // The values are already in the array's input format (the source reads a tensor rounded once,
  // cheaper than rounding every panel): the GEMM skips its rounding pass. Rounding is elementwise,
  // so rounding before or after gathering gives the same bits.
  bool rounded = false;
};

// An operand of systolic_gemm: a matrix in memory or a source.
struct GemmOperand {
  GemmOperand(MatView v) : view(v) {}  // NOLINT: implicit on purpose, MatView is the common case
  GemmOperand(OperandSource s) : source(std::move(s)) {}  // NOLINT
  MatView view;
  OperandSource source;
  bool generated() const { return static_cast<bool>(source.fill); }
};

// `chunks` (WS/IS only; ignored for OS): the array chunks of a reduction from which products known
// to be exactly zero were removed (a zero operand times a finite value). Chunk j of the original
// reduction (R consecutive k's) kept chunks[j] of them; the kept k's are the GEMM's K, in order
// (sum of chunks == K, each <= rows). Dropping such a product does not change a chain whose running
// sum is not -0 (x + (+-0) = x), so the result has the bits of the full reduction while the host
// skips the zeros, with one exception: a fused MAC (fp32, bf16) whose product underflows gives -0 on
// a +0 sum (and flush mode can flush a negative result to -0); a dropped +0 product would have
// turned that -0 into +0. A zero sum forgets the sign of its zero as soon as a non-zero term arrives,
// so only an output that ENDS at zero can differ (in the sign of that zero): callers that need the
// full reduction's bits recompute those outputs with systolic_output (src/ops/conv.cpp does). Without
// `chunks`, every chunk is R k's.
void systolic_gemm(const ArrayConfig& cfg, const GemmShape& g, const GemmOperand& A, const GemmOperand& B,
                   float* C, int64_t ldc, const std::vector<int32_t>* chunks = nullptr);

// One output of a GEMM alone, in the array's order (OS: one chain over k from +0; WS/IS: chunks of
// `rows` k's, each from +0, the chunk sums added in order from +0), from operands already in the
// array's format: a(k) * b(k) for k = 0..K-1 (float formats). The bits systolic_gemm gives that output
// without `chunks` (tested). The host skip paths of strided BP-im2col recompute with it every output
// whose skipped chain ended at a zero: only there can the dropped zero products change a bit (the
// sign of that zero; see `chunks` above).
// `chunks` (WS/IS; as systolic_gemm's, summing to K): the chunks of a reduction cut other than in
// `rows` (the channel-tap mapping: each tap's channels in chunks of `rows`).
float systolic_output(const ArrayConfig& cfg, int64_t K, const std::function<float(int64_t)>& a,
                      const std::function<float(int64_t)>& b, const std::vector<int32_t>* chunks = nullptr);

// int8 operands, int32 accumulation (wrapping). Row-major, no transposes; order-independent.
void systolic_gemm_i8(const ArrayConfig& cfg, const GemmShape& g, const int8_t* A, const int8_t* B,
                      int32_t* C);

// Cycle-stepped PE-level reference: registers move one PE per cycle as the hardware would.
// Slow; exists to be trusted. Returns the cycles it stepped: with cfg.count arrays the column folds
// are dealt round-robin (as above) and the result is the busiest array's sum of stepped fold cycles.
// `chunks` (WS/IS; ignored for OS): the row folds are these chunks of K in order (each <= rows,
// summing to K), each loaded into the top rows of the array, the rows below it idle (partly filled
// fold): the channel-tap mapping's one fold per (tap, channel chunk). Without it, chunks of `rows`.
int64_t systolic_gemm_reference(const ArrayConfig& cfg, const GemmShape& g, MatView A, MatView B,
                                float* C, int64_t ldc, const std::vector<int32_t>* chunks = nullptr);
int64_t systolic_gemm_reference_i8(const ArrayConfig& cfg, const GemmShape& g, const int8_t* A,
                                   const int8_t* B, int32_t* C);

}  // namespace st
