#include "src/ops/batchnorm.h"

#include <cmath>
#include <vector>

#include "kernels/vector_unit.h"
#include "src/ops/storage.h"
#include "src/ops/vector_op_util.h"

namespace st {
using namespace opdetail;

namespace {

struct Geo {
  int64_t N, C, HW;
  int64_t M() const { return N * HW; }
};

Geo geometry(const Tensor& src, const char* op) {
  if (src.rank() != 4 && src.rank() != 2)
    throw UserError(std::string(op) + ": src must be (N, C, H, W) or (N, C), got " + src.shape_str());
  return Geo{src.dim(0), src.dim(1), src.dim(2) * src.dim(3)};
}

void require_channels(const Tensor& t, int64_t C, const char* what) {
  if (t.size() != C)
    throw UserError(std::string(what) + ": expected " + std::to_string(C) + " channels, got " +
                    t.shape_str());
}

void ensure_channels(Tensor& t, int64_t C) {
  if (t.size() != C) {
    t = Tensor({C});
    t.zero();
  }
}

// dst = fma(a[c], x - m[c], b[c]) over (N, C, HW); parallel over (n, c) rows, order-free.
void normalize(const Geo& g, const float* x, const float* a, const float* m, const float* b, float* y) {
#pragma omp parallel for schedule(static) if (g.N * g.C * g.HW > kParallelMin)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    int64_t c = nc % g.C;
    const float* xs = x + nc * g.HW;
    float* ys = y + nc * g.HW;
    const float ac = a[c], mc = m[c], bc = b[c];
    for (int64_t i = 0; i < g.HW; ++i) ys[i] = std::fma(ac, xs[i] - mc, bc);
  }
}

}  // namespace

VectorWork bn_fwd_training_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups,
                                bool producer_on_chip) {
  const double n = double(n_elems), C = double(C_groups);
  VectorWork w = vwork(ctx, OpKind::bn_fwd, Phase::forward, n_elems);
  w.adds = 3 * n + 4 * C;        // sum; deviation (var pass); deviation (normalize); per channel
  w.fmas = 2 * n + 2 * C;        // squared deviations; normalize; running stats
  w.muls = 2 * C;                // gamma * inv, var * M
  w.divs = 3 * C;                // mean, var, unbiased var
  w.rsqrts = C;
  w.passes = 3;
  w.groups = C_groups;
  read_tensor(w, TensorRole::src, n, kStoredF32, /*producer=*/true);
  for (TensorRole r : {TensorRole::gamma, TensorRole::beta, TensorRole::running_mean, TensorRole::running_var})
    read_tensor(w, r, C, kStoredF32);
  write_tensor(w, TensorRole::dst, n, kStoredF32);
  for (TensorRole r : {TensorRole::mean, TensorRole::var, TensorRole::running_mean, TensorRole::running_var})
    write_tensor(w, r, C, kStoredF32);
  w.sram_read_bytes = kF32 * (3 * n + 4 * C);
  w.sram_write_bytes = kF32 * (n + 4 * C);
  w.fused_with_producer = producer_on_chip;
  return w;
}

VectorWork bn_fwd_inference_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups,
                                 bool producer_on_chip) {
  const double n = double(n_elems), C = double(C_groups);
  VectorWork w = vwork(ctx, OpKind::bn_fwd, Phase::forward, n_elems);
  w.adds = n + C;
  w.fmas = n;
  w.muls = C;
  w.rsqrts = C;
  w.groups = C_groups;
  read_tensor(w, TensorRole::src, n, kStoredF32, /*producer=*/true);
  for (TensorRole r : {TensorRole::gamma, TensorRole::beta, TensorRole::running_mean, TensorRole::running_var})
    read_tensor(w, r, C, kStoredF32);
  write_tensor(w, TensorRole::dst, n, kStoredF32);
  w.sram_read_bytes = kF32 * (n + 4 * C);
  w.sram_write_bytes = kF32 * n;
  w.fused_with_producer = producer_on_chip;
  return w;
}

VectorWork bn_folded_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups, bool with_relu) {
  const double n = double(n_elems), C = double(C_groups);
  VectorWork w = vwork(ctx, OpKind::bn_fwd, Phase::forward, n_elems);
  w.adds = n;                       // + bias
  w.cmps = with_relu ? n : 0.0;     // max(0, .)
  w.groups = C_groups;
  read_tensor(w, TensorRole::beta, C, kStoredF32);   // the folded bias, once per channel
  w.sram_read_bytes = kF32 * (n + C);
  w.sram_write_bytes = kF32 * n;
  w.fused_with_producer = true;
  return w;
}

VectorWork bn_bwd_work(const ExecContext& ctx, int64_t n_elems, int64_t C_groups) {
  const double n = double(n_elems), C = double(C_groups);
  VectorWork w = vwork(ctx, OpKind::bn_bwd, Phase::backward_data, n_elems);
  w.adds = 4 * n + 3 * C;  // pass 1: sum dy, x - mean; pass 2: x - mean, dy - c1; per channel
  w.fmas = 2 * n;          // pass 1: s_xdy; pass 2: the fma
  w.muls = n + 3 * C;      // pass 2: k * (...); per channel
  w.divs = 2 * C;
  w.rsqrts = C;
  w.passes = 2;
  w.groups = C_groups;
  read_tensor(w, TensorRole::src, n, kStoredF32);
  read_tensor(w, TensorRole::diff_dst, n, kStoredF32);
  // gamma, the saved batch statistics, and the parameter gradients accumulated into
  for (TensorRole r : {TensorRole::gamma, TensorRole::mean, TensorRole::var, TensorRole::diff_gamma,
                       TensorRole::diff_beta})
    read_tensor(w, r, C, kStoredF32);
  write_tensor(w, TensorRole::diff_src, n, kStoredF32);
  write_tensor(w, TensorRole::diff_gamma, C, kStoredF32);
  write_tensor(w, TensorRole::diff_beta, C, kStoredF32);
  w.sram_read_bytes = kF32 * (4 * n + 5 * C);
  w.sram_write_bytes = kF32 * (n + 2 * C);
  return w;
}

// Every pass over a channel reduces its M elements in the documented lane order (one channel per
// thread). With --sync-bn (BnSync) the channel sums of each pass are summed over the replicas before
// they are used and M is the global batch's; without it, or with one replica (sum = identity), the
// bits are the per-replica statistics'.
namespace {

int64_t stats_count(const BnParams& p, const Geo& g) { return g.M() * (p.sync ? p.sync->replicas() : 1); }
void sum_over_replicas(const BnParams& p, std::vector<float>& s) {
  if (p.sync) p.sync->sum(s.data(), static_cast<int64_t>(s.size()));
}

}  // namespace

void bn_fwd_training(const ExecContext& ctx, const BnParams& p, const Tensor& src,
                     const Tensor& gamma, const Tensor& beta, Tensor& dst, BnSaved& saved,
                     Tensor& running_mean, Tensor& running_var, bool producer_on_chip) {
  const Geo g = geometry(src, "bn_fwd_training");
  require_channels(gamma, g.C, "bn_fwd_training gamma");
  require_channels(beta, g.C, "bn_fwd_training beta");
  ensure_channels(running_mean, g.C);
  ensure_channels(running_var, g.C);
  ensure_channels(saved.mean, g.C);
  ensure_channels(saved.var, g.C);
  ensure_like(dst, src);
  const int L = lanes(ctx);
  const int64_t M = stats_count(p, g);
  const float Mf = float(M);
  Tensor a({g.C});  // gamma * inv per channel
  std::vector<float> s(static_cast<size_t>(g.C));

#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.C; ++c) {
    vu::LaneSum s1(L);
    for (int64_t n = 0; n < g.N; ++n) s1.add(src.data() + (n * g.C + c) * g.HW, g.HW);
    s[c] = s1.total();
  }
  sum_over_replicas(p, s);
  for (int64_t c = 0; c < g.C; ++c) saved.mean[c] = vu::div(s[c], Mf);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.C; ++c) {
    vu::LaneSum s2(L);
    for (int64_t n = 0; n < g.N; ++n) s2.add_sq_dev(src.data() + (n * g.C + c) * g.HW, saved.mean[c], g.HW);
    s[c] = s2.total();
  }
  sum_over_replicas(p, s);
  for (int64_t c = 0; c < g.C; ++c) {
    const float mean = saved.mean[c], var = vu::div(s[c], Mf);
    saved.var[c] = var;
    a[c] = gamma[c] * vu::rsqrt(var + p.eps);
    const float uvar = M > 1 ? vu::div(var * Mf, float(M - 1)) : var;
    running_mean[c] = std::fma(p.momentum, mean - running_mean[c], running_mean[c]);
    running_var[c] = std::fma(p.momentum, uvar - running_var[c], running_var[c]);
  }
  normalize(g, src.data(), a.data(), saved.mean.data(), beta.data(), dst.data());

  ctx.emit(bn_fwd_training_work(ctx, src.size(), g.C, producer_on_chip));
}

void bn_fwd_inference(const ExecContext& ctx, const BnParams& p, const Tensor& src,
                      const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                      const Tensor& running_var, Tensor& dst, bool producer_on_chip) {
  const Geo g = geometry(src, "bn_fwd_inference");
  require_channels(gamma, g.C, "bn_fwd_inference gamma");
  require_channels(beta, g.C, "bn_fwd_inference beta");
  require_channels(running_mean, g.C, "bn_fwd_inference running_mean");
  require_channels(running_var, g.C, "bn_fwd_inference running_var");
  ensure_like(dst, src);
  Tensor a({g.C});
  for (int64_t c = 0; c < g.C; ++c) a[c] = gamma[c] * vu::rsqrt(running_var[c] + p.eps);
  normalize(g, src.data(), a.data(), running_mean.data(), beta.data(), dst.data());

  ctx.emit(bn_fwd_inference_work(ctx, src.size(), g.C, producer_on_chip));
}

void bn_bwd(const ExecContext& ctx, const BnParams& p, const Tensor& src, const Tensor& diff_dst,
            const Tensor& gamma, const BnSaved& saved, Tensor& diff_src, Tensor& diff_gamma,
            Tensor& diff_beta) {
  const Geo g = geometry(src, "bn_bwd");
  require_same(src, diff_dst, "bn_bwd: src vs diff_dst");
  require_channels(gamma, g.C, "bn_bwd gamma");
  require_channels(saved.mean, g.C, "bn_bwd saved mean");
  require_channels(saved.var, g.C, "bn_bwd saved var");
  ensure_channels(diff_gamma, g.C);
  ensure_channels(diff_beta, g.C);
  ensure_like(diff_src, src);
  const int L = lanes(ctx);
  const float Mf = float(stats_count(p, g));
  Tensor c1({g.C}), c2({g.C}), k({g.C});  // per-channel constants of the second pass
  std::vector<float> s(static_cast<size_t>(2 * g.C));  // sum(dy) per channel, then sum((x - mean) * dy)

#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.C; ++c) {
    vu::LaneSum s_dy(L), s_xdy(L);
    const float mean = saved.mean[c];
    for (int64_t n = 0; n < g.N; ++n) {
      const int64_t off = (n * g.C + c) * g.HW;
      s_dy.add(diff_dst.data() + off, g.HW);
      s_xdy.add_dev_dot(src.data() + off, mean, diff_dst.data() + off, g.HW);
    }
    s[c] = s_dy.total();
    s[g.C + c] = s_xdy.total();
  }
  // The parameter gradients are this replica's (the gradient all-reduce averages them).
  for (int64_t c = 0; c < g.C; ++c) {
    diff_beta[c] += s[c];
    diff_gamma[c] += s[g.C + c] * vu::rsqrt(saved.var[c] + p.eps);
  }
  sum_over_replicas(p, s);
  for (int64_t c = 0; c < g.C; ++c) {
    const float inv = vu::rsqrt(saved.var[c] + p.eps);
    const float dg = s[g.C + c] * inv;
    c1[c] = vu::div(s[c], Mf);
    c2[c] = vu::div(dg * inv, Mf);
    k[c] = gamma[c] * inv;
  }

#pragma omp parallel for schedule(static) if (src.size() > kParallelMin)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t c = nc % g.C;
    const float* x = src.data() + nc * g.HW;
    const float* dy = diff_dst.data() + nc * g.HW;
    float* dx = diff_src.data() + nc * g.HW;
    const float mc = saved.mean[c], c1c = c1[c], c2c = c2[c], kc = k[c];
    for (int64_t i = 0; i < g.HW; ++i) dx[i] = kc * std::fma(-(x[i] - mc), c2c, dy[i] - c1c);
  }

  ctx.emit(bn_bwd_work(ctx, src.size(), g.C));
}

}  // namespace st
