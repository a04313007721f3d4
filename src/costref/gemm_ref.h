#pragma once
// The cost reference: a plain discrete-event simulator of a GEMM's tile schedule (docs/cost-schedule.md).
// It takes the same work description, spec and plan as the fast model (src/cost/gemm_cost.cpp) and
// steps the schedule request by request: an event queue, one in-order DMA engine per DRAM link with
// `max_outstanding` requests in flight, buffer slots that free when the compute using them ends, the
// array computing each tile (edge tiles included) in its closed-form fold cycles (proven by the
// PE-level reference, kernels/systolic_ref.cpp). It shares no code with the fast model: library
// st_costref links only st_kernels and st_base, and includes only the description types.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st::costref {

// One slice of the schedule's timeline (a transfer on a link, or a tile computing on the array).
struct Slice {
  int track = 0;            // index into Result::tracks
  std::string name;         // "load A", "load B", "input C", "spill C", "store C", "read A (materialize)", "compute"
  int64_t start = 0, end = 0;  // cycles; for a transfer: [start (issued), complete)
  int64_t bytes = 0;        // transfers only
  int64_t m = -1, n = -1, k = -1;  // tile indices (-1: not a tile's)
  int64_t step = -1;        // step index (compute, and the step a load feeds / a store follows)
  int sub_gemm = 0;
};

struct Result {
  // Counters with the fast model's names (src/cost/stats.cpp): cycles.*, stall.*, tiles, folds,
  // macs.*, bytes.dram.*, bytes.edge.*, bytes.sram.*, pe.*, energy.*, storage.extra.
  std::map<std::string, double> counters;
  std::vector<std::string> tracks;  // "array", "dram link (shared)", "ifmap link", ... (trace only)
  std::vector<Slice> slices;        // filled only when asked for
};

// Simulates `w` on `spec` under `plan` (tile sizes and loop order as the fast model's tiler chose
// them). Throws std::invalid_argument on a plan that does not describe a tiling of w.
Result simulate_gemm(const GemmWork& w, const Spec& spec, const GemmPlan& plan, bool want_trace = false);

}  // namespace st::costref
