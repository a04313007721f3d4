#pragma once
// The work limit of a shapes-only costing of a whole network: the address arithmetic of costing is
// linear in every conv layer's height and width (valid tap pairs, stride phases), so a projection is
// bounded by the sum of those extents, not by the batch (which it never loops over). The size and
// memory rules are src/base/limits.h, a convolution's kernels/conv_limits.h.
#include <string>

#include "kernels/conv_limits.h"
#include "models/netdesc.h"
#include "src/base/limits.h"
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

// The limit of a whole costing (about ten seconds).
inline constexpr double kMaxCostingSteps = 2e9;

// Host steps of a shapes-only step of `net` (conv layers; pools and the rest are linear in fewer
// terms); check_costing_work throws a UserError naming the network, its input and `flag` when it is
// more than kMaxCostingSteps.
double net_costing_steps(const NetDesc& net);
void check_costing_work(const NetDesc& net, const std::string& flag);

// ---- The cost reference (src/costref, docs/cost-schedule.md) -------------------------------------
// The reference steps a GEMM's tile schedule request by request, so its work (and the size of its
// timeline) is the schedule's size under a plan, which the contract's rules give without running it:
// - steps: the tile steps of one sub-GEMM (product of the plan's trip counts) x sub_gemms;
// - requests: the DMA requests (A and B loads, C inputs and stores, materialization reads and
//   writes), counted as the contract issues them; the reference's timeline has one slice per step
//   (the array computing) and one per request.
struct ScheduleSize {
  double steps = 0, requests = 0;
  double slices() const { return steps + requests; }
};
// `plan` must tile the (sub-)GEMM of `w` (as cost_gemm returns it); loop_order names m, n, k once each.
ScheduleSize schedule_size(const GemmWork& w, const Spec& spec, const GemmPlan& plan);

// The reference's limits (`systrain cost --reference / --trace`, lifted by --force): about a minute
// of stepping, and a timeline a trace viewer still opens (about 200 bytes per slice in the file and
// 100 in memory while it is written).
inline constexpr double kMaxReferenceSteps = 5e7;
inline constexpr double kMaxTraceSlices = 2e6;

}  // namespace st
