#pragma once
// The backward pass (dX + dW) of the conv layers of a topology under one lowering, costed by the
// cost model in timing-only mode: what `systrain bpcompare` reports per layer and in total.
#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

#include "src/ops/conv.h"
#include "src/spec/spec.h"
#include "src/topology/conv_topology.h"

namespace st {

// Figures of a layer's backward GEMMs (README "bpcompare" defines each). The refinements sum to the
// figure they refine: the six dram_* to `dram`, the three sram_* to `sram`.
struct BackwardFigures {
  double cycles = 0, dram = 0, sram = 0, extra = 0, macs = 0;   // extra: storage.extra (bytes)
  // DRAM bytes (read + written) by the tensor moved: X (dW's B), the weights (dX's B), dY (the
  // lowered operand's backing, or the tensor explicit's copy is built from), dX and dW (C: stores,
  // spills, dW's accumulate read, zero-skip's zero-fill), explicit's copy (U_pad / dilated dY:
  // written once, read by the tiles).
  double dram_src = 0, dram_wei = 0, dram_diff_dst = 0, dram_diff_src = 0, dram_diff_wei = 0, dram_copy = 0;
  // SRAM bytes of the lowered operand (A of both backward GEMMs: U_pad / B'^T for dX, the dilated dY
  // for dW; zero-skip: its zero-free dY operands) read into the array and written by its fills, and
  // of the weight and output buffers (B and C) together.
  double sram_lowered_read = 0, sram_lowered_write = 0, sram_other = 0;
  BackwardFigures& operator+=(const BackwardFigures& o);
};

// Every figure with its name in JSON and CSV, in output order.
const std::vector<std::pair<std::string_view, double BackwardFigures::*>>& backward_figure_fields();
// The figure of that name, or the sum of two ("dram_diff_dst_bytes+dram_copy_bytes"); an unknown name
// is a bug.
double figure_value(const BackwardFigures& f, std::string_view name);

// Whether the backward of layer `index` of a topology computes dX. The first layer (the stem) reads
// the network's input, whose gradient training never computes (src/train/network.cpp, the
// projection): its backward is dW only, unless `include_stem_dx` asks for the dX too.
inline bool backward_computes_dx(size_t index, bool include_stem_dx) { return index > 0 || include_stem_dx; }

// dW (and dX when `with_dx`) of one layer: every GEMM of conv_work costed by cost_gemm and summed.
// Each GEMM on the plan the tiler picks for it in this lowering.
BackwardFigures backward_figures(const ConvLayer& layer, Lowering l, const Spec& spec, bool with_dx);
// The same for BP-im2col with each GEMM on the plan the tiler picks for explicit im2col's (same GEMM
// shapes; BP-im2col's operands never need more buffer than explicit's), so that a difference from
// explicit is the lowering's alone, not the tiler's. (Zero-skip's GEMMs have other shapes: no shared
// plan.)
BackwardFigures bp_im2col_on_explicit_plan(const ConvLayer& layer, const Spec& spec, bool with_dx);

// A topology's backward in both views, per layer and summed: each lowering on its own plans
// (indexed by Lowering) and BP-im2col on explicit's plans.
struct BackwardComparison {
  struct Layer {
    bool with_dx = true;
    BackwardFigures mode[3], shared;
  };
  std::vector<Layer> layers;
  BackwardFigures total[3], total_shared;
};
BackwardComparison compare_backward(const std::vector<ConvLayer>& layers, const Spec& spec, bool include_stem_dx);

// Reduction of `x` against the baseline `base` in percent (100 * (1 - x / base)); 0 when base is 0.
double reduction_percent(double base, double x);

}  // namespace st
