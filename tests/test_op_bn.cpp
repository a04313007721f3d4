// Batch normalization (training forward, inference forward, backward) against oneDNN's
// batch_normalization with use_scale | use_shift, fp64 finite differences, the running statistics
// against an fp64 formula, thread-count independence and the described work.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/ops/batchnorm.h"
#include "tests/util/compare.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;
using dnnl::prop_kind;
using nf = dnnl::normalization_flags;

namespace {

struct Shape {
  int64_t mb, ic, ih, iw;
  std::string name() const { return fmt::format("mb{}ic{}ih{}iw{}", mb, ic, ih, iw); }
  Tensor make() const { return Tensor({mb, ic, ih, iw}); }
};
const Shape kShapes[] = {{3, 5, 7, 9}, {2, 16, 8, 8}, {64, 16, 32, 32}, {5, 7, 3, 3},
                         {8, 10, 1, 1}, {4, 64, 8, 8}, {1, 3, 2, 5}};
constexpr float kEps = 1e-5f;

struct DnnlBn {
  Tensor dst, mean, var, diff_src, diff_scale, diff_shift;
};

// oneDNN training forward, then backward from ITS statistics with the given diff_dst.
DnnlBn onednn_bn(const Tensor& src, const Tensor& gamma, const Tensor& beta, const Tensor& dd) {
  const int64_t C = src.dim(1);
  DnnlBn r{Tensor(src.dims()), Tensor({C}), Tensor({C}), Tensor(src.dims()), Tensor({C}), Tensor({C})};
  auto md = plain_md(src);
  auto flags = nf::use_scale | nf::use_shift;
  auto fpd = dnnl::batch_normalization_forward::primitive_desc(
      {prop_kind::forward_training, md, kEps, flags}, dnnl_env().eng);
  run(dnnl::batch_normalization_forward(fpd),
      {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_DST, as_mem(r.dst)}, {DNNL_ARG_SCALE, as_mem(gamma)},
       {DNNL_ARG_SHIFT, as_mem(beta)}, {DNNL_ARG_MEAN, as_mem(r.mean)}, {DNNL_ARG_VARIANCE, as_mem(r.var)}});
  auto bpd = dnnl::batch_normalization_backward::primitive_desc(
      {prop_kind::backward, md, md, kEps, flags}, dnnl_env().eng, fpd);
  run(dnnl::batch_normalization_backward(bpd),
      {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_MEAN, as_mem(r.mean)}, {DNNL_ARG_VARIANCE, as_mem(r.var)},
       {DNNL_ARG_DIFF_DST, as_mem(dd)}, {DNNL_ARG_SCALE, as_mem(gamma)}, {DNNL_ARG_SHIFT, as_mem(beta)},
       {DNNL_ARG_DIFF_SRC, as_mem(r.diff_src)}, {DNNL_ARG_DIFF_SCALE, as_mem(r.diff_scale)},
       {DNNL_ARG_DIFF_SHIFT, as_mem(r.diff_shift)}});
  return r;
}

Tensor onednn_bn_inference(const Tensor& src, const Tensor& gamma, const Tensor& beta,
                           const Tensor& mean, const Tensor& var) {
  Tensor dst(src.dims());
  auto md = plain_md(src);
  auto fpd = dnnl::batch_normalization_forward::primitive_desc(
      {prop_kind::forward_inference, md, kEps, nf::use_scale | nf::use_shift | nf::use_global_stats},
      dnnl_env().eng);
  run(dnnl::batch_normalization_forward(fpd),
      {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_DST, as_mem(dst)}, {DNNL_ARG_SCALE, as_mem(gamma)},
       {DNNL_ARG_SHIFT, as_mem(beta)}, {DNNL_ARG_MEAN, as_mem(mean)}, {DNNL_ARG_VARIANCE, as_mem(var)}});
  return dst;
}

Tensor rank_of(const Shape& s) {
  if (s.ih == 1 && s.iw == 1) return Tensor({s.mb, s.ic});  // (N, C) input, as after global pooling
  return s.make();
}

TEST(BatchNorm, AgainstOneDNN) {
  std::mt19937_64 rng(31);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, "bn"};
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(s.name());
    Tensor src = rank_of(s), dd = rank_of(s), gamma({s.ic}), beta({s.ic});
    fill_real(src, rng, -2, 3);
    fill_real(dd, rng, -1, 1);
    fill_real(gamma, rng, 0.5f, 2);
    fill_real(beta, rng, -1, 1);
    Tensor dst, rm({s.ic}), rv({s.ic}), ds, dg({s.ic}), db({s.ic});
    rm.zero();
    rv.fill(1);
    dg.zero();
    db.zero();
    BnSaved saved;
    BnParams p{kEps, 0.1f};
    bn_fwd_training(ctx, p, src, gamma, beta, dst, saved, rm, rv);
    DnnlBn r = onednn_bn(src, gamma, beta, dd);
    // Reduction orders differ (ours: lane-partitioned; oneDNN: its own blocking): the sums agree to
    // ~sqrt(M) * 2^-24 relative; normalized outputs are O(1) -> atol/rtol 2e-5.
    const CompareOptions stat{.rtol = 2e-5, .atol = 2e-6, .min_nonzero_fraction = 0};
    EXPECT_TRUE(compare_arrays(saved.mean.data(), r.mean.data(), s.ic, stat, "mean"));
    EXPECT_TRUE(compare_arrays(saved.var.data(), r.var.data(), s.ic, stat, "var"));
    const CompareOptions out{.rtol = 2e-5, .atol = 2e-5};
    EXPECT_TRUE(compare_arrays(dst.data(), r.dst.data(), dst.size(), out, "dst"));

    // Backward from oneDNN's statistics so only the backward formulas are compared.
    BnSaved theirs{r.mean, r.var};
    bn_bwd(ctx, p, src, dd, gamma, theirs, ds, dg, db);
    // diff_src is a difference of O(1) terms scaled by gamma * inv: 1e-4 absolute covers the
    // reassociated sums over M (up to 65536) elements.
    EXPECT_TRUE(compare_arrays(ds.data(), r.diff_src.data(), ds.size(), {.rtol = 1e-4, .atol = 1e-4}, "diff_src"));
    const CompareOptions sums{.rtol = 1e-4, .atol = 1e-4 * std::sqrt(double(src.size() / s.ic)),
                              .min_nonzero_fraction = 0};
    EXPECT_TRUE(compare_arrays(dg.data(), r.diff_scale.data(), s.ic, sums, "diff_gamma"));
    EXPECT_TRUE(compare_arrays(db.data(), r.diff_shift.data(), s.ic, sums, "diff_beta"));

    Tensor inf;
    bn_fwd_inference(ctx, p, src, gamma, beta, r.mean, r.var, inf);
    Tensor want = onednn_bn_inference(src, gamma, beta, r.mean, r.var);
    EXPECT_TRUE(compare_arrays(inf.data(), want.data(), inf.size(), {.rtol = 1e-6, .atol = 1e-6}, "inference"));
  }
}

TEST(BatchNorm, ExactInputsGiveExactStatistics) {
  // Integers with M = N*H*W a power of two: every sum, the mean and the variance are exact in any
  // order, so they must equal oneDNN's bit for bit.
  std::mt19937_64 rng(32);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({4, 6, 4, 8}), gamma({6}), beta({6}), dd({4, 6, 4, 8});
  fill_int(src, rng, -8, 8);
  fill_int(dd, rng, -4, 4);
  gamma.fill(1);
  beta.fill(0);
  Tensor dst, rm({6}), rv({6}), ds, dg({6}), db({6});
  rm.zero(), rv.zero(), dg.zero(), db.zero();
  BnSaved saved;
  bn_fwd_training(ctx, {kEps, 0.1f}, src, gamma, beta, dst, saved, rm, rv);
  DnnlBn r = onednn_bn(src, gamma, beta, dd);
  EXPECT_TRUE(compare_arrays(saved.mean.data(), r.mean.data(), 6, {.exact = true, .min_nonzero_fraction = 0}, "mean"));
  EXPECT_TRUE(compare_arrays(saved.var.data(), r.var.data(), 6, {.exact = true}, "var"));
  bn_bwd(ctx, {kEps, 0.1f}, src, dd, gamma, saved, ds, dg, db);
  EXPECT_TRUE(compare_arrays(db.data(), r.diff_shift.data(), 6, {.exact = true, .min_nonzero_fraction = 0}, "diff_beta"));
}

// fp64 training-mode BN of a tiny tensor: loss = sum w * y.
double bn_loss64(const std::vector<double>& x, const std::vector<double>& g, const std::vector<double>& b,
                 const Tensor& w, int64_t N, int64_t C, int64_t HW) {
  double loss = 0;
  const double M = double(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) mean += x[size_t((n * C + c) * HW + i)];
    mean /= M;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) var += std::pow(x[size_t((n * C + c) * HW + i)] - mean, 2);
    var /= M;
    const double inv = 1 / std::sqrt(var + kEps);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        size_t k = size_t((n * C + c) * HW + i);
        loss += double(w[int64_t(k)]) * (g[size_t(c)] * (x[k] - mean) * inv + b[size_t(c)]);
      }
  }
  return loss;
}

TEST(BatchNorm, FiniteDifferences) {
  std::mt19937_64 rng(33);
  const Spec spec = test_spec(4);
  ExecContext ctx{&spec, nullptr, ""};
  const int64_t N = 2, C = 3, H = 2, W = 3;
  Tensor src({N, C, H, W}), w({N, C, H, W}), gamma({C}), beta({C});
  fill_real(src, rng, -2, 2);
  fill_real(w, rng, -1, 1);
  fill_real(gamma, rng, 0.5f, 1.5f);
  fill_real(beta, rng, -1, 1);
  Tensor dst, rm({C}), rv({C}), ds, dg({C}), db({C});
  dg.zero();
  db.zero();
  BnSaved saved;
  bn_fwd_training(ctx, {kEps, 0.1f}, src, gamma, beta, dst, saved, rm, rv);
  bn_bwd(ctx, {kEps, 0.1f}, src, w, gamma, saved, ds, dg, db);
  auto x64 = to_f64(src), g64 = to_f64(gamma), b64 = to_f64(beta);
  auto fx = [&](const std::vector<double>& x) { return bn_loss64(x, g64, b64, w, N, C, H * W); };
  auto fg = [&](const std::vector<double>& g) { return bn_loss64(x64, g, b64, w, N, C, H * W); };
  auto fb = [&](const std::vector<double>& b) { return bn_loss64(x64, g64, b, w, N, C, H * W); };
  // fp32 backward vs fp64 central differences (h = 1e-5, truncation ~h^2): 1e-4 relative.
  EXPECT_LT(grad_rel_err(ds, fd_grad(fx, x64, 1e-5), 1e-3), 1e-4);
  EXPECT_LT(grad_rel_err(dg, fd_grad(fg, g64, 1e-5), 1e-3), 1e-4);
  EXPECT_LT(grad_rel_err(db, fd_grad(fb, b64, 1e-5), 1e-3), 1e-4);
  // diff_gamma / diff_beta accumulate: a second backward doubles them exactly.
  Tensor dg1 = dg, db1 = db;
  bn_bwd(ctx, {kEps, 0.1f}, src, w, gamma, saved, ds, dg, db);
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_EQ(dg[c], dg1[c] * 2);
    EXPECT_EQ(db[c], db1[c] * 2);
  }
}

TEST(BatchNorm, RunningStatisticsFollowTheFp64Formula) {
  std::mt19937_64 rng(34);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({4, 3, 5, 5}), gamma({3}), beta({3});
  fill_real(src, rng, -1, 4);
  gamma.fill(1);
  beta.fill(0);
  Tensor dst, rm({3}), rv({3});
  rm.fill(0.5f);
  rv.fill(2.0f);
  BnSaved saved;
  const float mom = 0.1f;
  bn_fwd_training(ctx, {kEps, mom}, src, gamma, beta, dst, saved, rm, rv);
  const double M = 100;
  for (int64_t c = 0; c < 3; ++c) {
    double mean = 0, var = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < 25; ++i) mean += src[(n * 3 + c) * 25 + i];
    mean /= M;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < 25; ++i) var += std::pow(src[(n * 3 + c) * 25 + i] - mean, 2);
    const double want_rm = (1 - mom) * 0.5 + mom * mean;
    const double want_rv = (1 - mom) * 2.0 + mom * var / (M - 1);  // unbiased, PyTorch convention
    EXPECT_NEAR(rm[c], want_rm, 1e-6);
    EXPECT_NEAR(rv[c], want_rv, 1e-6);
    EXPECT_NEAR(saved.var[c], var / M, 1e-6);
  }
}

TEST(BatchNorm, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(35);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({16, 16, 16, 16}), dd({16, 16, 16, 16}), gamma({16}), beta({16});
  fill_real(src, rng, -2, 2);
  fill_real(dd, rng, -1, 1);
  fill_real(gamma, rng, 0.5f, 2);
  fill_real(beta, rng, -1, 1);
  Tensor out[2][5];
  for (int t = 1; t <= 2; ++t)
    with_threads(t, [&] {
      Tensor* o = out[t - 1];
      Tensor rm({16}), rv({16});
      rm.zero();
      rv.fill(1);
      o[3] = Tensor({16});
      o[4] = Tensor({16});
      o[3].zero();
      o[4].zero();
      BnSaved saved;
      bn_fwd_training(ctx, {}, src, gamma, beta, o[0], saved, rm, rv);
      bn_bwd(ctx, {}, src, dd, gamma, saved, o[1], o[3], o[4]);
      o[2] = rv;
    });
  for (int k = 0; k < 5; ++k) EXPECT_TRUE(bitwise_equal(out[0][k], out[1][k])) << k;
}

TEST(BatchNorm, LanesDefineTheBits) {
  // Different lane counts are different machines: the statistics may differ in the last bits, but
  // each one is reproducible. (Evidence that `lanes` really sets the order.)
  std::mt19937_64 rng(36);
  Tensor src({8, 2, 16, 16}), gamma({2}), beta({2});
  fill_real(src, rng, -1000, 1000);
  gamma.fill(1);
  beta.fill(0);
  Tensor m[2];
  int idx = 0;
  for (int lanes : {1, 32}) {
    const Spec spec = test_spec(lanes);
    ExecContext ctx{&spec, nullptr, ""};
    Tensor dst, rm({2}), rv({2});
    BnSaved saved;
    bn_fwd_training(ctx, {}, src, gamma, beta, dst, saved, rm, rv);
    m[idx++] = saved.var;
  }
  EXPECT_FALSE(bitwise_equal(m[0], m[1]));
}

TEST(BatchNorm, DescribesItsWork) {
  const Spec spec = test_spec();
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "bn1"};
  Tensor src({3, 5, 7, 9}), gamma({5}), beta({5}), dst, rm({5}), rv({5}), ds, dg({5}), db({5});
  src.fill(1), gamma.fill(1), beta.fill(0);
  BnSaved saved;
  bn_fwd_training(ctx, {}, src, gamma, beta, dst, saved, rm, rv, true);
  bn_bwd(ctx, {}, src, src, gamma, saved, ds, dg, db);
  bn_fwd_inference(ctx, {}, src, gamma, beta, rm, rv, dst);
  ASSERT_EQ(sink.vectors.size(), 3u);
  const double n = double(src.size());
  const auto& f = sink.vectors[0];
  EXPECT_EQ(f.tag.kind, OpKind::bn_fwd);
  EXPECT_EQ(f.passes, 3);
  EXPECT_EQ(f.groups, 5);
  EXPECT_EQ(f.rsqrts, 5.0);
  EXPECT_TRUE(f.fused_with_producer);
  EXPECT_EQ(f.producer_read_bytes, 4 * n);
  EXPECT_GE(f.dram_read_bytes, 4 * n);
  EXPECT_GE(f.dram_write_bytes, 4 * n);
  EXPECT_EQ(sink.vectors[1].tag.kind, OpKind::bn_bwd);
  EXPECT_EQ(sink.vectors[1].passes, 2);
  EXPECT_GE(sink.vectors[1].dram_read_bytes, 8 * n);
  EXPECT_EQ(sink.vectors[2].passes, 1);
}

}  // namespace
