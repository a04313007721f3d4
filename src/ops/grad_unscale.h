#pragma once
// fp16 loss scaling (src/train/loss_scale.h): the pass that turns the scaled parameter gradients back
// into true ones and finds an overflow, on the vector unit, per element in fp32:
//   diff_wei = diff_wei * inv_scale                     (one mul, in place)
//   finite  &= |diff_wei| < Inf  (NaN fails too)         (one cmp; the flags OR'ed in a register)
// With inv_scale = 1/S for a power of two S the product is exact unless it is an fp32 subnormal
// (below 2^-126), where it rounds to nearest even like any fp32 multiply. The flag is an OR over
// elements, so neither the result nor the flag depends on the thread count. The caller skips the
// optimizer step when the flag is false (PyTorch's GradScaler: _amp_foreach_non_finite_check_and_unscale_).
// The scale S itself costs nothing extra: it is fused into the loss backward, whose multiply by
// diff_loss / N already exists (softmax_xent_bwd with diff_loss = S).
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

// Returns true when every element of the unscaled diff_wei is finite.
bool grad_unscale(const ExecContext& ctx, Tensor& diff_wei, float inv_scale);
// The work grad_unscale describes for a gradient of n elements, without tensors: read diff_wei
// (fp32), write it back (fp32), n muls and n cmps, one pass.
VectorWork grad_unscale_work(const ExecContext& ctx, int64_t n);

}  // namespace st
