// The fast cost model against its reference (docs/cost-schedule.md): the fast model's counters for a
// GEMM must equal those of the discrete-event reference (src/costref) run on the plan the fast
// model chose: every integer counter exactly, energies within costref::kEnergyRelBound. The cases:
// random descriptions (odd sizes, dense and conv-derived operands of every lowering and direction,
// every preset and dataflow, tiny buffers, shared and own links, single and double buffering,
// latency 0 and large, 1-4 requests in flight), every loop order on forced plans, and every conv
// layer of ResNet-18 and ResNet-50 in every direction and lowering on every preset. Mutation tests
// prove the comparison can fail: each deliberate error in the fast model must be caught.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "src/cost/cost_model.h"
#include "src/costref/compare.h"
#include "src/costref/gemm_ref.h"
#include "src/ops/conv.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"

namespace st {
namespace {

const char* const kPresets[] = {"tpu-like", "simdit-16x16", "bp-im2col-16x16"};

// GEMMs with a generated operand compared so far, how many timed exactly alike, the largest timing
// difference (a fraction of the reference's cycles; bound: costref::kGeneratedCycleBound).
struct GeneratedTally {
  int cases = 0, exact = 0;
  double worst = 0;
} g_generated;

// Prints the tally (the README quotes it) and starts a new one.
void report_generated(const char* what) {
  std::printf("%s: %d GEMMs with a generated operand, %d timed exactly alike, largest timing difference "
              "%.4f%% of the reference's cycles (bound %.1f%%)\n",
              what, g_generated.cases, g_generated.exact, 100 * g_generated.worst,
              100 * costref::kGeneratedCycleBound);
  g_generated = GeneratedTally{};
}

// The disagreements of one description on one spec ("" when they agree), with what was compared.
std::string compare(const GemmWork& w, const Spec& spec, CostMutation mutation = CostMutation::none) {
  GemmPlan plan;
  const Stats fast = cost_gemm_search(w, spec, &plan, /*prune=*/true, mutation);
  const costref::Result ref = costref::simulate_gemm(w, spec, plan);
  const bool generated = w.a.generator || w.b.generator;
  const auto d = costref::disagreements(fast.values(), ref.counters, generated);
  if (generated) {
    g_generated.cases += 1;
    const double diff = costref::timing_difference(fast.values(), ref.counters);
    g_generated.exact += diff == 0;
    g_generated.worst = std::max(g_generated.worst, diff);
  }
  if (d.empty()) return "";
  std::string s = "GEMM " + std::to_string(w.shape.M) + "x" + std::to_string(w.shape.N) + "x" +
                  std::to_string(w.shape.K) + " sub " + std::to_string(w.sub_gemms) + " on " + spec.name +
                  " plan " + std::to_string(plan.tile_m) + "," + std::to_string(plan.tile_n) + "," +
                  std::to_string(plan.tile_k) + " " + plan.loop_order + ":";
  for (const std::string& x : d) s += "\n  " + x;
  return s;
}

// A dense GEMM, A and B in `eb` bytes on chip, C in accumulators; in DRAM each in `dram` bytes
// ({eb, eb, 4}: nothing cast).
GemmWork dense(int64_t M, int64_t N, int64_t K, int eb, bool accumulate, std::array<int, 3> dram = {0, 0, 0}) {
  GemmWork w = dense_gemm_work({M, N, K}, Format::bf16);
  w.a.elem_bytes = w.b.elem_bytes = eb;
  w.a.dram_elem_bytes = dram[0] > 0 ? dram[0] : eb;
  w.b.dram_elem_bytes = dram[1] > 0 ? dram[1] : eb;
  w.c.dram_elem_bytes = dram[2] > 0 ? dram[2] : 4;
  w.accumulate_into_c = accumulate;
  return w;
}

// Bytes per element in DRAM for A, B, C: mostly what the array reads, often fp32 activations or
// master weights cast on the fill, sometimes narrower than on chip (1 byte), C sometimes stored in
// another format than the accumulators.
std::array<int, 3> random_dram_bytes(std::mt19937_64& rng) {
  const int choices[] = {0, 0, 4, 4, 1, 2};
  std::array<int, 3> d{};
  for (int& x : d) x = choices[rng() % 6];
  return d;
}

// A random spec: a preset with its buffers, links, buffering, latency, requests in flight and
// dataflow shaken.
Spec random_spec(std::mt19937_64& rng) {
  auto pick = [&](int n) { return int(rng() % uint64_t(n)); };
  Spec s = load_spec(kPresets[pick(3)]);
  const Dataflow flows[] = {Dataflow::os, Dataflow::ws, Dataflow::is};
  if (pick(3) == 0) s.array.dataflow = flows[pick(3)];
  if (pick(4) == 0) s.array.rows = 1 + pick(40), s.array.cols = 1 + pick(40);
  for (BufferSpec* b : {&s.ifmap, &s.weight, &s.output}) {
    const int how = pick(4);
    if (how == 0) b->kib = 0.25 * (1 + pick(8));     // tiny: forces splits of every dim
    if (how == 1) b->kib = 1 + pick(64);
    if (pick(3) == 0) b->double_buffered = !b->double_buffered;
    if (pick(3) == 0) b->dram_link_bits_per_cycle = double(8 * (1 + pick(64)));
    if (pick(3) == 0) b->halo = Halo::refetch;
    if (pick(4) == 0) b->port_bits = 8 * (1 + pick(32));   // narrow: the ports bind
  }
  const double latencies[] = {0, 0.5, 7.3, 100, 1000};
  s.dram.latency_ns = latencies[pick(5)];
  s.dram.max_outstanding = 1 + pick(4);
  if (pick(3) == 0) s.dram.granule_bytes = 1 << pick(8);   // whole granules cross the link
  s.dram.bandwidth_gbps = 1 + pick(64);
  if (pick(4) == 0) s.clock_ghz = 0.7;
  s.name += "(shaken)";
  return s;
}

bool pick_same(std::mt19937_64& rng) { return rng() % 2 == 0; }

ConvDesc random_conv(std::mt19937_64& rng) {
  auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
  ConvDesc d;
  d.N = in(1, 3);
  d.C = in(1, 24);
  d.K = in(1, 24);
  d.R = in(1, 5);
  d.S = pick_same(rng) ? d.R : in(1, 5);
  d.H = in(d.R, 20);
  d.W = in(d.S, 20);
  d.sh = in(1, 3);
  d.sw = pick_same(rng) ? d.sh : in(1, 3);
  d.pt = d.pb = in(0, d.R - 1);
  d.pl = d.pr = in(0, d.S - 1);
  return d;
}

TEST(CostReference, RandomDescriptionsAgree) {
  std::mt19937_64 rng(20261129);
  int compared = 0, casts = 0;
  std::string fails;
  for (int i = 0; i < 500; ++i) {
    const Spec spec = random_spec(rng);
    std::vector<GemmWork> works;
    if (i % 2 == 0) {
      auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
      const int64_t big = (i % 10 == 0) ? 1500 : 150;
      const std::array<int, 3> dram = random_dram_bytes(rng);
      works.push_back(dense(in(1, int(big)), in(1, int(big)), in(1, int(big)), format_bytes(spec.array.format),
                            rng() % 4 == 0, dram));
    } else {
      const Direction dirs[] = {Direction::fwd, Direction::bwd_data, Direction::bwd_weights};
      const Lowering lows[] = {Lowering::explicit_im2col, Lowering::bp_im2col, Lowering::zero_skip};
      // Conv-derived operands: fp32 activations and gradients cast on the fill, the weights as the
      // spec stores them (an array-format copy, or the fp32 master).
      Spec s = spec;
      s.storage.weights = rng() % 2 ? WeightStorage::copy : WeightStorage::master;
      works = conv_work(random_conv(rng), dirs[rng() % 3], lows[rng() % 3], s, "random");
    }
    for (const GemmWork& w : works) {
      const std::string f = compare(w, spec);
      ++compared;
      casts += w.a.casts() || w.b.casts() || w.c.casts();
      if (!f.empty() && fails.size() < 20000) fails += f + "\n";
    }
  }
  EXPECT_GE(compared, 500);
  EXPECT_GE(casts, 200) << "too few descriptions whose DRAM format differs from the array's";
  EXPECT_TRUE(fails.empty()) << fails;
  report_generated("random descriptions");
}

// Every loop order and odd tile sizes, on plans the tiler would not choose: the schedule's timing
// (cycles, stall causes) against the reference's.
TEST(CostReference, EveryLoopOrderOnForcedPlansAgrees) {
  std::mt19937_64 rng(7);
  const std::array<std::array<int, 3>, 6> orders = {{{0, 1, 2}, {1, 0, 2}, {0, 2, 1}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}}};
  const char* names = "mnk";
  int compared = 0;
  std::string fails;
  for (int i = 0; i < 60; ++i) {
    Spec spec = random_spec(rng);
    spec.array.count = 1 + (i / 2) % 3;   // one, two or three arrays (no draw: the cases stay as they were)
    auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
    GemmWork w = dense(in(1, 90), in(1, 90), in(1, 90), 2, rng() % 3 == 0);
    std::array<int64_t, 3> tile = {in(1, int(w.shape.M)), in(1, int(w.shape.N)), in(1, int(w.shape.K))};
    if (i % 2 == 1) {
      // Many tiles in every dim (trips of 6-40: the steady-state jumps of every loop level engage)
      // and backing stores that are not the virtual matrices (conv-like shares).
      w = dense(in(40, 400), in(40, 400), in(40, 400), 2, rng() % 3 == 0);
      tile = {w.shape.M / in(6, 40) + 1, w.shape.N / in(6, 40) + 1, w.shape.K / in(6, 40) + 1};
      if (rng() % 2) w.a.dram_elems = double(w.shape.M * w.shape.K) * (0.1 + double(rng() % 100) / 50);
      if (rng() % 2) w.b.dram_elems = double(w.shape.K * w.shape.N) * (0.1 + double(rng() % 100) / 50);
      // fp32 tensors in DRAM, cast on the fill: twice the bytes per transfer.
      if (rng() % 2) w.a.dram_elem_bytes = 4;
      if (rng() % 2) w.b.dram_elem_bytes = 4;
    }
    for (const auto& o : orders) {
      const ScheduleTiming t = time_gemm_schedule(w, spec, tile, o);
      GemmPlan plan;
      plan.tile_m = tile[0], plan.tile_n = tile[1], plan.tile_k = tile[2];
      plan.loop_order = {names[o[0]], ',', names[o[1]], ',', names[o[2]]};
      const costref::Result ref = costref::simulate_gemm(w, spec, plan);
      ++compared;
      std::string f;
      if (double(t.total) != ref.counters.at("cycles.total")) f += " total " + std::to_string(t.total);
      if (double(t.compute) != ref.counters.at("cycles.compute")) f += " compute " + std::to_string(t.compute);
      for (int c = 0; c < kStallCauses; ++c)
        if (double(t.stall[size_t(c)]) != ref.counters.at(kStallCounter[size_t(c)]))
          f += std::string(" ") + kStallCounter[size_t(c)] + " " + std::to_string(t.stall[size_t(c)]) + " vs " +
               std::to_string(ref.counters.at(kStallCounter[size_t(c)]));
      if (!f.empty())
        fails += std::to_string(w.shape.M) + "x" + std::to_string(w.shape.N) + "x" + std::to_string(w.shape.K) +
                 " tiles " + std::to_string(tile[0]) + "," + std::to_string(tile[1]) + "," + std::to_string(tile[2]) +
                 " " + plan.loop_order + " ref total " + std::to_string(ref.counters.at("cycles.total")) + ":" + f + "\n";
    }
  }
  EXPECT_EQ(compared, 360);
  EXPECT_TRUE(fails.empty()) << fails;
}

void every_layer_agrees(const std::vector<ConvLayer>& layers, const char* what) {
  std::string fails;
  int compared = 0;
  for (const char* preset : kPresets)
    for (Halo halo : {Halo::keep, Halo::refetch}) {
      Spec spec = load_spec(preset);
      spec.ifmap.halo = spec.weight.halo = halo;
      for (const ConvLayer& layer : layers)
        for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
          for (Lowering l : {Lowering::explicit_im2col, Lowering::bp_im2col, Lowering::zero_skip})
            for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) {
              ++compared;
              const std::string f = compare(w, spec);
              if (!f.empty())
                fails += layer.name + " " + std::string(to_string(dir)) + " " + std::string(to_string(l)) + " halo " +
                         std::string(to_string(halo)) + ": " + f + "\n";
            }
    }
  EXPECT_GT(compared, 0);
  EXPECT_TRUE(fails.empty()) << fails;
  report_generated(what);
}

// Batch 2 (images meet inside tiles, so every footprint case occurs) in the default run; batch 32,
// where the reference enumerates ~10^10 operand elements, with SYSTRAIN_LONG_TESTS=1 (README).
TEST(CostReference, EveryResNet18LayerAgreesOnEveryPreset) {
  every_layer_agrees(resnet18_convs(2), "ResNet-18 b2");
}
TEST(CostReference, EveryResNet50LayerAgreesOnEveryPreset) {
  every_layer_agrees(resnet50_convs(2), "ResNet-50 b2");
}
TEST(CostReference, Long_EveryResNet18And50LayerAgreesAtBatch32) {
  if (!std::getenv("SYSTRAIN_LONG_TESTS")) GTEST_SKIP() << "set SYSTRAIN_LONG_TESTS=1 to run";
  every_layer_agrees(resnet18_convs(32), "ResNet-18 b32");
  every_layer_agrees(resnet50_convs(32), "ResNet-50 b32");
}

// The materialization part of the DRAM bytes (extra.dram.*, which bpcompare's per-tensor figures use)
// is one of the compared counters: both models report it, equal, for explicit's copies (dX and dW of a
// strided conv: the build's read of dY and its write of the copy) and zero-skip's zero-fill of dX, it
// refines bytes.dram.* (never more), and a difference in it alone is a disagreement.
TEST(CostReference, MaterializationCountersAreComparedAndCanFail) {
  const Spec spec = load_spec("bp-im2col-16x16");
  std::vector<std::pair<std::string, GemmWork>> cases;
  for (const ConvLayer& layer : resnet18_convs(1)) {
    if (layer.desc.sh < 2 || layer.name == resnet18_convs(1).front().name) continue;
    for (Direction dir : {Direction::bwd_data, Direction::bwd_weights})
      for (const GemmWork& w : conv_work(layer.desc, dir, Lowering::explicit_im2col, spec, layer.name))
        cases.emplace_back(layer.name + " explicit", w);
    if (layer.desc.R == 1)   // 1x1 stride 2: three of the four dX phases meet no tap (zero-filled)
      cases.emplace_back(layer.name + " zero-skip", conv_work(layer.desc, Direction::bwd_data, Lowering::zero_skip, spec,
                                                                 layer.name).front());
  }
  int reads = 0, writes = 0, fills = 0;
  for (const auto& [what, w] : cases) {
    GemmPlan plan;
    const Stats fast = cost_gemm(w, spec, &plan);
    const costref::Result ref = costref::simulate_gemm(w, spec, plan);
    const bool generated = w.a.generator || w.b.generator;
    EXPECT_TRUE(costref::disagreements(fast.values(), ref.counters, generated).empty()) << what;
    for (const char* role : {"ifmap", "output"})
      for (const char* dir : {"read", "write"}) {
        const std::string k = std::string("extra.dram.") + dir + "." + role;
        if (fast.get(k) == 0) continue;
        EXPECT_EQ(ref.counters.count(k), 1u) << what << " " << k;
        EXPECT_LE(fast.get(k), fast.get(std::string("bytes.dram.") + dir + "." + role)) << what << " " << k;
        auto changed = fast.values();
        changed[k] += 1;
        EXPECT_FALSE(costref::disagreements(changed, ref.counters, generated).empty()) << what << " " << k;
        (std::string(role) == "output" ? fills : std::string(dir) == "read" ? reads : writes) += 1;
      }
    EXPECT_EQ(fast.get("extra.dram.read.ifmap"), double(std::llround(w.a.extra_dram_read_bytes))) << what;
  }
  EXPECT_GT(reads, 0);
  EXPECT_EQ(reads, writes);
  EXPECT_GT(fills, 0);
}

// The comparison can fail: every deliberate error in the fast model is caught on the random set.
TEST(CostReference, MutationsOfTheFastModelAreCaught) {
  for (CostMutation m : {CostMutation::average_edge_tiles, CostMutation::ws_preload_per_m_tile,
                         CostMutation::round_transfer_bytes, CostMutation::latency_once_per_step,
                         CostMutation::ignore_dram_format}) {
    std::mt19937_64 rng(99);
    int caught = 0, cases = 0;
    for (int i = 0; i < 100; ++i) {
      const Spec spec = random_spec(rng);
      auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
      GemmWork w = dense(in(1, 300), in(1, 300), in(1, 300), 2, false);
      // ignore_dram_format needs operands stored in another format: fp32 activations (A) and master
      // weights (B) read by a bf16 array.
      if (m == CostMutation::ignore_dram_format) w.a.dram_elem_bytes = w.b.dram_elem_bytes = 4;
      ++cases;
      if (!compare(w, spec, m).empty()) ++caught;
    }
    EXPECT_GT(caught, 0) << "mutation " << int(m) << " was never caught in " << cases << " cases";
  }
  // Dropping the halo (tiles of generated operands move their share of the backing store) is
  // caught on random convolutions: their bytes are exact, so any footprint the share misses shows.
  std::mt19937_64 rng(98);
  int caught = 0, cases = 0;
  for (int i = 0; i < 60; ++i) {
    Spec spec = random_spec(rng);
    if (i % 2 == 0) spec.ifmap.halo = spec.weight.halo = Halo::refetch;
    const Direction dirs[] = {Direction::fwd, Direction::bwd_data, Direction::bwd_weights};
    for (const GemmWork& w : conv_work(random_conv(rng), dirs[i % 3], Lowering::bp_im2col, spec, "random")) {
      ++cases;
      if (!compare(w, spec, CostMutation::drop_halo).empty()) ++caught;
    }
  }
  EXPECT_GT(caught, cases / 4) << "dropping the halo was caught in only " << caught << " of " << cases;
}

// [array] count: several arrays sharing the buffers and links. Random descriptions (dense and
// conv-derived, every lowering and direction) with one, two and three arrays on shaken specs, and the
// ResNet-18 layers on tpu-like with two and three arrays: every counter as the contract says.
TEST(CostReference, SeveralArraysAgree) {
  std::mt19937_64 rng(15);
  int compared = 0, several = 0;
  std::string fails;
  for (int i = 0; i < 150; ++i) {
    Spec spec = random_spec(rng);
    spec.array.count = 1 + i % 3;
    std::vector<GemmWork> works;
    if (i % 2 == 0) {
      auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
      works.push_back(dense(in(1, 400), in(1, 400), in(1, 400), format_bytes(spec.array.format), rng() % 4 == 0,
                            random_dram_bytes(rng)));
    } else {
      const Direction dirs[] = {Direction::fwd, Direction::bwd_data, Direction::bwd_weights};
      const Lowering lows[] = {Lowering::explicit_im2col, Lowering::bp_im2col, Lowering::zero_skip};
      works = conv_work(random_conv(rng), dirs[rng() % 3], lows[rng() % 3], spec, "random");
    }
    for (const GemmWork& w : works) {
      const std::string f = compare(w, spec);
      ++compared;
      several += spec.array.count > 1;
      if (!f.empty() && fails.size() < 20000) fails += "count " + std::to_string(spec.array.count) + ": " + f + "\n";
    }
  }
  EXPECT_GE(several, 100);
  EXPECT_TRUE(fails.empty()) << fails;
  for (int count : {2, 3}) {
    Spec spec = load_spec("tpu-like");
    spec.array.count = count;
    for (const ConvLayer& layer : resnet18_convs(2))
      for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
        for (const GemmWork& w : conv_work(layer.desc, dir, Lowering::bp_im2col, spec, layer.name)) {
          ++compared;
          const std::string f = compare(w, spec);
          EXPECT_TRUE(f.empty()) << layer.name << " count " << count << ": " << f;
        }
  }
  report_generated("several arrays");
}

// The channel-tap mapping (tap-major operands, each tap's channels padded to the rows on WS / IS):
// every ResNet-18 layer at batch 2, every direction, every lowering on tpu-like and bp-im2col on
// every preset (WS), and on tpu-like OS (the tap-major order without padding), and 60 random
// convolutions on random specs: fast = reference.
TEST(CostReference, ChannelTapAgrees) {
  std::string fails;
  int compared = 0;
  for (const char* preset : kPresets)
    for (Dataflow df : {Dataflow::ws, Dataflow::os}) {
      Spec spec = load_spec(preset);
      spec.array.conv_mapping = ConvMapping::channel_tap;
      spec.array.dataflow = df;
      for (const ConvLayer& layer : resnet18_convs(2))
        for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
          for (Lowering l : {Lowering::explicit_im2col, Lowering::bp_im2col, Lowering::zero_skip}) {
            // Every lowering on tpu-like WS; bp-im2col (strided dX: exact per-tile loads) on the
            // other presets; OS (no padding) on tpu-like.
            const bool tpu = std::string(preset) == "tpu-like";
            if ((df == Dataflow::os || !tpu) && l != Lowering::bp_im2col) continue;
            if (df == Dataflow::os && !tpu) continue;
            for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) {
              ++compared;
              const std::string f = compare(w, spec);
              if (!f.empty())
                fails += std::string(preset) + " " + layer.name + " " + std::string(to_string(dir)) + " " +
                         std::string(to_string(l)) + ": " + f + "\n";
            }
          }
    }
  std::mt19937_64 rng(16);
  for (int i = 0; i < 60; ++i) {
    Spec spec = random_spec(rng);
    spec.array.conv_mapping = ConvMapping::channel_tap;
    const Direction dirs[] = {Direction::fwd, Direction::bwd_data, Direction::bwd_weights};
    for (const GemmWork& w : conv_work(random_conv(rng), dirs[i % 3], kAllLowerings[(i / 3) % 3], spec, "random")) {
      ++compared;
      const std::string f = compare(w, spec);
      if (!f.empty() && fails.size() < 20000) fails += "random " + std::to_string(i) + ": " + f + "\n";
    }
  }
  EXPECT_GT(compared, 250);
  EXPECT_TRUE(fails.empty()) << fails;
  report_generated("channel-tap");
}

// A wrong multi-array schedule is caught: timing the arrays as one array of count x cols columns, or
// reading the broadcast operand from SRAM once per array. With one array neither changes anything.
TEST(CostReference, WrongMultiArrayScheduleIsCaught) {
  for (CostMutation m : {CostMutation::wide_array, CostMutation::no_broadcast}) {
    std::mt19937_64 rng(1515);
    int caught = 0, cases = 0;
    for (int i = 0; i < 60; ++i) {
      Spec spec = random_spec(rng);
      auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
      const GemmWork w = dense(in(1, 300), in(1, 300), in(1, 300), 2, false);
      spec.array.count = 1;
      EXPECT_EQ(compare(w, spec, m), "") << "mutation " << int(m) << " with one array, " << to_string(spec.array.dataflow)
                                         << " " << spec.array.rows << "x" << spec.array.cols;
      spec.array.count = 2 + i % 2;
      ++cases;
      if (!compare(w, spec, m).empty()) ++caught;
    }
    EXPECT_GT(caught, cases / 3) << "mutation " << int(m) << " was caught in only " << caught << " of " << cases;
  }
}

// tpu-v3 on the four GEMMs of README "Agreement with a real TPU v3" (C stored in bf16): the fast
// model and the reference agree on every counter; the DRAM granule (32 bytes) is charged by both.
TEST(CostReference, TpuV3GemmsAgree) {
  const Spec spec = load_spec("tpu-v3");
  for (int64_t n : {256, 512, 1024, 2048}) {
    GemmWork w = dense_gemm_work({n, n, n}, spec.array.format);
    w.c.dram_elem_bytes = 2;
    EXPECT_EQ(compare(w, spec), "") << n;
  }
  // A granule makes a request of odd bytes cost whole granules: narrow tiles of an odd K are slower
  // with 64-byte granules, and the two models agree.
  Spec g = load_spec("tpu-like");
  g.ifmap.kib = g.weight.kib = 1;   // forces small tiles
  const GemmWork w = dense(300, 70, 33, 2, false);
  const double exact = cost_gemm(w, g).get("cycles.total");
  g.dram.granule_bytes = 64;
  EXPECT_EQ(compare(w, g), "");
  EXPECT_GT(cost_gemm(w, g).get("cycles.total"), exact);
}

// The buffers' ports as a timing limit (docs/cost-schedule.md "Ports"). On tpu-like the ports feed
// one 32x32 array at full rate: a second array shares them, so the output port (32 partial sums per
// cycle) stretches its steps; doubling the ports gives the second array back. Fast model and
// reference agree on every counter either way, and a fast model that ignores the ports is caught.
TEST(CostReference, PortsBindAndAgree) {
  Spec spec = load_spec("tpu-like");
  spec.array.count = 2;
  spec.dram.bandwidth_gbps = 1000;   // the arrays, not the link, set the pace
  const GemmWork w = dense(512, 512, 512, 2, false);
  EXPECT_EQ(compare(w, spec), "");
  const Stats narrow = cost_gemm(w, spec);
  EXPECT_GT(narrow.get("stall.port"), 0.1 * narrow.get("cycles.total"));
  EXPECT_NE(compare(w, spec, CostMutation::ignore_ports), "");
  Spec wide = spec;
  for (BufferSpec* b : {&wide.ifmap, &wide.weight, &wide.output}) b->port_bits *= 2;
  EXPECT_EQ(compare(w, wide), "");
  const Stats fed = cost_gemm(w, wide);
  EXPECT_EQ(fed.get("stall.port"), 0);
  EXPECT_LT(fed.get("cycles.total"), 0.8 * narrow.get("cycles.total"));
  // One array on tpu-like: the ports keep up, nothing changes.
  spec.array.count = 1;
  EXPECT_EQ(cost_gemm(w, spec).get("stall.port"), 0);
  // Random narrow ifmap / weight ports on shaken specs: the two agree, ignoring the ports is caught.
  std::mt19937_64 rng(4242);
  int caught = 0;
  for (int i = 0; i < 40; ++i) {
    Spec s = random_spec(rng);
    s.ifmap.port_bits = s.weight.port_bits = 8 * (1 + int(rng() % 8));
    auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
    const GemmWork d = dense(in(1, 300), in(1, 300), in(1, 300), format_bytes(s.array.format), false);
    EXPECT_EQ(compare(d, s), "") << i;
    if (!compare(d, s, CostMutation::ignore_ports).empty()) ++caught;
  }
  EXPECT_GT(caught, 10);
}

}  // namespace
}  // namespace st
