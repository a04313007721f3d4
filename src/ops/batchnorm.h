#pragma once
// Batch normalization over (N, C, H, W) (or (N, C)) per channel, on the vector unit, fp32.
// Names and formulas follow oneDNN's batch_normalization with use_scale | use_shift; M = N*H*W.
//
// Training forward (3 passes over the channel's M elements, element order (n, h, w) flattened):
//   mean = div(sum(x), M)                          lane-partitioned sum (kernels/vector_unit.h)
//   var  = div(sum((x - mean)^2), M)               biased, lane-partitioned fma of squared deviations
//   inv  = rsqrt(var + eps)                        1 / sqrt, both correctly rounded
//   a    = gamma * inv;  dst = fma(a, x - mean, beta)
//   running stats (PyTorch convention, unbiased variance for the running estimate):
//   uvar = M > 1 ? div(var * M, M - 1) : var;  rm = fma(momentum, mean - rm, rm);
//   rv = fma(momentum, uvar - rv, rv)
// Inference forward: inv = rsqrt(rv + eps); dst = fma(gamma * inv, x - rm, beta).
// Backward (2 passes), from the saved batch mean and var:
//   s_dy = sum(dy);  s_xdy = sum((x - mean) * dy)       (lane-partitioned, fma per lane)
//   diff_beta += s_dy;  dg = s_xdy * inv;  diff_gamma += dg
//   c1 = div(s_dy, M);  c2 = div(dg * inv, M);  k = gamma * inv
//   diff_src = k * fma(-(x - mean), c2, dy - c1)        WRITTEN (BN's input has one consumer)
// diff_gamma / diff_beta are ADDED into (gradient accumulation; the caller zeroes them per step).
#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

// Synchronized batch normalization across data-parallel replicas (train --sync-bn): the per-channel
// sums of a pass are summed over the replicas (in the interconnect's fixed order, fp32) before they
// are used, so every replica normalizes with the statistics of the global batch (M = replicas x N*H*W)
// and backward uses the global sum(dy) and sum((x - mean) * dy). diff_gamma / diff_beta stay the
// replica's own (the gradient all-reduce averages them, as PyTorch's SyncBatchNorm under DDP).
class BnSync {
 public:
  virtual ~BnSync() = default;
  virtual void sum(float* v, int64_t n) = 0;  // in place, the same bits on every replica
  virtual int64_t replicas() const = 0;
};

struct BnParams {
  float eps = 1e-5f;
  float momentum = 0.1f;   // weight of the new batch statistic in the running estimate
  BnSync* sync = nullptr;  // null: statistics of this replica's batch (per-replica BN)
};

// What training forward saves for backward: per-channel batch mean and biased variance (C).
struct BnSaved {
  Tensor mean, var;
};

void bn_fwd_training(const ExecContext& ctx, const BnParams& p, const Tensor& src,
                     const Tensor& gamma, const Tensor& beta, Tensor& dst, BnSaved& saved,
                     Tensor& running_mean, Tensor& running_var, bool producer_on_chip = false);
void bn_fwd_inference(const ExecContext& ctx, const BnParams& p, const Tensor& src,
                      const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                      const Tensor& running_var, Tensor& dst, bool producer_on_chip = false);
void bn_bwd(const ExecContext& ctx, const BnParams& p, const Tensor& src, const Tensor& diff_dst,
            const Tensor& gamma, const BnSaved& saved, Tensor& diff_src, Tensor& diff_gamma,
            Tensor& diff_beta);

// The work the ops above describe for n_elems elements in C_groups channels, without tensors (the
// ops emit exactly these, so projections and executed steps cannot disagree).
VectorWork bn_fwd_training_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups,
                                bool producer_on_chip = false);
VectorWork bn_fwd_inference_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups,
                                 bool producer_on_chip = false);
VectorWork bn_bwd_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups);
// Inference BN folded into the conv before it (projection --fold-bn; no executing op): the scale is
// in the conv's weights (offline), the shift is a per-channel bias the vector unit adds to the conv's
// results on their way out of the output buffer, with the ReLU that follows (`with_relu`) applied in
// the same pass. No DRAM traffic of its own: the conv's output store carries the final activation.
VectorWork bn_folded_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups, bool with_relu);

}  // namespace st
