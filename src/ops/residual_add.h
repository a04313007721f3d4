#pragma once
// Residual add on the vector unit (oneDNN binary_add / sum).
//   add_fwd: dst = src0 + src1 (one fp32 add per element, exact IEEE rounding; order irrelevant).
//   add_bwd: the gradient of dst w.r.t. both inputs is diff_dst itself, so nothing is computed for the
//            branches; the arithmetic of the backward is the gradient FAN-OUT where the two branches
//            meet again at the block input x: diff_src += diff_dst (ADDED into the gradient the
//            other branch already wrote, e.g. conv bwd_data's diff_src of the block's first conv).
// Cost: one add per element; read two operands, write one.
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

void add_fwd(const ExecContext& ctx, const Tensor& src0, const Tensor& src1, Tensor& dst,
             bool producer_on_chip = false);
void add_bwd(const ExecContext& ctx, const Tensor& diff_dst, Tensor& diff_src);

// The work the ops describe for n elements, without tensors (the ops emit exactly these).
VectorWork add_fwd_work(const ExecContext& ctx, int64_t n, bool producer_on_chip = false);
VectorWork add_bwd_work(const ExecContext& ctx, int64_t n);

}  // namespace st
