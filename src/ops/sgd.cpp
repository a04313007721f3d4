#include "src/ops/sgd.h"

#include <cmath>

#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

VectorWork sgd_update_work(const ExecContext& ctx, int64_t n, bool gemm_operand) {
  VectorWork work = vwork(ctx, OpKind::sgd_update, Phase::update, n);
  work.fmas = 3.0 * n;
  read_tensor(work, TensorRole::wei, double(n), kStoredF32);
  read_tensor(work, TensorRole::diff_wei, double(n), kStoredF32);
  read_tensor(work, TensorRole::velocity, double(n), kStoredF32);
  write_tensor(work, TensorRole::wei, double(n), kStoredF32);
  write_tensor(work, TensorRole::velocity, double(n), kStoredF32);
  if (gemm_operand && weight_copy(*ctx.spec)) {
    // The array-format copy the GEMMs read (src/ops/storage.h), cast by the DMA on its way out.
    const int eb = gemm_weight_bytes(*ctx.spec);
    write_tensor(work, TensorRole::wei_copy, double(n), eb);
    work.casts = double(n);
  }
  work.sram_read_bytes = 3 * kF32 * n;
  work.sram_write_bytes = 2 * kF32 * n;
  return work;
}

void sgd_update(const ExecContext& ctx, const SgdParams& p, Tensor& wei, const Tensor& diff_wei,
                Tensor& velocity, bool gemm_operand) {
  require_same(wei, diff_wei, "sgd_update: wei vs diff_wei");
  ensure_like(velocity, wei);
  const int64_t n = wei.size();
  float* w = wei.data();
  float* v = velocity.data();
  const float* g = diff_wei.data();
  const float wd = p.weight_decay, mu = p.momentum, neg_lr = -p.lr;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float gi = std::fma(wd, w[i], g[i]);
    float vi = std::fma(mu, v[i], gi);
    v[i] = vi;
    w[i] = std::fma(neg_lr, vi, w[i]);
  }
  ctx.emit(sgd_update_work(ctx, n, gemm_operand));
}

}  // namespace st
