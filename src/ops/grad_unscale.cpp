#include "src/ops/grad_unscale.h"

#include <cmath>

#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

VectorWork grad_unscale_work(const ExecContext& ctx, int64_t n) {
  VectorWork work = vwork(ctx, OpKind::grad_unscale, Phase::update, n);
  work.muls = double(n);
  work.cmps = double(n);
  read_tensor(work, TensorRole::diff_wei, double(n), kStoredF32);
  write_tensor(work, TensorRole::diff_wei, double(n), kStoredF32);
  work.sram_read_bytes = kF32 * double(n);
  work.sram_write_bytes = kF32 * double(n);
  return work;
}

bool grad_unscale(const ExecContext& ctx, Tensor& diff_wei, float inv_scale) {
  const int64_t n = diff_wei.size();
  float* g = diff_wei.data();
  bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float u = g[i] * inv_scale;
    g[i] = u;
    finite = finite && std::isfinite(u);
  }
  ctx.emit(grad_unscale_work(ctx, n));
  return finite;
}

}  // namespace st
