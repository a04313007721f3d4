// The vector-unit cost model (docs/vector-schedule.md): compute cycles per tile and pass, single vs
// double buffering, pass replay vs DRAM re-reads, fusion with the producer, counters and energy; fed
// by the real ops. Its exact agreement with the stepped reference is tests/test_vector_cost_reference.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "src/cost/cost_model.h"
#include "src/cost/energy.h"
#include "src/ops/batchnorm.h"
#include "src/ops/pool.h"
#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "src/ops/sgd.h"
#include "src/ops/softmax_xent.h"
#include "tests/util/onednn_util.h"

using namespace st;
using namespace st::test;

namespace {

VectorWork elementwise(int64_t n) {
  VectorWork w;
  w.tag.kind = OpKind::relu_fwd;
  w.elements = n;
  w.cmps = double(n);
  w.dram_read_bytes = w.producer_read_bytes = 4.0 * n;
  w.dram_write_bytes = 4.0 * n;
  w.sram_read_bytes = 4.0 * n;
  w.sram_write_bytes = 4.0 * n;
  return w;
}

TEST(VectorCost, ComputeCyclesClosedForm) {
  Spec spec;
  spec.vector.lanes = 32;
  spec.vector.pipeline_depth = 6;
  VectorWork w = elementwise(1024);
  Stats s = cost_vector(w, spec);
  EXPECT_EQ(s.get("cycles.compute"), 1024.0 / 32 + 6);
  // Divisions cost div_cycles slots each; exps exp_cycles; rsqrts rsqrt_cycles; passes refill.
  w.divs = 64;
  w.exps = 32;
  w.rsqrts = 32;
  w.passes = 2;
  s = cost_vector(w, spec);
  const double slots = 1024 + 64.0 * spec.vector.div_cycles + 32.0 * spec.vector.exp_cycles +
                       32.0 * spec.vector.rsqrt_cycles;
  EXPECT_EQ(s.get("cycles.compute"), std::ceil(slots / 32) + 2 * 6);
  EXPECT_EQ(s.get("vector.ops.div"), 64.0);
  EXPECT_EQ(s.get("vector.ops.cmp"), 1024.0);
  EXPECT_EQ(s.get("vector.elements"), 1024.0);
  // Many tiles (since the stepped contract): every pass over every tile fills and drains the
  // pipeline. 2^20 elements of 8 bytes (4 in, 4 out) in 64 KiB banks: 128 tiles of 8192 elements,
  // each ceil(8192 / 32) = 256 issue cycles + depth 6 (the averaged model charged the depth once
  // per pass over the whole op: 32768 + 6).
  s = cost_vector(elementwise(1 << 20), spec);
  EXPECT_EQ(s.get("cycles.compute"), 128.0 * (256 + 6));
}

TEST(VectorCost, SingleBufferingExposesEverything) {
  Spec spec;
  VectorWork w = elementwise(1 << 20);
  spec.vector.double_buffered = false;
  Stats single = cost_vector(w, spec);
  spec.vector.double_buffered = true;
  Stats dbl = cost_vector(w, spec);
  const double bw = spec.dram_bytes_per_cycle();
  const double load = w.dram_read_bytes / bw, store = w.dram_write_bytes / bw;
  // Single: load + compute + store + latency per tile, all serial.
  EXPECT_GE(single.get("cycles.total"), load + store + single.get("cycles.compute"));
  // Exactly (docs/vector-schedule.md; since the stepped contract every request pays its latency,
  // where the averaged model charged one latency per tile): 128 tiles of 32 KiB in and 32 KiB out
  // at 32 bytes/cycle = 1024 cycles each way, latency 100 cycles per request, compute 256 + 6, one
  // bank: each tile is load, compute, store in turn: 128 x (100 + 1024 + 262 + 100 + 1024).
  EXPECT_EQ(single.get("cycles.total"), 128.0 * (100 + 1024 + 262 + 100 + 1024));
  EXPECT_EQ(single.get("stall.latency"), 128.0 * 100);  // the store's latency is drain, not a load's
  EXPECT_EQ(single.get("stall.bandwidth"), 128.0 * 1024);
  EXPECT_EQ(single.get("stall.slot"), 127.0 * (100 + 1024));  // the previous tile's store
  EXPECT_EQ(single.get("stall.drain"), 100.0 + 1024);
  EXPECT_LT(dbl.get("cycles.total"), single.get("cycles.total"));
  EXPECT_GE(dbl.get("cycles.total"), std::max(load + store, dbl.get("cycles.compute")));
  for (const Stats* s : {&single, &dbl}) {
    EXPECT_EQ(s->get("cycles.stall"), s->get("cycles.total") - s->get("cycles.compute"));
    EXPECT_GE(s->get("cycles.stall"), 0.0);
  }
  // Memory-bound elementwise op: bandwidth dominates compute.
  EXPECT_GT(single.get("cycles.stall"), single.get("cycles.compute"));
}

TEST(VectorCost, FusedSkipsTheProducerRead) {
  Spec spec;
  VectorWork w = elementwise(100000);
  w.fused_with_producer = true;
  spec.vector.fuse_with_conv = false;
  Stats unfused = cost_vector(w, spec);
  spec.vector.fuse_with_conv = true;
  Stats fused = cost_vector(w, spec);
  EXPECT_EQ(unfused.get("bytes.dram.read.vector"), w.dram_read_bytes);
  EXPECT_EQ(fused.get("bytes.dram.read.vector"), 0.0);
  EXPECT_LT(fused.sum_prefix("bytes.dram."), unfused.sum_prefix("bytes.dram."));
  EXPECT_LT(fused.get("cycles.total"), unfused.get("cycles.total"));
  EXPECT_LT(fused.get("energy.dram"), unfused.get("energy.dram"));
  // The data still lands in the vector memory (from the array's output buffer).
  EXPECT_EQ(fused.get("bytes.sram.vector.write"), unfused.get("bytes.sram.vector.write"));
}

TEST(VectorCost, MultiPassReplaysFromSramWhenAGroupFits) {
  const Spec base;
  Tensor src({64, 16, 32, 32}), gamma({16}), beta({16}), dst, rm({16}), rv({16});
  src.fill(1), gamma.fill(1), beta.fill(0);
  RecordingSink sink;
  ExecContext ctx{&base, &sink, "bn"};
  BnSaved saved;
  bn_fwd_training(ctx, {}, src, gamma, beta, dst, saved, rm, rv);
  const VectorWork& w = sink.vectors.at(0);
  // One channel = 64*32*32*4 = 256 KiB: does not fit a 64 KiB bank -> three DRAM passes.
  Spec small = base;
  small.vector.buffer_kib = 64;
  Stats s1 = cost_vector(w, small);
  EXPECT_EQ(s1.get("bytes.dram.read.vector"), 3 * w.dram_read_bytes);
  Spec big = base;
  big.vector.buffer_kib = 512;
  Stats s2 = cost_vector(w, big);
  EXPECT_EQ(s2.get("bytes.dram.read.vector"), w.dram_read_bytes);
  EXPECT_LT(s2.get("cycles.total"), s1.get("cycles.total"));
}

TEST(VectorCost, RealOpsBytesCoverTheirTensors) {
  const Spec spec;
  RecordingSink sink;
  ExecContext ctx{&spec, &sink, "x"};
  Tensor a({8, 16, 16, 16}), b({8, 16, 16, 16}), dst, ds, gamma({16}), beta({16}), rm({16}), rv({16});
  a.fill(1), b.fill(2), gamma.fill(1), beta.fill(0);
  relu_fwd(ctx, a, dst);
  add_fwd(ctx, a, b, dst);
  PoolWorkspace ws;
  pool_fwd(ctx, {3, 3, 2, 2, 1, 1, PoolAlg::max}, a, dst, &ws);
  BnSaved saved;
  bn_fwd_training(ctx, {}, a, gamma, beta, dst, saved, rm, rv);
  Tensor logits({8, 10}), probs;
  logits.fill(0);
  softmax_xent_fwd(ctx, logits, std::vector<int32_t>(8, 0), probs);
  Tensor v;
  sgd_update(ctx, {}, a, b, v, false);
  ASSERT_EQ(sink.vectors.size(), 6u);
  for (const VectorWork& w : sink.vectors) {
    SCOPED_TRACE(std::string(to_string(w.tag.kind)));
    Stats s = cost_vector(w, spec);
    EXPECT_GE(s.get("bytes.dram.read.vector"), w.dram_read_bytes);
    EXPECT_GE(s.get("bytes.dram.write.vector"), 4.0 * double(w.elements));
    EXPECT_GE(s.get("bytes.sram.vector.read"), w.sram_read_bytes);
    EXPECT_GE(s.get("cycles.total"), s.get("cycles.compute"));
    EXPECT_GE(s.get("cycles.compute"), double(w.elements) / spec.vector.lanes);
    EXPECT_EQ(s.get("vector.elements"), double(w.elements));
    EXPECT_GT(s.get("energy.vector"), 0.0);
    EXPECT_GT(s.get("energy.sram.vector"), 0.0);
    EXPECT_NEAR(s.get("energy.dram"),
                dram_energy_pj(spec, s.get("bytes.dram.read.vector") + s.get("bytes.dram.write.vector")), 1e-6);
    EXPECT_NEAR(s.get("energy.leakage"), leakage_energy_pj(spec, s.get("cycles.total")), 1e-6);
  }
}

TEST(VectorCost, MoreLanesNeverSlower) {
  VectorWork w = elementwise(1 << 16);
  w.divs = 1 << 16;
  double prev = 1e300;
  for (int lanes : {1, 4, 16, 32, 64, 128}) {
    Spec spec;
    spec.vector.lanes = lanes;
    double c = cost_vector(w, spec).get("cycles.compute");
    EXPECT_LE(c, prev) << lanes;
    prev = c;
  }
}

TEST(VectorCost, PureFunction) {
  // Same description in, same stats out; the counters are registered names.
  const Spec spec;
  VectorWork w = elementwise(12345);
  w.exps = 77;
  Stats a = cost_vector(w, spec), b = cost_vector(w, spec);
  EXPECT_EQ(a.values(), b.values());
  for (const auto& [name, value] : a.values()) {
    EXPECT_NE(find_counter(name), nullptr) << name;
    EXPECT_TRUE(std::isfinite(value)) << name;
  }
}

}  // namespace
