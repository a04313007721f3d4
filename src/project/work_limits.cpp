#include "src/project/work_limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "src/base/error.h"
#include "src/project/node_ops.h"

namespace st {

double net_costing_steps(const NetDesc& net) {
  double steps = 0;
  for (size_t i = 0; i < net.nodes.size(); ++i)
    if (net.nodes[i].kind == NodeKind::conv) steps += conv_costing_steps(conv_desc(net, int(i)));
  return steps;
}

void check_costing_work(const NetDesc& net, const std::string& flag) {
  const double steps = net_costing_steps(net);
  if (steps <= kMaxCostingSteps) return;
  throw UserError(fmt::format("costing {} on a {}x{} input takes about {:.2g} host steps (linear in every conv "
                              "layer's height and width), more than the limit of {:.2g} (about ten seconds); "
                              "use a smaller {}",
                              net.name, net.in_h, net.in_w, steps, kMaxCostingSteps, flag));
}

namespace {

// Steps at which the index of an operand depending on the dims in `dep` differs from the previous
// step's (the first step included), when the loops `order` (outermost first) run `trip` times each.
// At a step where loop p advances, the loops inside p restart; the index changes when p is one of
// the operand's dims, or when one of its dims inside p restarts from a value other than 0.
double index_changes(const int order[3], const int64_t trip[3], const bool dep[3]) {
  double changes = 1, outer = 1;
  for (int p = 0; p < 3; ++p) {
    bool changes_here = dep[order[p]];
    for (int q = p + 1; q < 3; ++q) changes_here |= dep[order[q]] && trip[order[q]] > 1;
    if (changes_here) changes += outer * double(trip[order[p]] - 1);
    outer *= double(trip[order[p]]);
  }
  return changes;
}

}  // namespace

ScheduleSize schedule_size(const GemmWork& w, const Spec& spec, const GemmPlan& plan) {
  enum { kM, kN, kK };
  // The sub-GEMM the reference steps sub_gemms times (docs/cost-schedule.md).
  const int64_t copies = std::max<int64_t>(1, w.sub_gemms);
  const int64_t M = (w.shape.M + copies - 1) / copies, N = w.shape.N, K = w.shape.K;
  const int64_t tile[3] = {plan.tile_m, plan.tile_n, plan.tile_k};
  ST_INVARIANT(tile[kM] > 0 && tile[kN] > 0 && tile[kK] > 0);
  const int64_t trip[3] = {(M + tile[kM] - 1) / tile[kM], (N + tile[kN] - 1) / tile[kN], (K + tile[kK] - 1) / tile[kK]};
  int order[3], n = 0;
  for (char c : plan.loop_order) {
    if (c == ',') continue;
    ST_INVARIANT(n < 3 && (c == 'm' || c == 'n' || c == 'k'));
    order[n++] = c == 'm' ? kM : c == 'n' ? kN : kK;
  }
  ST_INVARIANT(n == 3 && order[0] != order[1] && order[0] != order[2] && order[1] != order[2]);

  const bool dep_a[3] = {true, false, true}, dep_b[3] = {false, true, true}, dep_c[3] = {true, true, false};
  const double md = double(M), nd = double(N), kd = double(K);
  const bool resident_a = md * kd * w.a.sram_elems_per_virtual * w.a.elem_bytes <= spec.ifmap.kib * 1024;
  const bool resident_b = kd * nd * w.b.sram_elems_per_virtual * w.b.elem_bytes <= spec.weight.kib * 1024;
  const bool resident_c = md * nd * 4 <= spec.output.kib * 1024;
  const double tiles_a = double(trip[kM]) * double(trip[kK]), tiles_b = double(trip[kK]) * double(trip[kN]);
  const double tiles_c = double(trip[kM]) * double(trip[kN]);
  const double loads_a = resident_a ? tiles_a : index_changes(order, trip, dep_a);
  const double loads_b = resident_b ? tiles_b : index_changes(order, trip, dep_b);
  const double visits_c = index_changes(order, trip, dep_c);
  // A visit stores when it ends (the output, or a spill unless C is resident); one that is not its
  // tile's first brings the partial sums back (unless resident), a first one brings C in when
  // accumulating into it.
  const double stores = resident_c ? tiles_c : visits_c;
  const double inputs = (resident_c ? 0 : visits_c - tiles_c) + (w.accumulate_into_c ? tiles_c : 0);
  double materialize = 0;
  for (const OperandDesc* o : {&w.a, &w.b, &w.c})
    for (double bytes : {o->extra_dram_read_bytes, o->extra_dram_write_bytes})
      materialize += std::llround(bytes / double(copies)) > 0;
  ScheduleSize s;
  s.steps = double(copies) * double(trip[kM]) * double(trip[kN]) * double(trip[kK]);
  s.requests = double(copies) * (loads_a + loads_b + inputs + stores + materialize);
  return s;
}

}  // namespace st
