#include "src/ops/fc.h"

#include "kernels/systolic.h"
#include "kernels/vector_unit.h"
#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {

struct Dims {
  int64_t N, IC, OC;
};

Dims dims(const Tensor& src, const Tensor& wei, const char* op) {
  if (src.rank() < 2 || wei.rank() != 2)
    throw UserError(std::string(op) + ": src must be (N, IC[, 1, 1]) and wei (OC, IC), got " +
                    src.shape_str() + " and " + wei.shape_str());
  Dims d{src.dim(0), src.size() / src.dim(0), wei.dim(0)};
  if (wei.dim(1) != d.IC)
    throw UserError(std::string(op) + ": wei " + wei.shape_str() + " does not take " +
                    std::to_string(d.IC) + " inputs");
  return d;
}

const ArrayConfig& array(const ExecContext& ctx) {
  ST_INVARIANT(ctx.spec != nullptr);
  if (ctx.spec->array.format == Format::int8)
    throw UserError("fc: the int8 array format is inference-only; training needs fp32, bf16 or fp16");
  return ctx.spec->array;
}

// A dense GEMM whose A (src or diff_dst) is an fp32 tensor and whose B is the weights as the spec
// stores them (bwd_weights: src, fp32); C is written as it leaves the array (src/ops/storage.h).
GemmWork gemm_work(const ExecContext& ctx, OpKind kind, Phase phase, const GemmShape& g, bool accumulate,
                   TensorRole a, TensorRole b, TensorRole c) {
  GemmWork w = dense_gemm_work(g, array(ctx).format);
  w.tag = Tag{ctx.layer, kind, phase};
  w.accumulate_into_c = accumulate;
  w.a.tensor = a;
  w.a.dram_elem_bytes = kStoredF32;
  const bool weights = b == TensorRole::wei;
  w.b.tensor = weights ? gemm_weight_role(*ctx.spec) : b;
  w.b.dram_elem_bytes = weights ? gemm_weight_bytes(*ctx.spec) : kStoredF32;
  w.c.tensor = c;
  return w;
}

void run_gemm(const ExecContext& ctx, const GemmWork& w, MatView A, MatView B, float* C) {
  systolic_gemm(array(ctx), w.shape, A, B, C, w.shape.N);
  ctx.emit(w);
}

}  // namespace

GemmWork fc_fwd_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC) {
  return gemm_work(ctx, OpKind::fc_fwd, Phase::forward, GemmShape{N, OC, IC}, false, TensorRole::src,
                   TensorRole::wei, TensorRole::dst);
}

VectorWork fc_bias_fwd_work(const ExecContext& ctx, int64_t N, int64_t OC) {
  const double outs = double(N * OC);
  VectorWork w = vwork(ctx, OpKind::fc_fwd, Phase::forward, N * OC);
  w.adds = outs;
  read_tensor(w, TensorRole::bias, double(OC), kStoredF32);  // the GEMM output arrives on chip
  write_tensor(w, TensorRole::dst, outs, kStoredF32);
  w.sram_read_bytes = kF32 * (outs + double(OC));
  w.sram_write_bytes = kF32 * outs;
  w.fused_with_producer = true;
  return w;
}

GemmWork fc_bwd_data_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC) {
  return gemm_work(ctx, OpKind::fc_bwd_data, Phase::backward_data, GemmShape{N, IC, OC}, false,
                   TensorRole::diff_dst, TensorRole::wei, TensorRole::diff_src);
}

GemmWork fc_bwd_weights_work(const ExecContext& ctx, int64_t N, int64_t IC, int64_t OC) {
  return gemm_work(ctx, OpKind::fc_bwd_weights, Phase::backward_weights, GemmShape{OC, IC, N}, true,
                   TensorRole::diff_dst, TensorRole::src, TensorRole::diff_wei);
}

VectorWork fc_bias_bwd_work(const ExecContext& ctx, int64_t N, int64_t OC) {
  VectorWork w = vwork(ctx, OpKind::fc_bwd_weights, Phase::backward_weights, OC);
  w.adds = double(N * OC) + double(OC);
  read_tensor(w, TensorRole::diff_dst, double(N * OC), kStoredF32);
  read_tensor(w, TensorRole::diff_bias, double(OC), kStoredF32);  // accumulated into
  write_tensor(w, TensorRole::diff_bias, double(OC), kStoredF32);
  w.sram_read_bytes = kF32 * double(N * OC + OC);
  w.sram_write_bytes = kF32 * double(OC);
  w.groups = OC;
  return w;
}

void fc_fwd(const ExecContext& ctx, const Tensor& src, const Tensor& wei, const Tensor& bias, Tensor& dst) {
  const Dims d = dims(src, wei, "fc_fwd");
  if (bias.size() != d.OC) throw UserError("fc_fwd: bias " + bias.shape_str() + " for " +
                                           std::to_string(d.OC) + " outputs");
  if (dst.rank() != 2 || dst.dim(0) != d.N || dst.dim(1) != d.OC) {
    dst = Tensor({d.N, d.OC});
  }
  run_gemm(ctx, fc_fwd_work(ctx, d.N, d.IC, d.OC), MatView{src.data(), d.IC, false},
           MatView{wei.data(), d.IC, true}, dst.data());
  float* y = dst.data();
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t o = 0; o < d.OC; ++o) y[n * d.OC + o] += bias[o];

  ctx.emit(fc_bias_fwd_work(ctx, d.N, d.OC));
}

void fc_bwd_data(const ExecContext& ctx, const Tensor& diff_dst, const Tensor& wei, Tensor& diff_src) {
  if (diff_dst.rank() != 2 || wei.rank() != 2 || diff_dst.dim(1) != wei.dim(0))
    throw UserError("fc_bwd_data: diff_dst " + diff_dst.shape_str() + " vs wei " + wei.shape_str());
  const int64_t N = diff_dst.dim(0), OC = wei.dim(0), IC = wei.dim(1);
  if (diff_src.size() != N * IC || diff_src.rank() < 2 || diff_src.dim(0) != N) diff_src = Tensor({N, IC});
  run_gemm(ctx, fc_bwd_data_work(ctx, N, IC, OC), MatView{diff_dst.data(), OC, false},
           MatView{wei.data(), IC, false}, diff_src.data());
}

void fc_bwd_weights(const ExecContext& ctx, const Tensor& src, const Tensor& diff_dst, Tensor& diff_wei,
                    Tensor& diff_bias) {
  if (src.rank() < 2 || diff_dst.rank() != 2 || diff_dst.dim(0) != src.dim(0))
    throw UserError("fc_bwd_weights: src " + src.shape_str() + " vs diff_dst " + diff_dst.shape_str());
  const int64_t N = src.dim(0), IC = src.size() / N, OC = diff_dst.dim(1);
  if (diff_wei.rank() != 2 || diff_wei.dim(0) != OC || diff_wei.dim(1) != IC) {
    diff_wei = Tensor({OC, IC});
    diff_wei.zero();
  }
  if (diff_bias.size() != OC) {
    diff_bias = Tensor({OC});
    diff_bias.zero();
  }
  Tensor tmp({OC, IC});
  run_gemm(ctx, fc_bwd_weights_work(ctx, N, IC, OC), MatView{diff_dst.data(), OC, true},
           MatView{src.data(), IC, false}, tmp.data());
  for (int64_t i = 0; i < OC * IC; ++i) diff_wei[i] = diff_wei[i] + tmp[i];

  // diff_bias[o] += sum over n of diff_dst[n, o], lane-partitioned in n order.
  const int L = lanes(ctx);
  std::vector<float> col(static_cast<size_t>(N));
  for (int64_t o = 0; o < OC; ++o) {
    for (int64_t n = 0; n < N; ++n) col[n] = diff_dst[n * OC + o];
    vu::LaneSum s(L);
    s.add(col.data(), N);
    diff_bias[o] += s.total();
  }
  ctx.emit(fc_bias_bwd_work(ctx, N, OC));
}

}  // namespace st
