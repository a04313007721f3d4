#pragma once
// Costing many design points of one network step. The step's work list does not depend on buffer
// sizes, bandwidths, array shape or dataflow (only on the array format, the weights' storage, the
// vector lanes and whether BN/ReLU fuse with the conv, and under the channel-tap mapping the array
// rows and dataflow, which pad its GEMMs: `work_key`), so it is described once per key and
// deduplicated by cost_key; each point then costs only the distinct descriptions and sums them in
// record order, which gives exactly (bit for bit) the totals a fresh project() + Ledger would.
// Points are evaluated in parallel (OpenMP); each result is written to its own index, so results do
// not depend on the thread count.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/lowering.h"
#include "models/netdesc.h"
#include "src/cost/stats.h"
#include "src/dse/sweep.h"
#include "src/project/projection.h"

namespace st::dse {

struct PointResult {
  double cycles = 0, compute_cycles = 0, stall_cycles = 0;
  double seconds = 0, energy_j = 0;
  double sram_bytes = 0, dram_bytes = 0;
};

// Which spec fields the work descriptions depend on (src/ops *_work functions, projection.cpp).
std::string work_key(const Spec& spec);

// One step's work, deduplicated: the distinct descriptions and, per record, which one it is.
struct StepWork {
  std::vector<GemmWork> gemms;        // distinct (by cost_key)
  std::vector<VectorWork> vectors;    // distinct (by cost_key)
  std::vector<int32_t> record_item;   // per record in emission order: gemm i -> i, vector j -> -1 - j
  std::vector<Tag> tags;              // per record
};
StepWork describe_distinct(const NetDesc& net, const Spec& spec, Lowering lowering, StepMode mode);

class Evaluator {
 public:
  Evaluator(const NetDesc& net, Lowering lowering, StepMode mode)
      : net_(net), lowering_(lowering), mode_(mode) {}
  // Costs every point (OpenMP over points). `totals`, if given, receives each point's total Stats.
  std::vector<PointResult> run(const std::vector<DesignPoint>& pts, std::vector<Stats>* totals = nullptr);
  // Distinct descriptions costed per point (for the report), after run().
  size_t distinct_per_point() const { return distinct_; }

 private:
  const NetDesc& net_;
  Lowering lowering_;
  StepMode mode_;
  size_t distinct_ = 0;
};

}  // namespace st::dse
