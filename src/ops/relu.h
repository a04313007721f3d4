#pragma once
// ReLU on the vector unit (oneDNN eltwise_relu with alpha = 0).
//   fwd: dst = src > 0 ? src : +0        (NaN propagates as the canonical NaN; -0 and negatives -> +0)
//   bwd: diff_src = src > 0 ? diff_dst : +0   (WRITTEN, not added: ReLU's input has one consumer;
//        gradient fan-out is residual_add's add_bwd). dst may be passed as `src` (dst > 0 iff src > 0).
// Cost: one compare per element; fwd reads src and writes dst, bwd reads src and diff_dst and writes
// diff_src. `producer_on_chip`: src comes straight from the producer (conv, or a BN fused with it)
// without a DRAM round trip; honored by the cost model when spec.vector.fuse_with_conv is set.
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

void relu_fwd(const ExecContext& ctx, const Tensor& src, Tensor& dst, bool producer_on_chip = false);
void relu_bwd(const ExecContext& ctx, const Tensor& src, const Tensor& diff_dst, Tensor& diff_src);

// The work the two ops describe for n elements (tagged with ctx.layer), without tensors: the ops
// emit exactly these, so projections (src/project) and executed steps cannot disagree.
VectorWork relu_fwd_work(const ExecContext& ctx, int64_t n, bool producer_on_chip = false);
VectorWork relu_bwd_work(const ExecContext& ctx, int64_t n);

}  // namespace st
