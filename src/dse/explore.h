#pragma once
// One design-space exploration, start to end: build the points (sweeps or a budget), cost them
// (Evaluator), choose (analysis.h) and gather what the outputs show (DseRun). The CLI, the tests and
// the benchmark all go through `explore`.
#include <string>
#include <vector>

#include "src/dse/report.h"

namespace st::dse {

struct ExploreOptions {
  Lowering lowering = Lowering::bp_im2col;
  StepMode mode = StepMode::train;
  std::vector<std::string> sweeps;   // --sweep expressions
  std::string budget;                // --budget expression; empty: sweep mode
  double economical_pct = 5;
};

DseRun explore(const NetDesc& net, const Spec& base, const ExploreOptions& o);

}  // namespace st::dse
