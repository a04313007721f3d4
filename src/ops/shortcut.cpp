#include "src/ops/shortcut.h"

#include "src/ops/storage.h"

namespace st {

VectorWork shortcut_a_fwd_work(const ExecContext& ctx, int64_t n, int64_t c_in, int64_t c_out, int64_t h_out,
                               int64_t w_out) {
  VectorWork w;
  w.tag = Tag{ctx.layer, OpKind::shortcut_fwd, Phase::forward};
  w.elements = n * c_out * h_out * w_out;
  // The strided gather reads a subset of src.
  read_tensor(w, TensorRole::src, double(n * c_in * h_out * w_out), kStoredF32, false, /*partial=*/true);
  write_tensor(w, TensorRole::dst, double(w.elements), kStoredF32);
  return w;
}

VectorWork shortcut_a_bwd_work(const ExecContext& ctx, int64_t n, int64_t c_in, int64_t h_in, int64_t w_in,
                               int64_t h_out, int64_t w_out) {
  VectorWork w;
  w.tag = Tag{ctx.layer, OpKind::shortcut_bwd, Phase::backward_data};
  w.elements = n * c_in * h_in * w_in;
  // Only the first c_in channels of diff_dst flow back (the zero-padded ones have no source).
  read_tensor(w, TensorRole::diff_dst, double(n * c_in * h_out * w_out), kStoredF32, false, /*partial=*/true);
  write_tensor(w, TensorRole::diff_src, double(w.elements), kStoredF32);
  return w;
}

void shortcut_a_fwd(const ExecContext& ctx, int stride, int64_t c_out, int64_t h_out, int64_t w_out,
                    const Tensor& src, Tensor& dst) {
  const int64_t N = src.dim(0);
  if (!(dst.rank() == 4 && dst.dim(0) == N && dst.dim(1) == c_out && dst.dim(2) == h_out && dst.dim(3) == w_out))
    dst = Tensor({N, c_out, h_out, w_out});
  dst.zero();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < src.dim(1); ++c)
      for (int64_t y = 0; y < h_out; ++y)
        for (int64_t x = 0; x < w_out; ++x) dst.at(n, c, y, x) = src.at(n, c, y * stride, x * stride);
  ctx.emit(shortcut_a_fwd_work(ctx, N, src.dim(1), c_out, h_out, w_out));
}

void shortcut_a_bwd(const ExecContext& ctx, int stride, const Tensor& diff_dst, const Tensor& src, Tensor& diff_src) {
  if (!diff_src.same_shape(src)) diff_src = Tensor({src.dim(0), src.dim(1), src.dim(2), src.dim(3)});
  diff_src.zero();
  for (int64_t n = 0; n < src.dim(0); ++n)
    for (int64_t c = 0; c < src.dim(1); ++c)
      for (int64_t y = 0; y < diff_dst.dim(2); ++y)
        for (int64_t x = 0; x < diff_dst.dim(3); ++x)
          diff_src.at(n, c, y * stride, x * stride) = diff_dst.at(n, c, y, x);
  ctx.emit(shortcut_a_bwd_work(ctx, src.dim(0), src.dim(1), src.dim(2), src.dim(3), diff_dst.dim(2), diff_dst.dim(3)));
}

}  // namespace st
