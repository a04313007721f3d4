#pragma once
// SGD with momentum and weight decay (PyTorch's formulation, no dampening, no Nesterov) on the vector
// unit, per element, in fp32 with explicit fma (3 fmas per element):
//   g = fma(weight_decay, wei, diff_wei)     // g = dW + wd * W
//   v = fma(momentum, v, g)                  // v = mu * v + g
//   wei = fma(-lr, v, wei)                   // W = W - lr * v
// `wei` are the fp32 MASTER weights. The array never sees them directly: the GEMM kernel rounds
// every operand to the array's input format on entry (kernels/systolic.h, round_to), which is the
// cast to bf16/fp16 for compute; the update itself is always fp32. diff_wei is only read (the
// caller zeroes gradients before the next step). `velocity` gets wei's shape (zeros) if it has not.
// `gemm_operand`: the parameter is a conv / fc weight, read by the array. With spec storage.weights =
// "copy" the update also writes its array-format copy (src/ops/storage.h; the cost counts it, the
// numerics need not: rounding once at the copy equals rounding at the array edge).
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

struct SgdParams {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 5e-4f;
};

void sgd_update(const ExecContext& ctx, const SgdParams& p, Tensor& wei, const Tensor& diff_wei,
                Tensor& velocity, bool gemm_operand);
// The work sgd_update describes for a parameter of n elements, without tensors.
VectorWork sgd_update_work(const ExecContext& ctx, int64_t n, bool gemm_operand);

}  // namespace st
