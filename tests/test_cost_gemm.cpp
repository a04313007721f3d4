// Cost of a GEMM: compute cycles against the closed form and the cycle-stepped reference, traffic
// invariants (DRAM >= operand size, == when everything fits; more bandwidth never slower; bigger
// buffers never more DRAM bytes), cycles >= MACs/(R*C), energy == counts x table.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "src/cost/cost_model.h"
#include "src/cost/energy.h"
#include "src/cost/report.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

GemmWork plain_gemm(int64_t M, int64_t N, int64_t K, int eb = 2) {
  GemmWork w;
  w.shape = {M, N, K};
  w.a.rows = M, w.a.cols = K, w.a.elem_bytes = eb, w.a.dram_elems = double(M * K);
  w.b.rows = K, w.b.cols = N, w.b.elem_bytes = eb, w.b.dram_elems = double(K * N);
  w.c.rows = M, w.c.cols = N, w.c.elem_bytes = 4, w.c.dram_elems = double(M * N);
  w.useful_macs = double(M) * N * K;
  return w;
}

Spec small_spec(Dataflow d, int R = 8, int C = 8) {
  Spec s = load_spec("tpu-like");
  s.array.rows = R;
  s.array.cols = C;
  s.array.dataflow = d;
  return s;
}

TEST(CostGemm, UntiledComputeEqualsClosedFormWhenEverythingFits) {
  for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    Spec s = small_spec(d);
    for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{{7, 9, 13}, {64, 64, 64}, {100, 3, 27}}) {
      GemmPlan plan;
      Stats st = cost_gemm(plain_gemm(M, N, K), s, &plan);
      EXPECT_EQ(st.get("cycles.compute"), double(gemm_compute_cycles(s.array, {M, N, K})))
          << to_string(d) << " " << M << "x" << N << "x" << K << " tiles " << plan.tile_m << ","
          << plan.tile_n << "," << plan.tile_k;
      EXPECT_EQ(st.get("bytes.dram.read.ifmap"), double(M * K * 2));
      EXPECT_EQ(st.get("bytes.dram.read.weight"), double(K * N * 2));
      EXPECT_EQ(st.get("bytes.dram.write.output"), double(M * N * 4));
      EXPECT_EQ(st.get("bytes.dram.read.output"), 0.0);
      EXPECT_GE(st.get("cycles.total"), st.get("cycles.compute"));
      EXPECT_EQ(st.get("cycles.stall"), st.get("cycles.total") - st.get("cycles.compute"));
    }
  }
}

}  // namespace
}  // namespace st

namespace st {
namespace {

std::vector<std::array<int64_t, 3>> shapes() {
  // ResNet-like conv GEMMs (M = pixels, N = filters, K = window) and odd small ones.
  return {{12544, 64, 147}, {3136, 64, 576}, {784, 128, 1152}, {196, 256, 2304}, {49, 512, 4608},
          {3136, 256, 64}, {100352, 64, 147}, {37, 5, 300}, {1, 1, 1}, {5000, 1000, 2048}};
}

TEST(CostGemm, ComputeMatchesCycleSteppedReference) {
  std::mt19937 rng(7);
  for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is})
    for (int trial = 0; trial < 12; ++trial) {
      ArrayConfig cfg;
      cfg.rows = 1 + int(rng() % 5);
      cfg.cols = 1 + int(rng() % 5);
      cfg.dataflow = d;
      cfg.format = Format::fp32;
      const GemmShape g{1 + int64_t(rng() % 11), 1 + int64_t(rng() % 11), 1 + int64_t(rng() % 11)};
      std::vector<float> A(g.M * g.K, 1.0f), B(g.K * g.N, 0.5f), C(g.M * g.N);
      const int64_t ref = systolic_gemm_reference(cfg, g, {A.data(), g.K}, {B.data(), g.N}, C.data(), g.N);
      EXPECT_EQ(ref, gemm_compute_cycles(cfg, g)) << to_string(d) << " " << g.M << "x" << g.N << "x" << g.K;
      // With everything on chip and no memory time, the cost model's compute is the closed form.
      Spec s = load_spec("tpu-like");
      s.array = cfg;
      s.dram.latency_ns = 0;
      s.dram.bandwidth_gbps = 1e6;
      EXPECT_EQ(cost_gemm(plain_gemm(g.M, g.N, g.K), s).get("cycles.compute"), double(ref));
    }
}

TEST(CostGemm, Invariants) {
  for (const char* preset : {"tpu-like", "simdit-16x16", "bp-im2col-16x16"})
    for (auto [M, N, K] : shapes()) {
      const Spec s = load_spec(preset);
      const GemmWork w = plain_gemm(M, N, K);
      GemmPlan plan;
      const Stats st = cost_gemm(w, s, &plan);
      const std::string what = std::string(preset) + " " + std::to_string(M) + "x" +
                                std::to_string(N) + "x" + std::to_string(K);
      EXPECT_GE(st.get("bytes.dram.read.ifmap"), double(M * K * 2)) << what;
      EXPECT_GE(st.get("bytes.dram.read.weight"), double(K * N * 2)) << what;
      EXPECT_GE(st.get("bytes.dram.write.output"), double(M * N * 4)) << what;
      const double pes = double(s.array.rows) * s.array.cols;
      EXPECT_GE(st.get("cycles.total"), double(M) * N * K / pes) << what;
      EXPECT_GE(st.get("cycles.compute"), double(gemm_compute_cycles(s.array, {M, N, K}))) << what;
      EXPECT_EQ(st.get("cycles.stall"), st.get("cycles.total") - st.get("cycles.compute")) << what;
      EXPECT_EQ(st.get("macs.issued"), double(M) * N * K);
      // The plan fits the buffers.
      EXPECT_LE(double(plan.tile_m * plan.tile_k * 2), s.ifmap.kib * 1024) << what;
      EXPECT_LE(double(plan.tile_k * plan.tile_n * 2), s.weight.kib * 1024) << what;
      EXPECT_LE(double(plan.tile_m * plan.tile_n * 4), s.output.kib * 1024) << what;
      EXPECT_GT(plan.candidates_evaluated, 0);
      // Bytes conserved between levels: what DRAM delivers is written into the buffer.
      EXPECT_EQ(st.get("bytes.sram.ifmap.write"), st.get("bytes.dram.read.ifmap"));
      EXPECT_EQ(st.get("bytes.sram.weight.write"), st.get("bytes.dram.read.weight"));

      // More bandwidth never costs more cycles.
      Spec fast = s;
      fast.dram.bandwidth_gbps *= 4;
      for (BufferSpec* b : {&fast.ifmap, &fast.weight, &fast.output}) b->dram_link_bits_per_cycle *= 4;
      EXPECT_LE(cost_gemm(w, fast).get("cycles.total"), st.get("cycles.total")) << what;
      // A bigger buffer never moves more DRAM bytes.
      for (int which = 0; which < 3; ++which) {
        Spec big = s;
        BufferSpec* b[] = {&big.ifmap, &big.weight, &big.output};
        b[which]->kib *= 4;
        EXPECT_LE(cost_gemm(w, big).sum_prefix("bytes.dram."), st.sum_prefix("bytes.dram.") * (1 + 1e-12))
            << what << " buffer " << which;
      }
    }
}

TEST(CostGemm, EnergyIsCountsTimesTable) {
  const Spec s = load_spec("simdit-16x16");
  const Stats st = cost_gemm(plain_gemm(3136, 64, 576), s);
  const EnergyTable& e = s.energy;
  EXPECT_DOUBLE_EQ(st.get("energy.mac"), st.get("macs.issued") * e.mac_bf16);
  EXPECT_DOUBLE_EQ(st.get("energy.pe"), st.get("pe.hops.operand") * e.pe_hop_16 +
                                            st.get("pe.hops.psum") * e.pe_hop_32 +
                                            st.get("pe.reg_write_bits") * e.pe_reg_write_per_bit);
  EXPECT_DOUBLE_EQ(st.get("energy.dram"), st.sum_prefix("bytes.dram.") * 8 * s.dram.energy_pj_per_bit);
  // SRAM: accesses of the port width, E0 scaled by capacity and width (energy.md formula).
  const double port = s.ifmap.port_bits;
  const double per_read = e.sram_read_64b_32kib * std::pow(port / 64, 0.7) *
                          std::pow(s.ifmap.kib / 32, port >= 256 ? e.sram_alpha_wide : e.sram_alpha_narrow);
  EXPECT_DOUBLE_EQ(st.get("energy.sram.ifmap"),
                   (st.get("bytes.sram.ifmap.read") + st.get("bytes.sram.ifmap.write") * e.sram_write_to_read) /
                       (port / 8) * per_read);
  const double sram_mib = (32 * 2 + 32 * 2 + 64 * 2 + 64) / 1024.0;
  EXPECT_DOUBLE_EQ(st.get("energy.leakage"), (e.logic_leakage_mw + e.sram_leakage_mw_per_mib * sram_mib) *
                                                 st.get("cycles.total") / s.clock_ghz);
  double sum = 0;
  for (const auto& [k, v] : st.values())
    if (k.starts_with("energy.")) sum += v;
  EXPECT_DOUBLE_EQ(st.sum_prefix("energy."), sum);
  EXPECT_GT(st.get("energy.sram.output"), 0);
}

TEST(CostGemm, ZeroSpaceAndMaterialization) {
  const Spec s = load_spec("tpu-like");
  GemmWork w = plain_gemm(3136, 64, 1152);
  const Stats dense = cost_gemm(w, s);
  GemmWork bp = w;  // BP-im2col: compact backing, zeros injected at the edge
  bp.a.dram_elems = 3136.0 * 1152 / 4;
  bp.a.sram_elems_per_virtual = 0.25;
  bp.a.fetched_fraction = 0.25;
  const Stats sb = cost_gemm(bp, s);
  EXPECT_EQ(sb.get("macs.issued"), dense.get("macs.issued"));
  EXPECT_LT(sb.get("bytes.dram.read.ifmap"), dense.get("bytes.dram.read.ifmap"));
  EXPECT_LT(sb.get("bytes.sram.ifmap.read"), dense.get("bytes.sram.ifmap.read"));
  EXPECT_EQ(sb.get("bytes.edge.ifmap") > 0, true);
  GemmWork ex = w;  // explicit: materialized zero-space written and read back
  ex.a.extra_dram_write_bytes = 1e6;
  ex.a.extra_dram_read_bytes = 2.5e5;
  ex.a.extra_storage_bytes = 7.5e5;
  const Stats se = cost_gemm(ex, s);
  EXPECT_DOUBLE_EQ(se.get("bytes.dram.write.ifmap"), 1e6);
  EXPECT_DOUBLE_EQ(se.get("bytes.dram.read.ifmap"), dense.get("bytes.dram.read.ifmap") + 2.5e5);
  EXPECT_DOUBLE_EQ(se.get("storage.extra"), 7.5e5);
  EXPECT_GT(se.get("cycles.total"), dense.get("cycles.total"));
  // Sub-GEMMs: the same total MACs as the whole.
  GemmWork sub = w;
  sub.sub_gemms = 4;
  EXPECT_DOUBLE_EQ(cost_gemm(sub, s).get("macs.issued"), dense.get("macs.issued"));
}

TEST(CostGemm, AccumulateIntoCReadsC) {
  const Spec s = load_spec("tpu-like");
  GemmWork w = plain_gemm(64, 64, 3136);  // C fits in one output bank: no partial-sum spills
  EXPECT_EQ(cost_gemm(w, s).get("bytes.dram.read.output"), 0.0);
  w.accumulate_into_c = true;
  EXPECT_DOUBLE_EQ(cost_gemm(w, s).get("bytes.dram.read.output"), 64.0 * 64 * 4);
  GemmWork big = plain_gemm(64, 1152, 3136);
  big.accumulate_into_c = true;
  EXPECT_GE(cost_gemm(big, s).get("bytes.dram.read.output"), 64.0 * 1152 * 4);
}

// [array] count on one plan: what the arrays share does not move (DRAM bytes, array-edge bytes, folds,
// MACs, MAC and PE energy), the broadcast operand is read from SRAM ceil(folds / count) times per
// fold slot, compute is the busiest array's, leakage is count x the logic's over the run, and the
// utilization is over every array's PEs.
TEST(CostGemm, SeveralArraysShareTheBuffersOnOnePlan) {
  for (Dataflow d : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    Spec one = load_spec("tpu-like");
    one.array.dataflow = d;
    const GemmWork w = plain_gemm(500, 300, 200);
    GemmPlan plan;
    plan.tile_m = 256, plan.tile_n = 160, plan.tile_k = 96, plan.loop_order = "m,n,k";
    const Stats s1 = cost_gemm_on_plan(w, one, plan);
    for (int count : {2, 3}) {
      Spec many = one;
      many.array.count = count;
      const Stats s = cost_gemm_on_plan(w, many, plan);
      const std::string what = std::string(to_string(d)) + " count " + std::to_string(count);
      for (const auto& [k, v] : s1.values()) {
        const bool moves = k.starts_with("cycles.") || k.starts_with("stall.") || k == "energy.leakage" ||
                           k == (d == Dataflow::is ? "bytes.sram.weight.read" : "bytes.sram.ifmap.read") ||
                           k == (d == Dataflow::is ? "energy.sram.weight" : "energy.sram.ifmap");
        if (!moves) {
          EXPECT_EQ(s.get(k), v) << what << " " << k;
        }
      }
      // Column folds per tile: OS/WS N tiles 160, 140 (cols 32: 5 folds each); IS M tiles 256, 244 (8 each).
      const double folds = d == Dataflow::is ? 8 : 5, slots = std::ceil(folds / count);
      const std::string bcast = d == Dataflow::is ? "bytes.sram.weight.read" : "bytes.sram.ifmap.read";
      EXPECT_DOUBLE_EQ(s.get(bcast), s1.get(bcast) * slots / folds) << what;
      // Row folds x busiest column folds x per-fold cycles, summed over the tiles.
      int64_t compute = 0;
      for (int64_t m0 = 0; m0 < 500; m0 += 256)
        for (int64_t n0 = 0; n0 < 300; n0 += 160)
          for (int64_t k0 = 0; k0 < 200; k0 += 96) {
            const GemmShape t{std::min<int64_t>(256, 500 - m0), std::min<int64_t>(160, 300 - n0),
                              std::min<int64_t>(96, 200 - k0)};
            compute += gemm_compute_cycles(many.array, t);
          }
      EXPECT_EQ(s.get("cycles.compute"), double(compute)) << what;
      EXPECT_LT(s.get("cycles.compute"), s1.get("cycles.compute")) << what;
      EXPECT_GE(s.get("cycles.total"), s1.get("cycles.total") / count) << what;
      EXPECT_DOUBLE_EQ(s.get("energy.leakage"), leakage_energy_pj(many, s.get("cycles.total"))) << what;
      EXPECT_DOUBLE_EQ(leakage_mw(many) - leakage_mw(one), (count - 1) * one.energy.logic_leakage_mw) << what;
      const Derived dv = derive(s, many);
      EXPECT_DOUBLE_EQ(dv.utilization, s.get("macs.useful") / (s.get("cycles.total") * 32 * 32 * count)) << what;
    }
  }
}

}  // namespace
}  // namespace st
