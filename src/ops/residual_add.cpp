#include "src/ops/residual_add.h"

#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {
VectorWork add_work_of(const ExecContext& ctx, OpKind k, Phase p, int64_t n) {
  VectorWork w = vwork(ctx, k, p, n);
  w.adds = double(n);
  w.sram_read_bytes = 2 * kF32 * n;
  w.sram_write_bytes = kF32 * n;
  return w;
}
}  // namespace

VectorWork add_fwd_work(const ExecContext& ctx, int64_t n, bool producer_on_chip) {
  VectorWork w = add_work_of(ctx, OpKind::add_fwd, Phase::forward, n);
  read_tensor(w, TensorRole::src, double(n), kStoredF32, /*producer=*/true);  // the main branch's BN output
  read_tensor(w, TensorRole::src1, double(n), kStoredF32);                    // the shortcut
  write_tensor(w, TensorRole::dst, double(n), kStoredF32);
  w.fused_with_producer = producer_on_chip;
  return w;
}

VectorWork add_bwd_work(const ExecContext& ctx, int64_t n) {
  // A second gradient reaching a tensor is added into the first: diff_src += diff_dst.
  VectorWork w = add_work_of(ctx, OpKind::add_bwd, Phase::backward_data, n);
  read_tensor(w, TensorRole::diff_dst, double(n), kStoredF32);
  read_tensor(w, TensorRole::diff_src, double(n), kStoredF32);
  write_tensor(w, TensorRole::diff_src, double(n), kStoredF32);
  return w;
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
