#pragma once
// What every op receives besides its tensors: the modeled machine and where to describe its work.
// Numerics and cost meet here (DESIGN.md): an op computes the exact result with the kernels and
// hands a GemmWork / VectorWork description to the sink (WorkSink, src/cost/work.h). The Ledger
// (src/cost/ledger.h) turns it into Stats through the pure cost model, caching by shape. With no
// sink an op only computes numbers, and a test proves the numbers are the same either way.
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

struct ExecContext {
  const Spec* spec = nullptr;     // never null when an op runs
  WorkSink* sink = nullptr;       // null: numerics only, nothing counted
  std::string layer;              // name prefix for Tag::layer of the work this op describes

  void emit(const GemmWork& w) const { if (sink) sink->gemm(w); }
  void emit(const VectorWork& w) const { if (sink) sink->vector(w); }
};

}  // namespace st
