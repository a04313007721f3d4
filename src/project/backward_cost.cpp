#include "src/project/backward_cost.h"

#include "src/cost/cost_model.h"

namespace st {

BackwardFigures backward_figures(const ConvLayer& layer, Lowering l, const Spec& spec, bool with_dx) {
  BackwardFigures f;
  for (Direction dir : {Direction::bwd_data, Direction::bwd_weights}) {
    if (dir == Direction::bwd_data && !with_dx) continue;
    for (const GemmWork& w : conv_work(layer.desc, dir, l, spec, layer.name)) {
      const Stats s = cost_gemm(w, spec);
      f.cycles += s.get("cycles.total");
      f.dram += s.sum_prefix("bytes.dram.");
      f.sram += s.sum_prefix("bytes.sram.");
      f.extra += s.get("storage.extra");
      f.macs += s.get("macs.issued");
    }
  }
  return f;
}

}  // namespace st
