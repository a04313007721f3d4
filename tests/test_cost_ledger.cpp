// Ledger (cache, aggregates) and reports (table, JSON, CSV, derived figures).
#include <gtest/gtest.h>

#include <memory>

#include "src/cost/ledger.h"
#include "src/cost/report.h"
#include "src/ops/conv.h"
#include "kernels/address_gen.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

GemmWork conv_like(const std::string& layer, int64_t M, int64_t N, int64_t K, OpKind kind) {
  GemmWork w;
  w.tag = {layer, kind, kind == OpKind::conv_fwd ? Phase::forward : Phase::backward_data};
  w.shape = {M, N, K};
  w.a = operand_desc(M, K, 2, double(M * K), 1);
  w.b = operand_desc(K, N, 2, double(K * N), 1);
  w.c = operand_desc(M, N, 4, double(M * N), 1);
  return w;
}

// Two descriptions equal in every count but read through different generators (here the same conv
// with its padding moved from the top to the bottom) are different costs: the key tells them apart.
TEST(Ledger, GeneratedOperandsAreKeyedByTheirGenerator) {
  const Spec spec = load_spec("simdit-16x16");
  ConvDesc d;
  d.N = 2, d.C = 8, d.H = d.W = 12, d.K = 8, d.R = d.S = 3, d.pt = d.pb = d.pl = d.pr = 1;
  const GemmWork w1 = conv_work(d, Direction::fwd, Lowering::bp_im2col, spec, "x")[0];
  GemmWork w2 = w1;
  ConvDesc moved = d;
  moved.pt = 0, moved.pb = 2;
  GeneratorRecipe r = *w1.a.generator;
  r.conv = moved;
  w2.a.generator = std::make_shared<const GeneratorRecipe>(r);
  EXPECT_NE(cost_key(w1), cost_key(w2));
  EXPECT_EQ(cost_key(w1), cost_key(conv_work(d, Direction::fwd, Lowering::bp_im2col, spec, "y")[0]));
  Ledger l(spec);
  l.gemm(w1);
  l.gemm(w2);
  EXPECT_EQ(l.cache_entries(), 2u);
  EXPECT_EQ(l.cache_hits(), 0u);
}

TEST(Ledger, CachesByShapeAndAggregates) {
  Ledger l(load_spec("tpu-like"));
  l.gemm(conv_like("a.conv1", 3136, 64, 576, OpKind::conv_fwd));
  l.gemm(conv_like("b.conv1", 3136, 64, 576, OpKind::conv_fwd));  // same shape, other layer
  l.gemm(conv_like("a.conv1", 3136, 576, 64, OpKind::conv_bwd_data));
  VectorWork v;
  v.tag = {"a.bn", OpKind::bn_fwd, Phase::forward};
  v.elements = 1000;
  v.adds = 2000;
  v.dram_read_bytes = 4000;
  v.dram_write_bytes = 4000;
  l.vector(v);
  EXPECT_EQ(l.records().size(), 4u);
  EXPECT_EQ(l.cache_entries(), 3u);
  EXPECT_EQ(l.cache_hits(), 1u);
  EXPECT_EQ(l.records()[0].stats.values(), l.records()[1].stats.values());
  EXPECT_FALSE(l.plans()[0].loop_order.empty());

  const Stats t = l.total();
  Stats sum = l.conv();
  sum += l.non_conv();
  EXPECT_DOUBLE_EQ(sum.get("cycles.total"), t.get("cycles.total"));
  EXPECT_DOUBLE_EQ(l.non_conv().get("cycles.total"), l.records()[3].stats.get("cycles.total"));
  EXPECT_EQ(l.by_kind().size(), 3u);
  EXPECT_EQ(l.by_phase().size(), 2u);
  const auto layers = l.by_layer();
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[0].first, "a.conv1");  // first-seen order
  EXPECT_DOUBLE_EQ(layers[0].second.get("macs.issued"), 2.0 * 3136 * 64 * 576);
}

TEST(Report, DerivedFiguresAndFormats) {
  const Spec s = load_spec("tpu-like");
  Ledger l(s);
  l.gemm(conv_like("x", 784, 128, 1152, OpKind::conv_fwd));
  const Stats t = l.total();
  const Derived d = derive(t, s);
  EXPECT_DOUBLE_EQ(d.seconds, t.get("cycles.total") * 1e-9);
  EXPECT_DOUBLE_EQ(d.power_w, t.sum_prefix("energy.") * 1e-12 / d.seconds);
  EXPECT_DOUBLE_EQ(d.utilization, t.get("macs.useful") / (t.get("cycles.total") * 1024));
  EXPECT_GT(d.utilization, 0);
  EXPECT_LE(d.utilization, 1);
  const std::string table = format_table(t, s, "x");
  EXPECT_NE(table.find("cycles.total"), std::string::npos);
  EXPECT_NE(table.find("power"), std::string::npos);
  const auto j = ledger_json(l);
  EXPECT_DOUBLE_EQ(j["total"]["counters"]["cycles.total"].get<double>(), t.get("cycles.total"));
  EXPECT_TRUE(j["total"]["derived"].contains("power_w"));
  EXPECT_EQ(j["by_layer"][0]["layer"], "x");
  const std::string csv = records_csv(l.records(), s);
  EXPECT_EQ(csv.substr(0, 17), "layer,kind,phase,");
  EXPECT_NE(csv.find("\nx,conv_fwd,forward,"), std::string::npos);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2);
}

TEST(Stats, EveryCounterTheCostModelWritesIsRegistered) {
  const Spec s = load_spec("tpu-like");
  Ledger l(s);
  GemmWork w = conv_like("x", 784, 128, 1152, OpKind::conv_fwd);
  w.a.extra_storage_bytes = 10;
  w.a.extra_dram_write_bytes = 10;
  l.gemm(w);
  const Stats total = l.total();
  for (const auto& [k, v] : total.values()) {
    const CounterInfo* c = find_counter(k);
    ASSERT_NE(c, nullptr) << k;
    EXPECT_FALSE(c->unit.empty());
    EXPECT_FALSE(c->description.empty());
  }
}

}  // namespace
}  // namespace st
