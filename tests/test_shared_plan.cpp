// BP-im2col against explicit im2col on one shared plan (explicit's): the tiler picks a plan per
// mode, so with its own plans a mode can move more bytes than another for a reason that is the
// tiler's, not the lowering's. On explicit's plan the difference is the lowering's alone.
#include <gtest/gtest.h>

#include <string>

#include "src/cost/cost_model.h"
#include "src/ops/conv.h"
#include "src/project/backward_cost.h"
#include "src/spec/spec_toml.h"
#include "src/topology/conv_topology.h"

namespace st {
namespace {

// The plan is the whole input of the cost beyond the description: forcing the plan the search chose
// gives the search's figures, counter for counter.
TEST(SharedPlan, ForcingTheChosenPlanGivesTheSameCost) {
  int compared = 0;
  for (const std::string& preset : preset_names()) {
    const Spec spec = load_spec(preset);
    for (const ConvLayer& layer : resnet18_convs(1))
      for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
        for (Lowering l : {Lowering::explicit_im2col, Lowering::bp_im2col})
          for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) {
            GemmPlan plan;
            const Stats s = cost_gemm(w, spec, &plan);
            const Stats f = cost_gemm_on_plan(w, spec, plan);
            EXPECT_EQ(s.values(), f.values()) << preset << " " << layer.name << " " << to_string(dir);
            ++compared;
          }
  }
  EXPECT_GT(compared, 0);
}

// Explicit's description with its copy kept in dY's DRAM format (fp32), as before issue 14: the same
// lowering, the format of the copy taken out of the comparison.
GemmWork copy_in_dy_format(GemmWork w) {
  OperandDesc& a = w.a;
  if (a.extra_dram_write_bytes <= 0) return w;
  const double copy_elems = a.extra_dram_write_bytes / a.dram_bytes();
  a.dram_elem_bytes = a.extra_read_bytes();
  a.extra_read_elem_bytes = 0;
  a.extra_dram_write_bytes = a.extra_storage_bytes = copy_elems * a.dram_bytes();
  return w;
}

// What `b` moves beyond `e` on the array edge and in the SRAM buffers (per counter and per level),
// and beyond `e_dram` in DRAM; empty if nothing.
std::string excess(const std::string& what, const Stats& b, const Stats& e, const Stats& e_dram) {
  std::string out;
  for (const auto& [k, x] : b.values()) {
    const bool dram = k.rfind("bytes.dram.", 0) == 0;
    if (!dram && k.rfind("bytes.sram.", 0) != 0 && k.rfind("bytes.edge.", 0) != 0) continue;
    const double y = (dram ? e_dram : e).get(k);
    if (x > y) out += what + k + ": " + std::to_string(x) + " > " + std::to_string(y) + "\n";
  }
  for (const char* level : {"bytes.sram.", "bytes.edge."})
    if (b.sum_prefix(level) > e.sum_prefix(level)) out += what + level + " total\n";
  if (b.sum_prefix("bytes.dram.") > e_dram.sum_prefix("bytes.dram.")) out += what + "bytes.dram. total\n";
  return out;
}

// On explicit's plan, BP-im2col never moves more bytes than explicit at the array edge or in any
// SRAM buffer (read or write), and never more DRAM bytes in any role than explicit would in the same
// DRAM format; every ResNet-18 and ResNet-50 layer (batch 1 and 2), dX and dW, every preset.
// Against the fair explicit, whose copy is bf16 (cast once as it is built), BP-im2col's fp32 re-reads
// of dY can move more DRAM bytes on a padded stride-1 dX (README "bpcompare"): the format's
// difference, not the lowering's, which this test keeps apart.
TEST(SharedPlan, OnExplicitsPlanBpIm2colNeverMovesMore) {
  std::string fails;
  int compared = 0, copies = 0, reverse = 0;
  for (const std::string& preset : preset_names()) {
    const Spec spec = load_spec(preset);
    for (int64_t batch : {1, 2})
      for (const auto& layers : {resnet18_convs(batch), resnet50_convs(batch)})
        for (const ConvLayer& layer : layers)
          for (Direction dir : {Direction::bwd_data, Direction::bwd_weights}) {
            const GemmWork we = conv_work(layer.desc, dir, Lowering::explicit_im2col, spec, layer.name)[0];
            const GemmWork wb = conv_work(layer.desc, dir, Lowering::bp_im2col, spec, layer.name)[0];
            GemmPlan plan;
            const Stats se = cost_gemm(we, spec, &plan);
            const Stats sb = cost_gemm_on_plan(wb, spec, plan);
            const Stats sf = cost_gemm_on_plan(copy_in_dy_format(we), spec, plan);
            copies += we.a.extra_dram_write_bytes > 0;
            ++compared;
            const std::string what = preset + " b" + std::to_string(batch) + " " + layer.name + " " +
                                     std::string(to_string(dir)) + " ";
            fails += excess(what, sb, se, sf);
            // The check can fail: explicit measured against BP-im2col moves more somewhere.
            reverse += !excess(what, se, sb, sb).empty();
          }
  }
  EXPECT_GT(copies, 0);   // the comparison meets materialized copies
  EXPECT_GT(compared, copies);
  EXPECT_GT(reverse, 0);
  EXPECT_TRUE(fails.empty()) << fails;
}

// The lowered operand (A of both backward GEMMs) at the level of a layer's whole backward: on
// explicit's plans BP-im2col reads no more of it from SRAM into the array than explicit, every
// ResNet-18 / ResNet-50 layer at batch 1 on every preset, and strictly less wherever explicit built
// a copy with inserted zeros (a strided layer): the check can fail.
TEST(SharedPlan, LoweredOperandSramReadsNeverExceedExplicits) {
  std::string fails;
  int strided = 0;
  for (const std::string& preset : preset_names()) {
    const Spec spec = load_spec(preset);
    for (const auto& layers : {resnet18_convs(1), resnet50_convs(1)})
      for (size_t i = 0; i < layers.size(); ++i) {
        const bool with_dx = backward_computes_dx(i, false);
        const double e = backward_figures(layers[i], Lowering::explicit_im2col, spec, with_dx).sram_lowered_read;
        const double b = bp_im2col_on_explicit_plan(layers[i], spec, with_dx).sram_lowered_read;
        const bool zeros = layers[i].desc.sh > 1 || layers[i].desc.sw > 1;
        strided += zeros;
        if (b > e || (zeros && !(b < e)))
          fails += preset + " " + layers[i].name + ": " + std::to_string(b) + " vs explicit " + std::to_string(e) + "\n";
      }
  }
  EXPECT_GT(strided, 0);
  EXPECT_TRUE(fails.empty()) << fails;
}

}  // namespace
}  // namespace st
