// ReLU and residual add against oneDNN (eltwise_relu fwd/bwd, binary_add, sum), fp64 finite
// differences, thread-count independence and the work they describe.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "tests/util/compare.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

struct Shape {
  int64_t mb, ic, ih, iw;
  std::string name() const { return fmt::format("mb{}ic{}ih{}iw{}", mb, ic, ih, iw); }
};
const Shape kShapes[] = {{1, 1, 1, 1}, {3, 5, 7, 9}, {2, 16, 32, 32}, {5, 3, 13, 11},
                         {64, 16, 32, 32}, {4, 64, 8, 8}, {7, 1, 1, 33}};

// oneDNN's relu writes s * alpha = -0 for negative inputs; ours writes +0. Compare values, so map
// every zero to +0 on both sides first (x + 0.0f does that and nothing else).
void plus_zero(Tensor& t) {
  for (int64_t i = 0; i < t.size(); ++i) t[i] = t[i] + 0.0f;
}

TEST(Relu, FwdBwdBitwiseAgainstOneDNN) {
  std::mt19937_64 rng(11);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, "relu"};
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(s.name());
    Tensor src({s.mb, s.ic, s.ih, s.iw}), dd({s.mb, s.ic, s.ih, s.iw});
    fill_real(src, rng, -4, 4);
    fill_real(dd, rng, -2, 2);
    Tensor dst, ds;
    relu_fwd(ctx, src, dst);
    relu_bwd(ctx, src, dd, ds);

    auto md = plain_md(src);
    auto fpd = dnnl::eltwise_forward::primitive_desc(
        {prop_kind::forward_training, algorithm::eltwise_relu, md, 0.f, 0.f}, dnnl_env().eng);
    Tensor want_dst({s.mb, s.ic, s.ih, s.iw}), want_ds({s.mb, s.ic, s.ih, s.iw});
    run(dnnl::eltwise_forward(fpd), {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_DST, as_mem(want_dst)}});
    auto bpd = dnnl::eltwise_backward::primitive_desc(
        {algorithm::eltwise_relu, md, md, 0.f, 0.f}, dnnl_env().eng, fpd);
    run(dnnl::eltwise_backward(bpd), {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_DIFF_DST, as_mem(dd)},
                                      {DNNL_ARG_DIFF_SRC, as_mem(want_ds)}});
    plus_zero(want_dst);
    plus_zero(want_ds);
    CompareOptions exact{.exact = true, .min_nonzero_fraction = 0.3};
    if (src.size() < 4) exact.min_nonzero_fraction = 0;
    EXPECT_TRUE(compare_arrays(dst.data(), want_dst.data(), dst.size(), exact, "relu fwd"));
    EXPECT_TRUE(compare_arrays(ds.data(), want_ds.data(), ds.size(), exact, "relu bwd"));
  }
}

TEST(Relu, SpecialValues) {
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({4});
  src[0] = -0.0f;
  src[1] = -std::numeric_limits<float>::infinity();
  src[2] = std::numeric_limits<float>::quiet_NaN();
  src[3] = std::numeric_limits<float>::denorm_min();
  Tensor dst;
  relu_fwd(ctx, src, dst);
  EXPECT_EQ(f32_bits(dst[0]), 0u);  // +0, not -0
  EXPECT_EQ(f32_bits(dst[1]), 0u);
  EXPECT_EQ(f32_bits(dst[2]), kCanonicalNaN);  // NaN propagates (divergence stays visible)
  EXPECT_EQ(dst[3], std::numeric_limits<float>::denorm_min());
}

TEST(Relu, FiniteDifferences) {
  std::mt19937_64 rng(12);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({2, 3, 3, 4}), w({2, 3, 3, 4});
  fill_real(src, rng, -1, 1);
  for (int64_t i = 0; i < src.size(); ++i)  // keep away from the kink at 0
    if (std::fabs(src[i]) < 0.05f) src[i] = 0.5f;
  fill_real(w, rng, -1, 1);
  Tensor ds;
  relu_bwd(ctx, src, w, ds);
  auto loss = [&](const std::vector<double>& x) {
    double l = 0;
    for (size_t i = 0; i < x.size(); ++i) l += double(w[int64_t(i)]) * std::max(x[i], 0.0);
    return l;
  };
  EXPECT_LT(grad_rel_err(ds, fd_grad(loss, to_f64(src), 1e-4), 1e-6), 1e-6);
}

TEST(ResidualAdd, FwdBitwiseAgainstBinaryAddAndBwdAgainstSum) {
  std::mt19937_64 rng(13);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, "add"};
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(s.name());
    Tensor a({s.mb, s.ic, s.ih, s.iw}), b({s.mb, s.ic, s.ih, s.iw});
    fill_real(a, rng, -3, 3);
    fill_real(b, rng, -3, 3);
    Tensor dst;
    add_fwd(ctx, a, b, dst);
    Tensor want({s.mb, s.ic, s.ih, s.iw});
    auto md = plain_md(a);
    auto pd = dnnl::binary::primitive_desc({algorithm::binary_add, md, md, md}, dnnl_env().eng);
    run(dnnl::binary(pd), {{DNNL_ARG_SRC_0, as_mem(a)}, {DNNL_ARG_SRC_1, as_mem(b)},
                           {DNNL_ARG_DST, as_mem(want)}});
    // One IEEE add per element: bitwise, random inputs included.
    EXPECT_TRUE(compare_arrays(dst.data(), want.data(), dst.size(), {.exact = true}, "add fwd"));

    // Fan-out: diff_src (the other branch's gradient, here `a`) += diff_dst (`b`) == sum(a, b).
    Tensor acc = a;
    add_bwd(ctx, b, acc);
    Tensor want_sum({s.mb, s.ic, s.ih, s.iw});
    auto spd = dnnl::sum::primitive_desc(md, {1.0f, 1.0f}, {md, md}, dnnl_env().eng);
    run(dnnl::sum(spd), {{DNNL_ARG_MULTIPLE_SRC, as_mem(a)}, {DNNL_ARG_MULTIPLE_SRC + 1, as_mem(b)},
                         {DNNL_ARG_DST, as_mem(want_sum)}});
    EXPECT_TRUE(compare_arrays(acc.data(), want_sum.data(), acc.size(), {.exact = true}, "add bwd"));
  }
}

TEST(ResidualAdd, FiniteDifferences) {
  // L = sum w * (x0 + x1): dL/dx0 = dL/dx1 = w; add_bwd adds w into a zeroed gradient.
  std::mt19937_64 rng(14);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor x0({1, 2, 3, 3}), x1({1, 2, 3, 3}), w({1, 2, 3, 3});
  fill_real(x0, rng, -1, 1);
  fill_real(x1, rng, -1, 1);
  fill_real(w, rng, -1, 1);
  Tensor g0({1, 2, 3, 3}), g1({1, 2, 3, 3});
  g0.zero();
  g1.zero();
  add_bwd(ctx, w, g0);
  add_bwd(ctx, w, g1);
  auto loss0 = [&](const std::vector<double>& x) {
    double l = 0;
    for (size_t i = 0; i < x.size(); ++i) l += double(w[int64_t(i)]) * (x[i] + double(x1[int64_t(i)]));
    return l;
  };
  auto loss1 = [&](const std::vector<double>& x) {
    double l = 0;
    for (size_t i = 0; i < x.size(); ++i) l += double(w[int64_t(i)]) * (double(x0[int64_t(i)]) + x[i]);
    return l;
  };
  EXPECT_LT(grad_rel_err(g0, fd_grad(loss0, to_f64(x0), 1e-4), 1e-6), 1e-6);
  EXPECT_LT(grad_rel_err(g1, fd_grad(loss1, to_f64(x1), 1e-4), 1e-6), 1e-6);
}

TEST(ReluAdd, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(15);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({8, 16, 32, 32}), dd({8, 16, 32, 32});
  fill_real(src, rng, -1, 1);
  fill_real(dd, rng, -1, 1);
  Tensor r[2][3];
  for (int t = 1; t <= 2; ++t)
    with_threads(t, [&] {
      relu_fwd(ctx, src, r[t - 1][0]);
      relu_bwd(ctx, src, dd, r[t - 1][1]);
      add_fwd(ctx, src, dd, r[t - 1][2]);
    });
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(bitwise_equal(r[0][k], r[1][k])) << k;
}

TEST(ReluAdd, DescribesItsWork) {
  const Spec spec = test_spec();
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "stage1.relu"};
  Tensor src({3, 5, 7, 9}), dd({3, 5, 7, 9}), dst, ds;
  src.fill(1);
  dd.fill(1);
  relu_fwd(ctx, src, dst, true);
  relu_bwd(ctx, src, dd, ds);
  add_fwd(ctx, src, dd, dst);
  add_bwd(ctx, dd, ds);
  ASSERT_EQ(sink.vectors.size(), 4u);
  const double n = double(src.size());
  EXPECT_EQ(sink.vectors[0].tag.kind, OpKind::relu_fwd);
  EXPECT_EQ(sink.vectors[0].tag.layer, "stage1.relu");
  EXPECT_TRUE(sink.vectors[0].fused_with_producer);
  EXPECT_EQ(sink.vectors[0].cmps, n);
  EXPECT_EQ(sink.vectors[1].tag.kind, OpKind::relu_bwd);
  EXPECT_EQ(sink.vectors[2].tag.kind, OpKind::add_fwd);
  EXPECT_EQ(sink.vectors[2].adds, n);
  EXPECT_EQ(sink.vectors[3].tag.kind, OpKind::add_bwd);
  for (const auto& w : sink.vectors) {
    EXPECT_EQ(w.elements, src.size());
    EXPECT_GE(w.dram_read_bytes, 4 * n);   // at least its input once
    EXPECT_GE(w.dram_write_bytes, 4 * n);  // its output once
  }
}

}  // namespace
