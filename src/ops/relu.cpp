#include "src/ops/relu.h"

#include "kernels/formats.h"
#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

VectorWork relu_fwd_work(const ExecContext& ctx, int64_t n, bool producer_on_chip) {
  VectorWork w = vwork(ctx, OpKind::relu_fwd, Phase::forward, n);
  w.cmps = double(n);
  read_tensor(w, TensorRole::src, double(n), kStoredF32, /*producer=*/true);
  write_tensor(w, TensorRole::dst, double(n), kStoredF32);
  w.sram_read_bytes = kF32 * n;
  w.sram_write_bytes = kF32 * n;
  w.fused_with_producer = producer_on_chip;
  return w;
}

VectorWork relu_bwd_work(const ExecContext& ctx, int64_t n) {
  VectorWork w = vwork(ctx, OpKind::relu_bwd, Phase::backward_data, n);
  w.cmps = double(n);
  read_tensor(w, TensorRole::src, double(n), kStoredF32);
  read_tensor(w, TensorRole::diff_dst, double(n), kStoredF32);
  write_tensor(w, TensorRole::diff_src, double(n), kStoredF32);
  w.sram_read_bytes = 2 * kF32 * n;
  w.sram_write_bytes = kF32 * n;
  return w;
}

void relu_fwd(const ExecContext& ctx, const Tensor& src, Tensor& dst, bool producer_on_chip) {
  ensure_like(dst, src);
  const int64_t n = src.size();
  const float* s = src.data();
  float* d = dst.data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) d[i] = s[i] > 0.0f ? s[i] : (s[i] != s[i] ? canonicalize_nan(s[i]) : 0.0f);

  ctx.emit(relu_fwd_work(ctx, n, producer_on_chip));
}

void relu_bwd(const ExecContext& ctx, const Tensor& src, const Tensor& diff_dst, Tensor& diff_src) {
  require_same(src, diff_dst, "relu_bwd: src vs diff_dst");
  ensure_like(diff_src, src);
  const int64_t n = src.size();
  const float* s = src.data();
  const float* dd = diff_dst.data();
  float* ds = diff_src.data();
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) ds[i] = s[i] > 0.0f ? dd[i] : 0.0f;

  ctx.emit(relu_bwd_work(ctx, n));
}

}  // namespace st
