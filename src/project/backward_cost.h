#pragma once
// The backward pass (dX + dW) of the conv layers of a topology under one lowering, costed by the
// cost model in timing-only mode: what `systrain bpcompare` reports per layer and in total.
#include <cstddef>

#include "src/ops/conv.h"
#include "src/spec/spec.h"
#include "src/topology/conv_topology.h"

namespace st {

struct BackwardFigures {
  double cycles = 0, dram = 0, sram = 0, extra = 0, macs = 0;   // extra: storage.extra (bytes)
  BackwardFigures& operator+=(const BackwardFigures& o) {
    cycles += o.cycles, dram += o.dram, sram += o.sram, extra += o.extra, macs += o.macs;
    return *this;
  }
};

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

}  // namespace st
