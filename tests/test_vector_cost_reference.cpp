// The vector unit's fast cost model against its reference (docs/vector-schedule.md): cost_vector's
// counters must equal those of the discrete-event reference (src/costref/vector_ref.cpp): every
// integer counter (cycles, stall causes, bytes) exactly, energies within costref::kEnergyRelBound.
// The cases: random descriptions (tiny banks that force many tiles, odd element counts, every op
// mix, passes 1-3, groups, fused or not, shared and own vector link, latency 0 to large, 1-8
// requests in flight, single and double buffering, every preset), the real ops' descriptions on
// random shapes, and every vector op of a ResNet-18 and a ResNet-50 training step on every preset.
// The reference itself is checked on a 2-tile and a 3-tile timeline worked out by hand. Mutation
// tests prove the comparison can fail: each deliberate error in the fast model must be caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "models/netdesc.h"
#include "src/cost/cost_model.h"
#include "src/costref/compare.h"
#include "src/costref/vector_ref.h"
#include "src/ops/batchnorm.h"
#include "src/ops/fc.h"
#include "src/ops/grad_unscale.h"
#include "src/ops/pool.h"
#include "src/ops/relu.h"
#include "src/ops/residual_add.h"
#include "src/ops/sgd.h"
#include "src/ops/shortcut.h"
#include "src/ops/softmax_xent.h"
#include "src/project/projection.h"
#include "src/spec/spec_toml.h"
#include "tests/util/onednn_util.h"
#include "tests/util/timeline.h"

namespace st {
namespace {

const char* const kPresets[] = {"tpu-like", "simdit-16x16", "bp-im2col-16x16"};

std::string describe(const VectorWork& w) {
  return std::string(to_string(w.tag.kind)) + " '" + w.tag.layer + "' elements " + std::to_string(w.elements) +
         " passes " + std::to_string(w.passes) + " groups " + std::to_string(w.groups) + " read " +
         std::to_string(w.dram_read_bytes) + " (producer " + std::to_string(w.producer_read_bytes) + ") write " +
         std::to_string(w.dram_write_bytes) + (w.fused_with_producer ? " fused" : "");
}

std::string describe(const Spec& s) {
  return s.name + " bank " + std::to_string(s.vector.buffer_kib) + " KiB " +
         (s.vector.double_buffered ? "double" : "single") + " lanes " + std::to_string(s.vector.lanes) + " depth " +
         std::to_string(s.vector.pipeline_depth) + " latency " + std::to_string(s.dram.latency_ns) + " ns d " +
         std::to_string(s.dram.max_outstanding) + " link " + std::to_string(s.vector_link_bytes_per_cycle()) +
         " B/cycle" + (s.vector.fuse_with_conv ? " fuse" : "");
}

// The disagreements of one description on one spec ("" when they agree), with what was compared.
std::string compare(const VectorWork& w, const Spec& spec, VectorCostMutation m = VectorCostMutation::none) {
  const Stats fast = cost_vector(w, spec, m);
  const costref::Result ref = costref::simulate_vector(w, spec);
  const auto d = costref::disagreements(fast.values(), ref.counters);
  if (d.empty()) return "";
  std::string s = describe(w) + " on " + describe(spec) + ":";
  for (const std::string& x : d) s += "\n  " + x;
  return s;
}

// A random spec: a preset with its vector unit, link, latency and requests in flight shaken.
Spec random_spec(std::mt19937_64& rng) {
  auto pick = [&](int n) { return int(rng() % uint64_t(n)); };
  Spec s = load_spec(kPresets[pick(3)]);
  VectorSpec& v = s.vector;
  const int bank = pick(4);
  if (bank == 0) v.buffer_kib = double(1 + pick(200)) / 1024;  // tiny: many tiles
  if (bank == 1) v.buffer_kib = 0.25 * (1 + pick(16));
  if (pick(3) == 0) v.lanes = 1 + pick(64);
  if (pick(3) == 0) v.pipeline_depth = pick(12);
  if (pick(4) == 0) v.div_cycles = 1 + pick(20), v.exp_cycles = 1 + pick(20), v.rsqrt_cycles = 1 + pick(20);
  if (pick(2) == 0) v.double_buffered = !v.double_buffered;
  v.fuse_with_conv = pick(2) == 0;
  if (pick(3) == 0) v.dram_link_bits_per_cycle = pick(2) == 0 ? 0.0 : double(8 * (1 + pick(64)));
  const double latencies[] = {0, 0.5, 7.3, 100, 1000};
  s.dram.latency_ns = latencies[pick(5)];
  s.dram.max_outstanding = 1 + pick(8);
  if (pick(2) == 0) s.dram.bandwidth_gbps = 1 + pick(64);
  if (pick(4) == 0) s.clock_ghz = 0.7;
  s.name += "(shaken)";
  return s;
}

// A random description: odd counts, every op mix, passes 1-3, groups, fused or not.
VectorWork random_work(std::mt19937_64& rng) {
  auto in = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
  VectorWork w;
  w.tag.kind = OpKind(in(int64_t(OpKind::bn_fwd), int64_t(OpKind::grad_unscale)));
  w.elements = in(1, rng() % 4 == 0 ? 20000 : 3000);
  const double n = double(w.elements);
  auto some = [&](double scale) { return rng() % 3 == 0 ? 0.0 : double(in(0, int64_t(scale * n) + 3)); };
  w.adds = some(3), w.muls = some(2), w.fmas = some(2), w.cmps = some(1);
  w.divs = rng() % 2 ? some(0.1) : 0, w.exps = rng() % 2 ? some(1) : 0, w.rsqrts = rng() % 2 ? some(0.05) : 0;
  w.passes = int(in(1, 3));
  w.groups = in(1, std::min<int64_t>(w.elements, 64));
  const int64_t bytes_in = in(0, 3) * 4 * w.elements + in(0, 300);
  w.dram_read_bytes = double(bytes_in);
  w.producer_read_bytes = rng() % 2 ? double(in(0, bytes_in)) : 0.0;
  w.dram_write_bytes = double(in(0, 2) * 4 * w.elements + in(0, 100));
  w.sram_read_bytes = double(in(0, 5 * bytes_in + 1));
  w.sram_write_bytes = double(in(0, 3 * bytes_in + 1));
  w.fused_with_producer = rng() % 2 == 0;
  return w;
}

// The real ops' descriptions on random small shapes.
std::vector<VectorWork> real_works(std::mt19937_64& rng, const Spec& spec) {
  auto in = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
  const ExecContext ctx{&spec, nullptr, "random"};
  const int64_t N = in(1, 5), C = in(1, 24), H = in(3, 17), W = in(3, 17), n = N * C * H * W;
  const bool chip = rng() % 2 == 0;
  const PoolDesc pd{int(in(1, 3)), int(in(1, 3)), int(in(1, 2)), int(in(1, 2)), 0, 0,
                    rng() % 2 ? PoolAlg::max : PoolAlg::avg_exclude_padding};
  return {bn_fwd_training_work(ctx, n, C, chip), bn_fwd_inference_work(ctx, n, C, chip), bn_bwd_work(ctx, n, C),
          relu_fwd_work(ctx, n, chip), relu_bwd_work(ctx, n), add_fwd_work(ctx, n, chip), add_bwd_work(ctx, n),
          pool_fwd_work(ctx, pd, N, C, H, W), pool_bwd_work(ctx, pd, N, C, H, W), sgd_update_work(ctx, n, n % 2 == 0),
          softmax_xent_fwd_work(ctx, N, C), softmax_xent_bwd_work(ctx, N, C), fc_bias_fwd_work(ctx, N, C),
          fc_bias_bwd_work(ctx, N, C), shortcut_a_fwd_work(ctx, N, C, 2 * C, H, W),
          shortcut_a_bwd_work(ctx, N, C, H, W, (H + 1) / 2, (W + 1) / 2), grad_unscale_work(ctx, n)};
}

TEST(VectorCostReference, RandomDescriptionsAgree) {
  std::mt19937_64 rng(20261130);
  int compared = 0, many_tiles = 0;
  std::string fails;
  for (int i = 0; i < 600; ++i) {
    Spec spec = random_spec(rng);
    spec.array.count = 1 + i % 3;   // the arrays' logic leaks during vector ops too (no draw: same cases)
    const VectorWork w = random_work(rng);
    if (costref::vector_tiling(w, spec).T >= 8) ++many_tiles;
    const std::string f = compare(w, spec);
    ++compared;
    if (!f.empty() && fails.size() < 20000) fails += f + "\n";
  }
  EXPECT_GE(compared, 500);
  EXPECT_GE(many_tiles, 100);  // the steady-state jump of the fast model engages
  EXPECT_TRUE(fails.empty()) << fails;
}

TEST(VectorCostReference, RealOpsOnRandomShapesAgree) {
  std::mt19937_64 rng(77);
  int compared = 0;
  std::string fails;
  for (int i = 0; i < 60; ++i) {
    const Spec spec = random_spec(rng);
    for (const VectorWork& w : real_works(rng, spec)) {
      ++compared;
      const std::string f = compare(w, spec);
      if (!f.empty() && fails.size() < 20000) fails += f + "\n";
    }
  }
  EXPECT_EQ(compared, 60 * 17);
  EXPECT_TRUE(fails.empty()) << fails;
}

// Every vector op of one training step (forward, backward, SGD) as the projection emits it.
void every_vector_op_agrees(const std::string& model) {
  ResNetOptions o;
  o.name = model;
  o.in_c = 3;
  o.in_h = o.in_w = 224;
  o.batch = 32;
  o.classes = 1000;
  const NetDesc net = build_resnet(o);
  int compared = 0;
  std::string fails;
  for (const char* preset : kPresets) {
    for (bool fuse : {false, true}) {
      Spec spec = load_spec(preset);
      spec.vector.fuse_with_conv = fuse;
      test::RecordingSink sink;
      describe_step(net, ExecContext{&spec, &sink, ""}, Lowering::bp_im2col, StepMode::train);
      ASSERT_GT(sink.vectors.size(), 100u);
      for (const VectorWork& w : sink.vectors) {
        ++compared;
        const std::string f = compare(w, spec);
        if (!f.empty() && fails.size() < 20000) fails += f + "\n";
      }
    }
  }
  EXPECT_GT(compared, 600);
  EXPECT_TRUE(fails.empty()) << fails;
}

TEST(VectorCostReference, EveryVectorOpOfAResNet18TrainingStepAgreesOnEveryPreset) {
  every_vector_op_agrees("resnet18");
}
TEST(VectorCostReference, EveryVectorOpOfAResNet50TrainingStepAgreesOnEveryPreset) {
  every_vector_op_agrees("resnet50");
}

// The comparison can fail: every deliberate error in the fast model is caught on the random set.
TEST(VectorCostReference, MutationsOfTheFastModelAreCaught) {
  for (VectorCostMutation m : {VectorCostMutation::latency_once_per_op, VectorCostMutation::average_last_tile,
                               VectorCostMutation::ignore_replay, VectorCostMutation::fill_once_per_tile}) {
    std::mt19937_64 rng(99);
    int caught = 0, cases = 0;
    for (int i = 0; i < 150; ++i) {
      const Spec spec = random_spec(rng);
      const VectorWork w = random_work(rng);
      ++cases;
      if (!compare(w, spec, m).empty()) ++caught;
    }
    EXPECT_GT(caught, 0) << "mutation " << int(m) << " was never caught in " << cases << " cases";
    std::printf("mutation %d caught in %d of %d cases\n", int(m), caught, cases);
  }
}

// ---- The reference on timelines worked out by hand (docs/vector-schedule.md) ----
//
// The spec: 1 GHz; the vector unit's own link of 16 bits = 2 bytes/cycle; latency 10 ns = L = 10
// cycles; one request in flight; 4 lanes, pipeline depth 2, div 5 cycles.
Spec hand_spec(double bank_bytes, bool double_buffered) {
  Spec s;
  s.clock_ghz = 1;
  s.dram.latency_ns = 10;
  s.dram.max_outstanding = 1;
  s.vector.dram_link_bits_per_cycle = 16;
  s.vector.lanes = 4;
  s.vector.pipeline_depth = 2;
  s.vector.div_cycles = 5;
  s.vector.buffer_kib = bank_bytes / 1024;
  s.vector.double_buffered = double_buffered;
  s.vector.fuse_with_conv = false;
  return s;
}

// A description of `elements` elements with the given compare / add / div counts and DRAM bytes.
VectorWork hand_work(OpKind kind, int64_t elements, double cmps, double adds, double divs, double read,
                     double write) {
  VectorWork w;
  w.tag.kind = kind;
  w.elements = elements;
  w.cmps = cmps, w.adds = adds, w.divs = divs;
  w.dram_read_bytes = read;
  w.dram_write_bytes = write;
  return w;
}

using test::Span;
using test::show;
using test::timeline;

double get(const costref::Result& r, const std::string& k) {
  auto it = r.counters.find(k);
  return it == r.counters.end() ? 0.0 : it->second;
}

// total, compute and the five causes (slot, queue, latency, bandwidth, drain).
void expect_cycles(const costref::Result& r, int64_t total, int64_t compute, std::array<int64_t, 5> causes) {
  EXPECT_EQ(get(r, "cycles.total"), double(total));
  EXPECT_EQ(get(r, "cycles.compute"), double(compute));
  EXPECT_EQ(get(r, "cycles.stall"), double(total - compute));
  const char* names[5] = {"stall.slot", "stall.queue", "stall.latency", "stall.bandwidth", "stall.drain"};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(get(r, names[i]), double(causes[size_t(i)])) << names[i];
}

// Two tiles, single-buffered. A ReLU-like op: 6 elements, 24 bytes in, 24 out, 6 compares. Bank 32
// bytes: F = 48, e = floor(32*6/48) = 4, T = 2, the last tile 2 elements.
//   full tile: q = floor(24*4/6) = 16, w = 16, slots floor(6*4/6) = 4 -> issue ceil(4/4) = 1;
//   last tile: q = 24-16 = 8, w = 8, slots 2 -> issue ceil(max(2, 2)/4) = 1. Each step 1 + depth 2 = 3.
// Program: load 0, store 0, load 1, store 1.
//   load 0: eligible 0, start 0, data 10, complete 10 + 16/2 = 18
//   step 0: start max(0, 18) = 18, end 21        (gap [0,18): latency 10, bandwidth 8)
//   store 0: eligible 21, start 21, data 31, complete 31 + 8 = 39
//   load 1: eligible = bank free = max(end 21, store 39) = 39, start 39, data 49, complete 49 + 4 = 53
//   step 1: start max(21, 53) = 53, end 56       (gap [21,53): slot [21,39) 18, latency 10, bandwidth 4)
//   store 1: eligible 56, start 56, data 66, complete 66 + 4 = 70 = total; drain 70 - 56 = 14
TEST(VectorCostReferenceHand, TwoTilesSingleBuffered) {
  VectorWork w = hand_work(OpKind::relu_fwd, 6, /*cmps=*/6, 0, 0, /*read=*/24, /*write=*/24);
  w.sram_read_bytes = 24;
  w.sram_write_bytes = 24;
  const Spec spec = hand_spec(32, false);
  const costref::VectorTiling t = costref::vector_tiling(w, spec);
  EXPECT_EQ(t.e, 4);
  EXPECT_EQ(t.T, 2);
  const costref::Result r = costref::simulate_vector(w, spec, true);
  const std::vector<Span> want = {{"load", 0, 18},  {"compute", 18, 21}, {"store", 21, 39},
                                  {"load", 39, 53}, {"compute", 53, 56}, {"store", 56, 70}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  expect_cycles(r, 70, 6, {18, 0, 20, 12, 14});
  EXPECT_EQ(get(r, "bytes.dram.read.vector"), 24);
  EXPECT_EQ(get(r, "bytes.dram.write.vector"), 24);
  EXPECT_EQ(get(r, "bytes.sram.vector.read"), 24 + 24);
  EXPECT_EQ(get(r, "bytes.sram.vector.write"), 24 + 24);
  EXPECT_EQ(compare(w, spec), "");
}

// Three tiles, double-buffered. 10 elements, 40 bytes in, 20 out, 10 adds + 2 divs (5 slots each):
// S = 20. Bank 24 bytes: F = 60, e = floor(24*10/60) = 4, T = 3, the last tile 2 elements.
//   full tiles: q = floor(40*4/10) = 16, w = 8, slots 8 -> issue 2, step 2 + 2 = 4;
//   last tile: q = 40-32 = 8, w = 20-16 = 4, slots 20-16 = 4 -> issue 1, step 3.
// Program (two banks): load 0, load 1, store 0, load 2, store 1, store 2. d = 1:
//   start_i = max(eligible, start_{i-1}, complete_{i-1}).
//   load 0: eligible 0, start 0, data 10, complete 18
//   load 1: eligible 0, start 18, data 28, complete 36
//   step 0: start max(0, 18) = 18, end 22                   (gap [0,18): latency 10, bandwidth 8)
//   store 0: eligible 22, start max(22, 36) = 36, data 46, complete 46 + 4 = 50
//   load 2: eligible = bank 0 free = max(end 22, store 50) = 50, start 50, data 60, complete 64
//   step 1: start max(22, 36) = 36, end 40                  (gap [22,36) on load 1: its latency
//           [18,28) gives 6, its data [28,36) 8)
//   store 1: eligible 40, start max(40, 50, 64) = 64, data 74, complete 78
//   step 2: start max(40, 64) = 64, end 67                  (gap [40,64) on load 2: slot [40,50) 10,
//           latency [50,60) 10, bandwidth [60,64) 4)
//   store 2: eligible 67, start max(67, 64, 78) = 78, data 88, complete 90 = total; drain 90 - 67 = 23
TEST(VectorCostReferenceHand, ThreeTilesDoubleBuffered) {
  const VectorWork w = hand_work(OpKind::avgpool_fwd, 10, 0, /*adds=*/10, /*divs=*/2, /*read=*/40, /*write=*/20);
  const Spec spec = hand_spec(24, true);
  const costref::VectorTiling t = costref::vector_tiling(w, spec);
  EXPECT_EQ(t.e, 4);
  EXPECT_EQ(t.T, 3);
  const costref::VectorTile last = costref::vector_tile(t, spec, 2);
  EXPECT_EQ(last.elements, 2);
  EXPECT_EQ(last.q, 8);
  EXPECT_EQ(last.w, 4);
  EXPECT_EQ(last.issue, 1);
  const costref::Result r = costref::simulate_vector(w, spec, true);
  const std::vector<Span> want = {{"load", 0, 18},    {"compute", 18, 22}, {"load", 18, 36},
                                  {"compute", 36, 40}, {"store", 36, 50}, {"load", 50, 64},
                                  {"compute", 64, 67}, {"store", 64, 78}, {"store", 78, 90}};
  EXPECT_EQ(timeline(r), want) << show(timeline(r));
  expect_cycles(r, 90, 11, {10, 0, 26, 20, 23});
  EXPECT_EQ(get(r, "bytes.dram.read.vector"), 40);
  EXPECT_EQ(get(r, "bytes.dram.write.vector"), 20);
  EXPECT_EQ(compare(w, spec), "");
}

// Passes: a two-pass op whose group does not fit a bank streams every pass over the tiles and
// re-reads them (pass-major, stores only in the last pass); when the group fits, each tile runs its
// passes back to back from the bank. Fused: the first pass's producer bytes come from the array.
TEST(VectorCostReferenceHand, ReplayRuleAndFusedReads) {
  VectorWork w = hand_work(OpKind::bn_fwd, 10, 0, /*adds=*/20, 0, /*read=*/40, /*write=*/40);
  w.passes = 2;
  w.groups = 1;
  w.producer_read_bytes = 32;
  w.fused_with_producer = true;
  Spec spec = hand_spec(24, true);  // group = 40 bytes > 24: no replay
  spec.vector.fuse_with_conv = true;
  costref::Result r = costref::simulate_vector(w, spec, true);
  // Pass 0 reads only the own 8 bytes (the producer's 32 arrive on chip), pass 1 all 40 again.
  EXPECT_EQ(get(r, "bytes.dram.read.vector"), 8 + 40);
  EXPECT_EQ(get(r, "bytes.sram.vector.write"), 8 + 40 + 32);
  EXPECT_EQ(compare(w, spec), "");
  int stores = 0, computes = 0;
  for (const costref::Slice& s : r.slices) stores += s.name == "store", computes += s.name == "compute";
  const int64_t T = costref::vector_tiling(w, spec).T;
  EXPECT_EQ(computes, 2 * T);
  EXPECT_EQ(stores, T);
  w.groups = 2;  // 20 bytes a group: fits, replay
  r = costref::simulate_vector(w, spec);
  EXPECT_EQ(get(r, "bytes.dram.read.vector"), 8);
  EXPECT_EQ(compare(w, spec), "");
  spec.vector.fuse_with_conv = false;
  r = costref::simulate_vector(w, spec);
  EXPECT_EQ(get(r, "bytes.dram.read.vector"), 40);
  EXPECT_EQ(compare(w, spec), "");
}

// The fast model's steady-state jump: an op of 2^40 elements costs in well under a second (stepping
// its 2^26 tiles would take minutes), and its figures are those of the rules: the DRAM bytes exact,
// the time at least the link's transfer time.
TEST(VectorCostReference, HugeOpsCostFastAndExactInBytes) {
  for (const char* preset : kPresets) {
    const Spec spec = load_spec(preset);
    const ExecContext ctx{&spec, nullptr, "huge"};
    const int64_t n = int64_t(1) << 40;
    for (const VectorWork& w : {relu_fwd_work(ctx, n), bn_fwd_training_work(ctx, n, 64, false), sgd_update_work(ctx, n, true)}) {
      const auto t0 = std::chrono::steady_clock::now();
      const Stats s = cost_vector(w, spec);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_LT(secs, 0.5) << describe(w);
      EXPECT_EQ(s.get("bytes.dram.write.vector"), w.dram_write_bytes);
      EXPECT_GE(s.get("cycles.total"), (s.get("bytes.dram.read.vector") + w.dram_write_bytes) /
                                           spec.vector_link_bytes_per_cycle());
      EXPECT_EQ(s.get("cycles.stall"), s.get("cycles.total") - s.get("cycles.compute"));
    }
  }
}

}  // namespace
}  // namespace st
