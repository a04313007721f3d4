#pragma once
// Fully connected layer: a GEMM on the systolic array (kernels/systolic.h, C[M,N] = A[M,K] B[K,N],
// A streamed / ifmap-like, B weight-like), with the spec's ArrayConfig (format, dataflow, MAC).
// src (N, IC) (or (N, IC, 1, 1)), wei (OC, IC) (oneDNN's (oc, ic)), bias (OC), dst (N, OC).
//   fwd:          dst = src * wei^T + bias         GEMM M = N, K = IC, N = OC; A = src, B = wei^T
//                 The bias is added to the fp32 GEMM output on the vector unit (one add each).
//   bwd_data:     diff_src = diff_dst * wei        GEMM M = N, K = OC, N = IC; A = diff_dst, B = wei
//                 WRITTEN (the FC input has one consumer).
//   bwd_weights:  diff_wei += diff_dst^T * src     GEMM M = OC, K = N, N = IC; A = diff_dst^T, B = src
//                 diff_bias += lane-partitioned sum over the batch of diff_dst (vector unit).
//                 ADDED (gradient accumulation): the GEMM computes from +0 in the dataflow's order,
//                 then the accumulator memory does diff_wei = diff_wei + gemm (one fp32 add).
// Operands are rounded to the array's input format by the GEMM kernel on entry (that is where the
// fp32 master weights become bf16 / fp16); outputs are fp32. int8 is not supported for training.
// Each GEMM is described to the cost model as a GemmWork; bias work as a VectorWork.
#include <cstdint>

#include "src/base/tensor.h"
#include "src/ops/context.h"

namespace st {

void fc_fwd(const ExecContext& ctx, const Tensor& src, const Tensor& wei, const Tensor& bias, Tensor& dst);
void fc_bwd_data(const ExecContext& ctx, const Tensor& diff_dst, const Tensor& wei, Tensor& diff_src);
void fc_bwd_weights(const ExecContext& ctx, const Tensor& src, const Tensor& diff_dst, Tensor& diff_wei,
                    Tensor& diff_bias);

// The work the ops above describe for a batch N, IC inputs, OC outputs, without tensors (the ops
// emit exactly these, in this order: fwd = GEMM then bias; bwd_weights = GEMM then bias sum).
GemmWork fc_fwd_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC);
VectorWork fc_bias_fwd_work(const ExecContext& ctx, int64_t N, int64_t OC);
GemmWork fc_bwd_data_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC);
GemmWork fc_bwd_weights_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC);
VectorWork fc_bias_bwd_work(const ExecContext& ctx, int64_t N, int64_t OC);

}  // namespace st
