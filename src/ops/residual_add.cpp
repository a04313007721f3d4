#include "src/ops/residual_add.h"

#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {
VectorWork add_work_of(const ExecContext& ctx, OpKind k, Phase p, int64_t n) {
  VectorWork w = vwork(ctx, k, p, n);
  w.adds = double(n);
  w.dram_read_bytes = 2 * kF32 * n;
  w.dram_write_bytes = kF32 * n;
  w.sram_read_bytes = 2 * kF32 * n;
  w.sram_write_bytes = kF32 * n;
  return w;
}
}  // namespace

VectorWork add_fwd_work(const ExecContext& ctx, int64_t n, bool producer_on_chip) {
  VectorWork w = add_work_of(ctx, OpKind::add_fwd, Phase::forward, n);
  w.producer_read_bytes = kF32 * n;  // src0: the main branch's BN output
  w.fused_with_producer = producer_on_chip;
  return w;
}

VectorWork add_bwd_work(const ExecContext& ctx, int64_t n) {
  return add_work_of(ctx, OpKind::add_bwd, Phase::backward_data, n);
}

void add_fwd(const ExecContext& ctx, const Tensor& src0, const Tensor& src1, Tensor& dst,
             bool producer_on_chip) {
  require_same(src0, src1, "add_fwd: src0 vs src1");
  ensure_like(dst, src0);
  const int64_t n = src0.size();
  const float* a = src0.data();
  const float* b = src1.data();
  float* d = dst.data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) d[i] = a[i] + b[i];
  ctx.emit(add_fwd_work(ctx, n, producer_on_chip));
}

void add_bwd(const ExecContext& ctx, const Tensor& diff_dst, Tensor& diff_src) {
  require_same(diff_dst, diff_src, "add_bwd: diff_dst vs diff_src");
  const int64_t n = diff_dst.size();
  const float* g = diff_dst.data();
  float* d = diff_src.data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) d[i] = d[i] + g[i];
  ctx.emit(add_bwd_work(ctx, n));
}

}  // namespace st
