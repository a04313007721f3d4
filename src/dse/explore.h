#pragma once
// One design-space exploration, start to end: build the points (sweeps or a budget), cost them
// (Evaluator), choose (analysis.h) and gather what the outputs show (DseRun). The CLI, the tests and
// the benchmark all go through `explore`.
#include <string>
#include <vector>

#include "src/dse/report.h"

namespace st {
class Replicas;
}

namespace st::dse {

struct ExploreOptions {
  Lowering lowering = Lowering::bp_im2col;
  StepMode mode = StepMode::train;
  std::vector<std::string> sweeps;   // --sweep expressions
  std::string budget;                // --budget expression; empty: sweep mode
  double economical_pct = 5;
  // mpirun -np P systrain dse: the design points are split into P contiguous blocks, one per rank,
  // and the results gathered in point order, so every rank holds what one process computes (each
  // point is costed on its own: the same bits wherever it runs). Null: this process costs them all.
  Replicas* ranks = nullptr;
};

DseRun explore(const NetDesc& net, const Spec& base, const ExploreOptions& o);

}  // namespace st::dse
