// Fully connected layer on the systolic array against oneDNN inner_product (fwd, bwd_data,
// bwd_weights incl. bias), fp64 finite differences, gradient accumulation, threads, GemmWork.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/formats.h"
#include "src/ops/fc.h"
#include "tests/util/compare.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;
using dnnl::prop_kind;

namespace {

struct Shape {
  int64_t mb, ic, oc;
  std::string name() const { return fmt::format("mb{}ic{}oc{}", mb, ic, oc); }
};
const Shape kShapes[] = {{3, 5, 7}, {64, 64, 10}, {1, 1, 1}, {17, 33, 9}, {2, 16, 100}, {40, 70, 35}};

struct Ref {
  Tensor dst, diff_src, diff_wei, diff_bias;
};

Ref onednn_fc(const Tensor& src, const Tensor& wei, const Tensor& bias, const Tensor& dd) {
  const int64_t N = src.dim(0), IC = wei.dim(1), OC = wei.dim(0);
  Ref r{Tensor({N, OC}), Tensor({N, IC}), Tensor({OC, IC}), Tensor({OC})};
  using D = memory::dims;
  memory::desc smd = plain_md(D{N, IC}), wmd = plain_md(D{OC, IC}), bmd = plain_md(D{OC}),
               dmd = plain_md(D{N, OC});
  auto& e = dnnl_env();
  auto fpd = dnnl::inner_product_forward::primitive_desc(
      {prop_kind::forward_training, smd, wmd, bmd, dmd}, e.eng);
  memory src_m(smd, e.eng, const_cast<float*>(src.data()));
  run(dnnl::inner_product_forward(fpd), {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, as_mem(wei)},
                                         {DNNL_ARG_BIAS, as_mem(bias)}, {DNNL_ARG_DST, as_mem(r.dst)}});
  auto dpd = dnnl::inner_product_backward_data::primitive_desc({smd, wmd, dmd}, e.eng, fpd);
  run(dnnl::inner_product_backward_data(dpd), {{DNNL_ARG_DIFF_DST, as_mem(dd)},
      {DNNL_ARG_WEIGHTS, as_mem(wei)}, {DNNL_ARG_DIFF_SRC, as_mem(r.diff_src)}});
  auto wpd = dnnl::inner_product_backward_weights::primitive_desc({smd, wmd, bmd, dmd}, e.eng, fpd);
  run(dnnl::inner_product_backward_weights(wpd),
      {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_DIFF_DST, as_mem(dd)}, {DNNL_ARG_DIFF_WEIGHTS, as_mem(r.diff_wei)},
       {DNNL_ARG_DIFF_BIAS, as_mem(r.diff_bias)}});
  return r;
}

struct Ours {
  Tensor dst, diff_src, diff_wei, diff_bias;
};
Ours our_fc(const ExecContext& ctx, const Tensor& src, const Tensor& wei, const Tensor& bias, const Tensor& dd) {
  Ours o;
  fc_fwd(ctx, src, wei, bias, o.dst);
  fc_bwd_data(ctx, dd, wei, o.diff_src);
  fc_bwd_weights(ctx, src, dd, o.diff_wei, o.diff_bias);
  return o;
}

void round_tensor(Tensor& t, Format f) {
  for (int64_t i = 0; i < t.size(); ++i) t[i] = round_to(f, t[i]);
}

TEST(FullyConnected, ExactInputsBitwiseAgainstOneDNN) {
  // Small integers are exact in bf16 and every product and sum is an exact small integer, so the
  // accumulation order cannot matter: bitwise for every array format and dataflow.
  std::mt19937_64 rng(41);
  for (Format f : {Format::bf16, Format::fp16, Format::fp32})
    for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
      Spec spec = test_spec(32, f);
      spec.array.dataflow = df;
      spec.array.rows = 8;
      spec.array.cols = 4;
      ExecContext ctx{&spec, nullptr, "fc"};
      for (const Shape& s : kShapes) {
        SCOPED_TRACE(s.name() + "_" + std::string(to_string(f)) + "_" + std::string(to_string(df)));
        Tensor src({s.mb, s.ic}), wei({s.oc, s.ic}), bias({s.oc}), dd({s.mb, s.oc});
        fill_int(src, rng, -4, 4);
        fill_int(wei, rng, -4, 4);
        fill_int(bias, rng, -8, 8);
        fill_int(dd, rng, -4, 4);
        Ours o = our_fc(ctx, src, wei, bias, dd);
        Ref r = onednn_fc(src, wei, bias, dd);
        CompareOptions ex{.exact = true, .min_nonzero_fraction = s.mb * s.oc < 4 ? 0.0 : 0.3};
        EXPECT_TRUE(compare_arrays(o.dst.data(), r.dst.data(), o.dst.size(), ex, "dst"));
        EXPECT_TRUE(compare_arrays(o.diff_src.data(), r.diff_src.data(), o.diff_src.size(), ex, "diff_src"));
        EXPECT_TRUE(compare_arrays(o.diff_wei.data(), r.diff_wei.data(), o.diff_wei.size(), ex, "diff_wei"));
        EXPECT_TRUE(compare_arrays(o.diff_bias.data(), r.diff_bias.data(), o.diff_bias.size(), ex, "diff_bias"));
      }
    }
}

TEST(FullyConnected, RandomInputsAgainstOneDNNOnRoundedOperands) {
  // Random reals: give oneDNN the operands already rounded to the array's format; what remains is
  // the accumulation order (fp32, K terms of magnitude <= 1): atol 2^-22 * K.
  std::mt19937_64 rng(42);
  for (Format f : {Format::bf16, Format::fp32}) {
    Spec spec = test_spec(32, f);
    ExecContext ctx{&spec, nullptr, "fc"};
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(s.name() + "_" + std::string(to_string(f)));
      Tensor src({s.mb, s.ic}), wei({s.oc, s.ic}), bias({s.oc}), dd({s.mb, s.oc});
      fill_real(src, rng, -1, 1);
      fill_real(wei, rng, -1, 1);
      fill_real(bias, rng, -1, 1);
      fill_real(dd, rng, -1, 1);
      Ours o = our_fc(ctx, src, wei, bias, dd);
      Tensor src_r = src, wei_r = wei, dd_r = dd;
      round_tensor(src_r, f), round_tensor(wei_r, f), round_tensor(dd_r, f);
      Ref r = onednn_fc(src_r, wei_r, bias, dd_r);
      auto tol = [](int64_t K) { return CompareOptions{.rtol = 1e-6, .atol = 0x1p-22 * double(K)}; };
      EXPECT_TRUE(compare_arrays(o.dst.data(), r.dst.data(), o.dst.size(), tol(s.ic), "dst"));
      EXPECT_TRUE(compare_arrays(o.diff_src.data(), r.diff_src.data(), o.diff_src.size(), tol(s.oc), "diff_src"));
      EXPECT_TRUE(compare_arrays(o.diff_wei.data(), r.diff_wei.data(), o.diff_wei.size(), tol(s.mb), "diff_wei"));
      // diff_bias sums the UNrounded fp32 diff_dst on the vector unit.
      Ref rb = onednn_fc(src_r, wei_r, bias, dd);
      EXPECT_TRUE(compare_arrays(o.diff_bias.data(), rb.diff_bias.data(), o.diff_bias.size(), tol(s.mb), "diff_bias"));
    }
  }
}

TEST(FullyConnected, FourDimensionalSrcIsFlattened) {
  std::mt19937_64 rng(43);
  Spec spec = test_spec(32, Format::fp32);
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src4({8, 64, 1, 1}), src2({8, 64}), wei({10, 64}), bias({10}), d4, d2;
  fill_real(src4, rng, -1, 1);
  std::copy(src4.data(), src4.data() + src4.size(), src2.data());
  fill_real(wei, rng, -1, 1);
  bias.zero();
  fc_fwd(ctx, src4, wei, bias, d4);
  fc_fwd(ctx, src2, wei, bias, d2);
  EXPECT_TRUE(bitwise_equal(d4, d2));
}

TEST(FullyConnected, FiniteDifferences) {
  std::mt19937_64 rng(44);
  Spec spec = test_spec(4, Format::fp32);
  ExecContext ctx{&spec, nullptr, ""};
  const int64_t N = 3, IC = 4, OC = 5;
  Tensor src({N, IC}), wei({OC, IC}), bias({OC}), w({N, OC});
  fill_real(src, rng, -1, 1);
  fill_real(wei, rng, -1, 1);
  fill_real(bias, rng, -1, 1);
  fill_real(w, rng, -1, 1);
  Ours o = our_fc(ctx, src, wei, bias, w);
  auto loss = [&](const std::vector<double>& x, const std::vector<double>& W, const std::vector<double>& b) {
    double l = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < OC; ++k) {
        double y = b[size_t(k)];
        for (int64_t i = 0; i < IC; ++i) y += x[size_t(n * IC + i)] * W[size_t(k * IC + i)];
        l += double(w[n * OC + k]) * y;
      }
    return l;
  };
  auto x = to_f64(src), W = to_f64(wei), b = to_f64(bias);
  EXPECT_LT(grad_rel_err(o.diff_src, fd_grad([&](auto& v) { return loss(v, W, b); }, x, 1e-4), 1e-5), 1e-5);
  EXPECT_LT(grad_rel_err(o.diff_wei, fd_grad([&](auto& v) { return loss(x, v, b); }, W, 1e-4), 1e-5), 1e-5);
  EXPECT_LT(grad_rel_err(o.diff_bias, fd_grad([&](auto& v) { return loss(x, W, v); }, b, 1e-4), 1e-5), 1e-5);
}

TEST(FullyConnected, WeightGradientsAccumulate) {
  std::mt19937_64 rng(45);
  Spec spec = test_spec(32, Format::bf16);
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({6, 9}), dd({6, 5}), dw, db;
  fill_int(src, rng, -3, 3);
  fill_int(dd, rng, -3, 3);
  fc_bwd_weights(ctx, src, dd, dw, db);
  Tensor dw1 = dw, db1 = db;
  fc_bwd_weights(ctx, src, dd, dw, db);
  for (int64_t i = 0; i < dw.size(); ++i) EXPECT_EQ(dw[i], 2 * dw1[i]);
  for (int64_t i = 0; i < db.size(); ++i) EXPECT_EQ(db[i], 2 * db1[i]);
}

TEST(FullyConnected, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(46);
  Spec spec = test_spec(32, Format::bf16);
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({64, 64}), wei({10, 64}), bias({10}), dd({64, 10});
  fill_real(src, rng, -1, 1), fill_real(wei, rng, -1, 1), fill_real(bias, rng, -1, 1), fill_real(dd, rng, -1, 1);
  Ours o[2];
  for (int t = 1; t <= 2; ++t) with_threads(t, [&] { o[t - 1] = our_fc(ctx, src, wei, bias, dd); });
  EXPECT_TRUE(bitwise_equal(o[0].dst, o[1].dst));
  EXPECT_TRUE(bitwise_equal(o[0].diff_src, o[1].diff_src));
  EXPECT_TRUE(bitwise_equal(o[0].diff_wei, o[1].diff_wei));
  EXPECT_TRUE(bitwise_equal(o[0].diff_bias, o[1].diff_bias));
}

TEST(FullyConnected, DescribesGemmsOnTheArray) {
  Spec spec = test_spec(32, Format::bf16);
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "fc"};
  Tensor src({64, 64}), wei({10, 64}), bias({10}), dd({64, 10});
  src.fill(1), wei.fill(1), bias.fill(0), dd.fill(1);
  our_fc(ctx, src, wei, bias, dd);
  ASSERT_EQ(sink.gemms.size(), 3u);
  EXPECT_EQ(sink.gemms[0].tag.kind, OpKind::fc_fwd);
  EXPECT_EQ(sink.gemms[0].shape.M, 64);
  EXPECT_EQ(sink.gemms[0].shape.N, 10);
  EXPECT_EQ(sink.gemms[0].shape.K, 64);
  EXPECT_EQ(sink.gemms[1].tag.kind, OpKind::fc_bwd_data);
  EXPECT_EQ(sink.gemms[1].shape.N, 64);
  EXPECT_EQ(sink.gemms[1].shape.K, 10);
  EXPECT_EQ(sink.gemms[2].tag.kind, OpKind::fc_bwd_weights);
  EXPECT_TRUE(sink.gemms[2].accumulate_into_c);
  EXPECT_EQ(sink.gemms[2].shape.K, 64);
  for (const auto& g : sink.gemms) {
    EXPECT_EQ(g.useful_macs, double(g.shape.M * g.shape.N * g.shape.K));
    EXPECT_EQ(g.a.elem_bytes, 2);
    EXPECT_EQ(g.c.elem_bytes, 4);
  }
  ASSERT_EQ(sink.vectors.size(), 2u);  // bias add, bias gradient
  EXPECT_EQ(sink.vectors[0].adds, 640.0);
  EXPECT_EQ(sink.vectors[1].tag.kind, OpKind::fc_bwd_weights);
}

TEST(FullyConnected, RejectsInt8AndBadShapes) {
  Spec spec = test_spec(32, Format::int8);
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({2, 3}), wei({4, 3}), bias({4}), dst;
  src.fill(1), wei.fill(1), bias.fill(1);
  EXPECT_THROW(fc_fwd(ctx, src, wei, bias, dst), UserError);
  Spec ok = test_spec();
  ExecContext c2{&ok, nullptr, ""};
  Tensor bad({4, 5});
  EXPECT_THROW(fc_fwd(c2, src, bad, bias, dst), UserError);
}

}  // namespace
