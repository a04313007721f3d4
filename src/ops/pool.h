#pragma once
// Pooling on the vector unit: max (with an argmax workspace) and average, incl. global average.
// Geometry as oneDNN with symmetric padding (padding_l = padding_r = ph, pw):
//   oh = (ih + 2 ph - kh) / sh + 1 (floor), likewise ow.
// Max: padded positions never win (they are not compared); ties keep the FIRST maximum in window scan
// order (kh outer, kw inner) as oneDNN does; a NaN input wins and propagates (canonical NaN). The
// workspace stores, per output, the flat index ih * IW + iw of the winner in its (n, c) plane.
// Average: the window sum runs sequentially in scan order starting from +0 (one output per lane: the
// lanes work on different outputs, the reduction is inside a lane), then one correctly rounded
// division by the divisor. Divisor: avg_exclude_padding (DEFAULT, oneDNN's pooling_avg_exclude_padding)
// counts the in-bounds elements; avg_include_padding counts kh * kw.
// Backward WRITES diff_src (zeroes it, then scatter-adds the outputs' gradients in output index order
// (oh, ow) within each plane: overlapping windows sum in that fixed order). Average backward divides
// each diff_dst by the window's divisor once, then adds the quotient into every in-bounds position.
// diff_src must already have the src shape.
#include <cstdint>
#include <vector>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

enum class PoolAlg : uint8_t { max, avg_exclude_padding, avg_include_padding };

struct PoolDesc {
  int kh = 2, kw = 2, sh = 2, sw = 2, ph = 0, pw = 0;
  PoolAlg alg = PoolAlg::max;
};

// The global average pooling of an (N, C, H, W) input: one H x W window, output (N, C, 1, 1).
PoolDesc global_avg_pool_desc(const Tensor& src);
int64_t pool_out_dim(int64_t in, int k, int s, int p);

struct PoolWorkspace {
  std::vector<int32_t> argmax;  // (N, C, OH, OW): flat index into the (IH, IW) plane of the winner
};

void pool_fwd(const ExecContext& ctx, const PoolDesc& d, const Tensor& src, Tensor& dst,
              PoolWorkspace* ws = nullptr);
void pool_bwd(const ExecContext& ctx, const PoolDesc& d, const Tensor& diff_dst,
              const PoolWorkspace* ws, Tensor& diff_src);

// The work the two ops describe for an (N, C, IH, IW) input, without tensors (the ops emit exactly
// these, so projections and executed steps cannot disagree).
VectorWork pool_fwd_work(const ExecContext& ctx, const PoolDesc& d, int64_t N, int64_t C, int64_t IH,
                         int64_t IW);
VectorWork pool_bwd_work(const ExecContext& ctx, const PoolDesc& d, int64_t N, int64_t C, int64_t IH,
                         int64_t IW);

}  // namespace st
