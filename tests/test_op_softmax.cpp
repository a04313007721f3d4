// Softmax cross-entropy against oneDNN softmax / logsoftmax (fwd, bwd), fp64 finite differences,
// special cases, threads and the described work.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/ops/softmax_xent.h"
#include "tests/util/compare.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;
using dnnl::prop_kind;

namespace {

struct Shape {
  int64_t mb, ic;
  std::string name() const { return fmt::format("mb{}ic{}", mb, ic); }
};
const Shape kShapes[] = {{64, 10}, {3, 5}, {1, 1}, {7, 1000}, {5, 33}, {128, 100}};

std::vector<int32_t> labels(std::mt19937_64& rng, int64_t N, int64_t K) {
  std::uniform_int_distribution<int32_t> d(0, int32_t(K - 1));
  std::vector<int32_t> v(static_cast<size_t>(N));
  for (auto& l : v) l = d(rng);
  return v;
}

TEST(SoftmaxXent, AgainstOneDNN) {
  std::mt19937_64 rng(51);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, "loss"};
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(s.name());
    Tensor x({s.mb, s.ic});
    fill_real(x, rng, -8, 8);
    auto lab = labels(rng, s.mb, s.ic);
    Tensor probs, dx;
    const float loss = softmax_xent_fwd(ctx, x, lab, probs);
    softmax_xent_bwd(ctx, probs, lab, dx);

    auto md = plain_md(x);
    auto& e = dnnl_env();
    Tensor p_ref({s.mb, s.ic}), lsm({s.mb, s.ic}), dlsm({s.mb, s.ic}), dd({s.mb, s.ic});
    auto spd = dnnl::softmax_forward::primitive_desc({prop_kind::forward_training, md, 1}, e.eng);
    run(dnnl::softmax_forward(spd), {{DNNL_ARG_SRC, as_mem(x)}, {DNNL_ARG_DST, as_mem(p_ref)}});
    auto lpd = dnnl::logsoftmax_forward::primitive_desc({prop_kind::forward_training, md, 1}, e.eng);
    run(dnnl::logsoftmax_forward(lpd), {{DNNL_ARG_SRC, as_mem(x)}, {DNNL_ARG_DST, as_mem(lsm)}});
    // loss = -mean_n logsoftmax[n, label]; its gradient w.r.t. logsoftmax is -onehot / N.
    dd.zero();
    double want_loss = 0;
    for (int64_t n = 0; n < s.mb; ++n) {
      want_loss -= lsm[n * s.ic + lab[n]];
      dd[n * s.ic + lab[n]] = -1.0f / float(s.mb);
    }
    want_loss /= double(s.mb);
    auto bpd = dnnl::logsoftmax_backward::primitive_desc({md, md, 1}, e.eng, lpd);
    run(dnnl::logsoftmax_backward(bpd), {{DNNL_ARG_DST, as_mem(lsm)}, {DNNL_ARG_DIFF_DST, as_mem(dd)},
                                         {DNNL_ARG_DIFF_SRC, as_mem(dlsm)}});
    // exp within 2 ulp, a correctly rounded division, a reassociated sum of K <= 1000 terms in
    // [0, 1]: probabilities agree to ~4 ulp relative -> rtol 1e-6 (atol for tiny probabilities).
    const CompareOptions pt{.rtol = 1e-6, .atol = 1e-9, .min_nonzero_fraction = 0.5};
    EXPECT_TRUE(compare_arrays(probs.data(), p_ref.data(), probs.size(), pt, "probs"));
    // Loss: mean of log(sum) - (x_l - m) with |terms| <= ~25: 1e-5 relative.
    EXPECT_NEAR(loss, want_loss, 1e-5 * std::max(1.0, std::fabs(want_loss)));
    // diff_src = (p - onehot) / N. oneDNN's logsoftmax backward rebuilds p = exp(logsoftmax) from
    // the ROUNDED fp32 logsoftmax (|lsm| up to ~23 here, so an absolute error up to ~1e-6 in the
    // exponent, i.e. ~1e-6 relative in p, amplified where p - onehot cancels): the reference is the
    // less accurate side; rtol 2e-5, atol 4e-6 / N (mb1ic1: oneDNN gives 1.4e-6 for an exact 0).
    const CompareOptions gt{.rtol = 2e-5, .atol = 4e-6 / double(s.mb),
                            .min_nonzero_fraction = s.ic == 1 ? 0.0 : 0.5};
    EXPECT_TRUE(compare_arrays(dx.data(), dlsm.data(), dx.size(), gt, "diff_src"));
  }
}

TEST(SoftmaxXent, FiniteDifferences) {
  std::mt19937_64 rng(52);
  const Spec spec = test_spec(4);
  ExecContext ctx{&spec, nullptr, ""};
  const int64_t N = 3, K = 5;
  Tensor x({N, K});
  fill_real(x, rng, -3, 3);
  auto lab = labels(rng, N, K);
  Tensor probs, dx;
  softmax_xent_fwd(ctx, x, lab, probs);
  softmax_xent_bwd(ctx, probs, lab, dx);
  auto loss = [&](const std::vector<double>& v) {
    double l = 0;
    for (int64_t n = 0; n < N; ++n) {
      double m = -1e300, s = 0;
      for (int64_t j = 0; j < K; ++j) m = std::max(m, v[size_t(n * K + j)]);
      for (int64_t j = 0; j < K; ++j) s += std::exp(v[size_t(n * K + j)] - m);
      l += std::log(s) - (v[size_t(n * K + lab[size_t(n)])] - m);
    }
    return l / double(N);
  };
  EXPECT_LT(grad_rel_err(dx, fd_grad(loss, to_f64(x), 1e-5), 1e-6), 1e-5);
}

TEST(SoftmaxXent, SpecialCases) {
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  // Uniform logits: loss = log K exactly up to the log's rounding.
  Tensor x({4, 10});
  x.fill(3.0f);
  Tensor probs;
  float loss = softmax_xent_fwd(ctx, x, {0, 3, 9, 5}, probs);
  EXPECT_NEAR(loss, std::log(10.0), 3e-7);
  // Huge logits do not overflow (the max is subtracted first).
  Tensor y({1, 3});
  y[0] = 1000.0f, y[1] = -1000.0f, y[2] = 999.0f;
  loss = softmax_xent_fwd(ctx, y, {2}, probs);
  EXPECT_NEAR(loss, std::log(1 + std::exp(-1.0)) + 1.0, 1e-6);
  EXPECT_EQ(probs[1], 0.0f);
  EXPECT_THROW(softmax_xent_fwd(ctx, y, {3}, probs), UserError);
  EXPECT_THROW(softmax_xent_fwd(ctx, y, {0, 1}, probs), UserError);
}

TEST(SoftmaxXent, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(53);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor x({256, 100});
  fill_real(x, rng, -10, 10);
  auto lab = labels(rng, 256, 100);
  Tensor p[2], d[2];
  float l[2];
  for (int t = 1; t <= 2; ++t)
    with_threads(t, [&] {
      l[t - 1] = softmax_xent_fwd(ctx, x, lab, p[t - 1]);
      softmax_xent_bwd(ctx, p[t - 1], lab, d[t - 1]);
    });
  EXPECT_EQ(f32_bits(l[0]), f32_bits(l[1]));
  EXPECT_TRUE(bitwise_equal(p[0], p[1]));
  EXPECT_TRUE(bitwise_equal(d[0], d[1]));
}

TEST(SoftmaxXent, DescribesItsWork) {
  const Spec spec = test_spec();
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "loss"};
  Tensor x({64, 10}), probs, dx;
  x.fill(1);
  std::vector<int32_t> lab(64, 1);
  softmax_xent_fwd(ctx, x, lab, probs);
  softmax_xent_bwd(ctx, probs, lab, dx);
  ASSERT_EQ(sink.vectors.size(), 2u);
  EXPECT_EQ(sink.vectors[0].tag.kind, OpKind::loss_fwd);
  EXPECT_EQ(sink.vectors[0].exps, 640.0 + 64);
  EXPECT_EQ(sink.vectors[0].elements, 640);
  EXPECT_EQ(sink.vectors[1].tag.kind, OpKind::loss_bwd);
  EXPECT_GE(sink.vectors[1].dram_write_bytes, 640.0 * 4);
}

}  // namespace
