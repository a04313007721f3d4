#include "src/project/backward_cost.h"

#include <vector>

#include "src/base/error.h"
#include "src/cost/cost_model.h"

namespace st {

namespace {

void add(BackwardFigures& f, const Stats& s) {
  f.cycles += s.get("cycles.total");
  f.dram += s.sum_prefix("bytes.dram.");
  f.sram += s.sum_prefix("bytes.sram.");
  f.extra += s.get("storage.extra");
  f.macs += s.get("macs.issued");
}

std::vector<Direction> directions(bool with_dx) {
  if (with_dx) return {Direction::bwd_data, Direction::bwd_weights};
  return {Direction::bwd_weights};
}

}  // namespace

BackwardFigures backward_figures(const ConvLayer& layer, Lowering l, const Spec& spec, bool with_dx) {
  BackwardFigures f;
  for (Direction dir : directions(with_dx))
    for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) add(f, cost_gemm(w, spec));
  return f;
}

BackwardFigures bp_im2col_on_explicit_plan(const ConvLayer& layer, const Spec& spec, bool with_dx) {
  BackwardFigures f;
  for (Direction dir : directions(with_dx)) {
    const auto we = conv_work(layer.desc, dir, Lowering::explicit_im2col, spec, layer.name);
    const auto wb = conv_work(layer.desc, dir, Lowering::bp_im2col, spec, layer.name);
    ST_INVARIANT(we.size() == wb.size());
    for (size_t i = 0; i < we.size(); ++i) {
      ST_INVARIANT(we[i].shape.M == wb[i].shape.M && we[i].shape.N == wb[i].shape.N && we[i].shape.K == wb[i].shape.K);
      GemmPlan plan;
      cost_gemm(we[i], spec, &plan);
      add(f, cost_gemm_on_plan(wb[i], spec, plan));
    }
  }
  return f;
}

}  // namespace st
