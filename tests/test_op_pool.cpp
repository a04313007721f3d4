// Max and average pooling (incl. global average) against oneDNN pooling fwd / bwd, fp64 finite
// differences, thread-count independence and the described work.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "src/ops/pool.h"
#include "tests/util/compare.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

struct Case {
  int64_t mb, ic, ih, iw;
  PoolDesc d;
  std::string name() const {
    const char* a = d.alg == PoolAlg::max ? "max" : d.alg == PoolAlg::avg_exclude_padding ? "avg_np" : "avg_p";
    return fmt::format("{}_mb{}ic{}ih{}iw{}kh{}kw{}sh{}sw{}ph{}pw{}", a, mb, ic, ih, iw, d.kh, d.kw,
                       d.sh, d.sw, d.ph, d.pw);
  }
};

std::vector<Case> cases() {
  const int64_t shapes[][4] = {{2, 3, 7, 9}, {3, 5, 8, 8}, {1, 2, 5, 5}, {4, 16, 32, 32}, {2, 4, 13, 11}};
  const int geo[][6] = {{3, 3, 2, 2, 1, 1}, {2, 2, 2, 2, 0, 0}, {3, 3, 1, 1, 1, 1}, {3, 2, 2, 1, 1, 0},
                        {1, 1, 2, 2, 0, 0}};
  std::vector<Case> v;
  for (auto alg : {PoolAlg::max, PoolAlg::avg_exclude_padding, PoolAlg::avg_include_padding})
    for (auto& s : shapes)
      for (auto& g : geo) v.push_back({s[0], s[1], s[2], s[3], {g[0], g[1], g[2], g[3], g[4], g[5], alg}});
  for (auto& s : shapes) {  // global average pooling
    Tensor t({s[0], s[1], s[2], s[3]});
    v.push_back({s[0], s[1], s[2], s[3], global_avg_pool_desc(t)});
  }
  v.push_back({2, 64, 8, 8, {8, 8, 1, 1, 0, 0, PoolAlg::avg_exclude_padding}});  // ResNet-20's
  return v;
}

algorithm dnnl_alg(PoolAlg a) {
  switch (a) {
    case PoolAlg::max: return algorithm::pooling_max;
    case PoolAlg::avg_exclude_padding: return algorithm::pooling_avg_exclude_padding;
    case PoolAlg::avg_include_padding: return algorithm::pooling_avg_include_padding;
  }
  return algorithm::pooling_max;
}

struct Ref {
  Tensor dst, diff_src;
};

Ref onednn_pool(const Case& c, const Tensor& src, const Tensor& diff_dst) {
  const auto& d = c.d;
  int64_t oh = pool_out_dim(c.ih, d.kh, d.sh, d.ph), ow = pool_out_dim(c.iw, d.kw, d.sw, d.pw);
  Ref r{Tensor({c.mb, c.ic, oh, ow}), Tensor({c.mb, c.ic, c.ih, c.iw})};
  auto smd = plain_md(src), dmd = plain_md(r.dst);
  memory::dims st{d.sh, d.sw}, k{d.kh, d.kw}, p{d.ph, d.pw};
  auto fpd = dnnl::pooling_forward::primitive_desc(
      {prop_kind::forward_training, dnnl_alg(d.alg), smd, dmd, st, k, p, p}, dnnl_env().eng);
  memory ws = new_mem(fpd.workspace_desc());
  run(dnnl::pooling_forward(fpd), {{DNNL_ARG_SRC, as_mem(src)}, {DNNL_ARG_DST, as_mem(r.dst)},
                                   {DNNL_ARG_WORKSPACE, ws}});
  auto bpd = dnnl::pooling_backward::primitive_desc({dnnl_alg(d.alg), smd, dmd, st, k, p, p},
                                                    dnnl_env().eng, fpd);
  run(dnnl::pooling_backward(bpd), {{DNNL_ARG_DIFF_DST, as_mem(diff_dst)},
                                    {DNNL_ARG_DIFF_SRC, as_mem(r.diff_src)}, {DNNL_ARG_WORKSPACE, ws}});
  return r;
}

// Distinct small integers (a shuffled ramp): no ties, so the argmax is unique and every sum exact.
void fill_distinct(Tensor& t, std::mt19937_64& rng) {
  std::vector<float> v(static_cast<size_t>(t.size()));
  std::iota(v.begin(), v.end(), -float(t.size() / 2));
  std::shuffle(v.begin(), v.end(), rng);
  std::copy(v.begin(), v.end(), t.data());
}

TEST(Pool, AgainstOneDNN) {
  std::mt19937_64 rng(21);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, "pool"};
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name());
    Tensor src({c.mb, c.ic, c.ih, c.iw});
    fill_distinct(src, rng);
    Tensor dst;
    PoolWorkspace ws;
    pool_fwd(ctx, c.d, src, dst, &ws);
    Tensor dd(dst.dims());
    fill_int(dd, rng, -8, 8);
    Tensor ds({c.mb, c.ic, c.ih, c.iw});
    pool_bwd(ctx, c.d, dd, &ws, ds);
    Ref r = onednn_pool(c, src, dd);
    // Max: a selection and integer sums, bitwise. Average: exact integer window sums, then one
    // division; oneDNN may multiply by a reciprocal instead, which differs by <= 1 ulp, hence
    // rtol 2^-23 (bitwise when the divisor is a power of two, checked separately below).
    const bool is_max = c.d.alg == PoolAlg::max;
    CompareOptions o = is_max ? CompareOptions{.exact = true} : CompareOptions{.rtol = 0x1p-23};
    o.min_nonzero_fraction = 0.2;
    EXPECT_TRUE(compare_arrays(dst.data(), r.dst.data(), dst.size(), o, "fwd"));
    CompareOptions ob = o;
    ob.min_nonzero_fraction = is_max ? 0.1 : 0.2;  // max bwd is sparse by nature (local maxima)
    // Average backward adds up to ceil(k/s)^2 (<= 9 here) rounded quotients |q| <= 8 per element, in
    // output order (ours) vs oneDNN's order: each add may round differently, by <= ulp(9 * 8) / 2,
    // and cancellation can leave that as an absolute error: atol 9 * 2^-20 (a few ulp of 72).
    if (!is_max) ob.atol = 9 * 0x1p-20;
    EXPECT_TRUE(compare_arrays(ds.data(), r.diff_src.data(), ds.size(), ob, "bwd"));
  }
}

TEST(Pool, TiesPickTheFirstMaximumLikeOneDNN) {
  std::mt19937_64 rng(22);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Case c{3, 4, 9, 9, {3, 3, 2, 2, 1, 1, PoolAlg::max}};
  Tensor src({3, 4, 9, 9});
  fill_int(src, rng, 0, 2);  // many ties
  Tensor dst;
  PoolWorkspace ws;
  pool_fwd(ctx, c.d, src, dst, &ws);
  Tensor dd(dst.dims()), ds({3, 4, 9, 9});
  fill_int(dd, rng, 1, 9);
  pool_bwd(ctx, c.d, dd, &ws, ds);
  Ref r = onednn_pool(c, src, dd);
  EXPECT_TRUE(compare_arrays(ds.data(), r.diff_src.data(), ds.size(), {.exact = true, .min_nonzero_fraction = 0.1}, "bwd ties"));
}

TEST(Pool, GlobalAveragePowerOfTwoIsBitwise) {
  std::mt19937_64 rng(23);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({4, 64, 8, 8});
  fill_real(src, rng, -1, 1);  // random reals: the sum order is ours, so tolerance on the sum...
  Tensor dst;
  PoolDesc d = global_avg_pool_desc(src);
  pool_fwd(ctx, d, src, dst);
  // ...but with integer inputs the sum is exact and /64 is exact: bitwise.
  fill_int(src, rng, -50, 50);
  pool_fwd(ctx, d, src, dst);
  Tensor dd(dst.dims());
  fill_int(dd, rng, -64, 64);
  Tensor ds({4, 64, 8, 8});
  pool_bwd(ctx, d, dd, nullptr, ds);
  Ref r = onednn_pool({4, 64, 8, 8, d}, src, dd);
  EXPECT_TRUE(compare_arrays(dst.data(), r.dst.data(), dst.size(), {.exact = true}, "gap fwd"));
  EXPECT_TRUE(compare_arrays(ds.data(), r.diff_src.data(), ds.size(), {.exact = true}, "gap bwd"));
}

// fp64 reference pooling of one plane set, for finite differences.
double pool_loss64(const Case& c, const std::vector<double>& x, const Tensor& w) {
  const auto& d = c.d;
  int64_t OH = pool_out_dim(c.ih, d.kh, d.sh, d.ph), OW = pool_out_dim(c.iw, d.kw, d.sw, d.pw);
  double loss = 0;
  for (int64_t pl = 0; pl < c.mb * c.ic; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double m = -1e300, s = 0;
        int cnt = 0;
        for (int kh = 0; kh < d.kh; ++kh)
          for (int kw = 0; kw < d.kw; ++kw) {
            int64_t h = oh * d.sh - d.ph + kh, q = ow * d.sw - d.pw + kw;
            if (h < 0 || h >= c.ih || q < 0 || q >= c.iw) continue;
            double v = x[size_t((pl * c.ih + h) * c.iw + q)];
            m = std::max(m, v);
            s += v;
            ++cnt;
          }
        double y = d.alg == PoolAlg::max ? m
                   : d.alg == PoolAlg::avg_exclude_padding ? s / cnt : s / (d.kh * d.kw);
        loss += double(w[(pl * OH + oh) * OW + ow]) * y;
      }
  return loss;
}

TEST(Pool, FiniteDifferences) {
  std::mt19937_64 rng(24);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  for (auto alg : {PoolAlg::max, PoolAlg::avg_exclude_padding, PoolAlg::avg_include_padding}) {
    Case c{2, 2, 5, 6, {3, 3, 2, 2, 1, 1, alg}};
    SCOPED_TRACE(c.name());
    Tensor src({2, 2, 5, 6});
    fill_distinct(src, rng);  // values 1 apart: the FD step never crosses a max kink
    for (int64_t i = 0; i < src.size(); ++i) src[i] *= 0.25f;
    Tensor dst;
    PoolWorkspace ws;
    pool_fwd(ctx, c.d, src, dst, &ws);
    Tensor w(dst.dims()), ds({2, 2, 5, 6});
    fill_real(w, rng, -1, 1);
    pool_bwd(ctx, c.d, w, &ws, ds);
    auto f = [&](const std::vector<double>& x) { return pool_loss64(c, x, w); };
    // fp32 gradients are sums of up to 4 cancelling terms |w / 9| <= 0.11 (rounding ~1e-8 absolute)
    // that can leave results ~1e-4: relative 1e-4 with atol 1e-5 (observed 3.2e-5).
    EXPECT_LT(grad_rel_err(ds, fd_grad(f, to_f64(src), 1e-3), 1e-5), 1e-4);
  }
}

TEST(Pool, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(25);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({8, 16, 32, 32});
  fill_real(src, rng, -1, 1);
  for (auto alg : {PoolAlg::max, PoolAlg::avg_exclude_padding}) {
    PoolDesc d{3, 3, 2, 2, 1, 1, alg};
    Tensor out[2], grad[2];
    for (int t = 1; t <= 2; ++t)
      with_threads(t, [&] {
        PoolWorkspace ws;
        pool_fwd(ctx, d, src, out[t - 1], &ws);
        Tensor dd = out[t - 1];
        grad[t - 1] = Tensor({8, 16, 32, 32});
        pool_bwd(ctx, d, dd, &ws, grad[t - 1]);
      });
    EXPECT_TRUE(bitwise_equal(out[0], out[1]));
    EXPECT_TRUE(bitwise_equal(grad[0], grad[1]));
  }
}

TEST(Pool, DescribesItsWork) {
  const Spec spec = test_spec();
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "pool"};
  Tensor src({3, 5, 7, 9});
  src.fill(1);
  Tensor dst, ds({3, 5, 7, 9});
  PoolWorkspace ws;
  PoolDesc mx{2, 2, 2, 2, 0, 0, PoolAlg::max};  // 7x9 -> 3x4, windows all full
  pool_fwd(ctx, mx, src, dst, &ws);
  pool_bwd(ctx, mx, dst, &ws, ds);
  PoolDesc gap = global_avg_pool_desc(src);
  pool_fwd(ctx, gap, src, dst);
  ASSERT_EQ(sink.vectors.size(), 3u);
  const auto& f = sink.vectors[0];
  EXPECT_EQ(f.tag.kind, OpKind::maxpool_fwd);
  EXPECT_EQ(f.elements, 3 * 5 * 3 * 4);
  EXPECT_EQ(f.cmps, 3.0 * 5 * 3 * 4 * 3);  // 4 elements per window, 3 compares
  EXPECT_GE(f.dram_read_bytes, 4.0 * src.size());
  EXPECT_EQ(sink.vectors[1].tag.kind, OpKind::maxpool_bwd);
  EXPECT_GE(sink.vectors[1].dram_write_bytes, 4.0 * src.size());
  const auto& g = sink.vectors[2];
  EXPECT_EQ(g.tag.kind, OpKind::avgpool_fwd);
  EXPECT_EQ(g.adds, double(src.size()));
  EXPECT_EQ(g.divs, 15.0);
}

TEST(Pool, RejectsImpossibleGeometry) {
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor src({1, 1, 4, 4}), dst;
  EXPECT_THROW(pool_fwd(ctx, PoolDesc{3, 3, 1, 1, 3, 0, PoolAlg::max}, src, dst), UserError);
  EXPECT_THROW(pool_fwd(ctx, PoolDesc{7, 7, 1, 1, 1, 1, PoolAlg::max}, src, dst), UserError);
  EXPECT_THROW(pool_fwd(ctx, PoolDesc{2, 2, 0, 1, 0, 0, PoolAlg::max}, src, dst), UserError);
}

}  // namespace
