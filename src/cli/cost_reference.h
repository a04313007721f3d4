#pragma once
// `systrain cost --reference / --trace`: the cost reference (src/costref, docs/cost-schedule.md) run
// with the plans the fast model chose, its work limits, the contract's comparison, and its timeline
// written as a Chrome trace (src/io/chrome_trace.h).
#include <optional>
#include <string>
#include <vector>

#include "src/cost/stats.h"
#include "src/cost/work.h"
#include "src/costref/gemm_ref.h"
#include "src/io/output_file.h"
#include "src/project/work_limits.h"
#include "src/spec/spec.h"

namespace st::cli {

// One GEMM of a `cost` run: its description, the fast model's plan and counters, the size of its
// schedule under that plan, and (when asked for) the reference's result and what breaks the contract.
struct CostedGemm {
  GemmWork work;
  GemmPlan plan;
  Stats fast;
  ScheduleSize size;
  std::optional<costref::Result> reference;
  std::vector<std::string> disagreements;
};

// Refuses (UserError naming `flag`, the figure and the limit) a run whose steps (or, with `trace`,
// slices) are beyond kMaxReferenceSteps (kMaxTraceSlices) unless `force`, and, even with it, a trace
// whose timeline would not fit in this machine's memory.
void check_reference_work(const std::vector<CostedGemm>& gemms, bool trace, bool force, const std::string& flag);
// Runs the reference on every GEMM with its plan (keeping the timeline when `want_trace`) and compares
// it with the fast model (costref::disagreements); a plan the reference refuses is a disagreement too.
void run_reference(std::vector<CostedGemm>& gemms, const Spec& spec, bool want_trace);

// The reference's timelines of `gemms`, back to back (GEMM g starts when GEMM g-1's total ends), as a
// Chrome trace: one track per reference track that has slices (the array, each DRAM link used), a
// track whose slices overlap (several DMA requests in flight) split into rows "NAME", "NAME #2", ...
// Slice args: cycle_start, cycle_end, step, bytes (transfers), m / n / k (tile indices) and tm / tn /
// tk (that tile's sizes), gemm (several GEMMs), sub_gemm (zero-skip sub-GEMMs).
// Returns the number of slices written.
int64_t write_cost_trace(io::PendingFile& out, const std::vector<CostedGemm>& gemms, const Spec& spec,
                         const std::string& title);

}  // namespace st::cli
