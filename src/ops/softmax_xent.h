#pragma once
// Softmax with cross-entropy loss on the vector unit, logits (N, K) (or (N, K, 1, 1)), labels (N).
// Forward, per row (one row at a time, K classes):
//   m = max_j x_j (compares); e_j = exp(x_j - m); s = lane-partitioned sum of e_j (j order);
//   probs_j = div(e_j, s); loss_n = log(s) - (x_label - m)       (vu::exp / vu::log / vu::div)
//   loss = div(lane-partitioned sum over n of loss_n, N)        (mean over the batch)
// Backward: scale = div(diff_loss, N); diff_src_j = (probs_j - [j == label]) * scale   WRITTEN.
// exp and log are the unit's own algorithms (kernels/vector_unit.h), reproduced bit for bit on any
// host; the N logs are counted as exp-class (transcendental) ops.
#include <cstdint>
#include <vector>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

float softmax_xent_fwd(const ExecContext& ctx, const Tensor& logits, const std::vector<int32_t>& labels,
                       Tensor& probs);
void softmax_xent_bwd(const ExecContext& ctx, const Tensor& probs, const std::vector<int32_t>& labels,
                      Tensor& diff_src, float diff_loss = 1.0f);

// The work the two ops describe for N rows of K classes, without tensors (the ops emit exactly these).
VectorWork softmax_xent_fwd_work(const ExecContext& ctx, int64_t N, int64_t K);
VectorWork softmax_xent_bwd_work(const ExecContext& ctx, int64_t N, int64_t K);

}  // namespace st
