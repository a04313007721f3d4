// SGD with momentum and weight decay: no oneDNN primitive, so an fp64 reference formula, a
// hand-computed exact case, several steps, threads and the described work.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/ops/sgd.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;

namespace {

TEST(Sgd, HandComputedExactCase) {
  // w = 1, dw = 0.5, v = 0.25, lr = 0.5, mu = 0.5, wd = 0.25 (all dyadic: every step exact):
  // g = 0.25 * 1 + 0.5 = 0.75; v = 0.5 * 0.25 + 0.75 = 0.875; w = 1 - 0.5 * 0.875 = 0.5625.
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor w({1}), g({1}), v({1});
  w[0] = 1, g[0] = 0.5f, v[0] = 0.25f;
  sgd_update(ctx, {0.5f, 0.5f, 0.25f}, w, g, v, false);
  EXPECT_EQ(v[0], 0.875f);
  EXPECT_EQ(w[0], 0.5625f);
}

TEST(Sgd, MatchesFp64FormulaOverSteps) {
  std::mt19937_64 rng(61);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  const SgdParams p{0.1f, 0.9f, 5e-4f};
  Tensor w({3, 5, 7, 9}), g({3, 5, 7, 9}), v;
  fill_real(w, rng, -1, 1);
  std::vector<double> w64 = to_f64(w), v64(w64.size(), 0.0);
  for (int step = 0; step < 5; ++step) {
    fill_real(g, rng, -1, 1);
    sgd_update(ctx, p, w, g, v, false);
    for (size_t i = 0; i < w64.size(); ++i) {
      double gi = double(g[int64_t(i)]) + double(p.weight_decay) * w64[i];
      v64[i] = double(p.momentum) * v64[i] + gi;
      w64[i] -= double(p.lr) * v64[i];
    }
  }
  // Three fp32 fmas per step (each <= 0.5 ulp), compounded over 5 steps with |v| <= ~5: 1e-6.
  for (size_t i = 0; i < w64.size(); ++i) {
    ASSERT_NEAR(w[int64_t(i)], w64[i], 1e-6) << i;
    ASSERT_NEAR(v[int64_t(i)], v64[i], 4e-6) << i;
  }
}

TEST(Sgd, ZeroGradientAndNoDecayLeavesWeights) {
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor w({100}), g({100}), v;
  for (int i = 0; i < 100; ++i) w[i] = float(i) * 0.37f - 5;
  Tensor w0 = w;
  g.zero();
  sgd_update(ctx, {0.1f, 0.9f, 0.0f}, w, g, v, false);
  EXPECT_TRUE(bitwise_equal(w, w0));
}

TEST(Sgd, SameBitsWithOneAndTwoThreads) {
  std::mt19937_64 rng(62);
  const Spec spec = test_spec();
  ExecContext ctx{&spec, nullptr, ""};
  Tensor w0({64, 64, 3, 3}), g({64, 64, 3, 3});
  fill_real(w0, rng, -1, 1);
  fill_real(g, rng, -1, 1);
  Tensor w[2], v[2];
  for (int t = 1; t <= 2; ++t)
    with_threads(t, [&] {
      w[t - 1] = w0;
      for (int s = 0; s < 3; ++s) sgd_update(ctx, {}, w[t - 1], g, v[t - 1], false);
    });
  EXPECT_TRUE(bitwise_equal(w[0], w[1]));
  EXPECT_TRUE(bitwise_equal(v[0], v[1]));
}

TEST(Sgd, DescribesItsWork) {
  const Spec spec = test_spec(32, Format::bf16);
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "conv1.wei"};
  Tensor w({16, 3, 3, 3}), g({16, 3, 3, 3}), v;
  w.fill(1), g.fill(1);
  sgd_update(ctx, {}, w, g, v, /*gemm_operand=*/false);
  ASSERT_EQ(sink.vectors.size(), 1u);
  const auto& k = sink.vectors[0];
  EXPECT_EQ(k.tag.kind, OpKind::sgd_update);
  EXPECT_EQ(k.tag.phase, Phase::update);
  EXPECT_EQ(k.fmas, 3.0 * w.size());
  EXPECT_EQ(k.dram_read_bytes, 3.0 * w.bytes());
  EXPECT_EQ(k.dram_write_bytes, 2.0 * w.bytes());
  EXPECT_EQ(k.casts, 0.0);

  // A weight the array reads: with storage.weights = "copy" (the default) and a narrower array
  // format, the update also writes the array-format copy, cast on the way out; with "master", not.
  ASSERT_EQ(spec.storage.weights, WeightStorage::copy);
  ASSERT_EQ(format_bytes(spec.array.format), 2);
  sgd_update(ctx, {}, w, g, v, /*gemm_operand=*/true);
  ASSERT_EQ(sink.vectors.size(), 2u);
  const auto& c = sink.vectors[1];
  EXPECT_EQ(c.dram_read_bytes, 3.0 * w.bytes());
  EXPECT_EQ(c.dram_write_bytes, 2.0 * w.bytes() + 2.0 * w.size());
  EXPECT_EQ(c.casts, double(w.size()));
  ASSERT_FALSE(c.tensors.empty());
  EXPECT_EQ(c.tensors.back().role, TensorRole::wei_copy);
  EXPECT_EQ(c.tensors.back().elem_bytes, 2);
  Spec master = spec;
  master.storage.weights = WeightStorage::master;
  ExecContext mctx{&master, &sink, "conv1.wei"};
  sgd_update(mctx, {}, w, g, v, /*gemm_operand=*/true);
  ASSERT_EQ(sink.vectors.size(), 3u);
  EXPECT_EQ(sink.vectors[2].dram_write_bytes, 2.0 * w.bytes());
  EXPECT_EQ(sink.vectors[2].casts, 0.0);
}

}  // namespace
