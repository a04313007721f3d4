#pragma once
// The cost model: pure functions from a work description and a spec to Stats. No tensor data.
#include <string>

#include "src/cost/gemm_schedule.h"
#include "src/cost/stats.h"
#include "src/cost/vector_schedule.h"
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

// Cost of one GEMM on the array (src/cost/gemm_cost.cpp).
Stats cost_gemm(const GemmWork& w, const Spec& spec, GemmPlan* plan = nullptr);
// The cost of one GEMM (sub_gemms 1) on a given plan, no search: its tiles (clamped to the GEMM's
// extents) and loop order, whether they fit the buffers or not. bpcompare costs BP-im2col on
// explicit's plan with it, so a difference is the lowering's alone.
Stats cost_gemm_on_plan(const GemmWork& w, const Spec& spec, const GemmPlan& forced, GemmPlan* plan = nullptr);
// The tiler's reference: the same search without lower-bound pruning (slower, same results and
// plan; tests compare the two). cost_gemm_search chooses.
Stats cost_gemm_exhaustive(const GemmWork& w, const Spec& spec, GemmPlan* plan = nullptr);
// `mutation`: a deliberate error for the mutation tests (gemm_schedule.h), never set elsewhere.
Stats cost_gemm_search(const GemmWork& w, const Spec& spec, GemmPlan* plan, bool prune,
                       CostMutation mutation = CostMutation::none);

// Cost of one op on the vector unit (src/cost/vector_cost.cpp, docs/vector-schedule.md).
// `mutation`: a deliberate error for the mutation tests (vector_schedule.h), never set elsewhere.
Stats cost_vector(const VectorWork& w, const Spec& spec, VectorCostMutation mutation = VectorCostMutation::none);
// The DMA cast unit's conversions of a vector op's tensors (w.casts: energy, no cycles;
// src/cost/cast_cost.cpp), and the op's whole cost: cost_vector + cost_vector_casts (what the Ledger
// and the DSE charge).
Stats cost_vector_casts(const VectorWork& w, const Spec& spec);
Stats cost_vector_op(const VectorWork& w, const Spec& spec);

}  // namespace st
