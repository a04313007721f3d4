#pragma once
// Per-thread scratch buffers that live as long as the thread: packed GEMM panels, lowered operands,
// GEMM outputs before their scatter. Each training step asks for the same sizes again, and a fresh
// allocation of tens of MB per call costs more in page faults and zero-filling than the work itself.
// Contents are undefined on return (never zeroed); a slot's pointer stays valid until the same
// thread asks that slot for more than it holds. Slots are fixed per user so that nested users (conv
// calls the GEMM) never share one.
#include <cstdint>

namespace st {

enum class ScratchSlot : int {
  gemm_a,          // systolic_gemm: shared packed A panels (calling thread)
  gemm_b,          // systolic_gemm: shared packed B panels (calling thread)
  gemm_tile,       // systolic_gemm: micro-tile accumulators (each worker)
  gemm_strip,      // systolic_gemm: a strip's private panels (each worker)
  gemm_stage,      // systolic_gemm: staging of generated l-major operands (each worker)
  conv_operand,    // src/ops/conv: the small lowered operand (weights, dilated dY)
  conv_out,        // src/ops/conv: GEMM output before the NCHW scatter
  conv_materialized,  // src/ops/conv: the explicit mode's U_pad / U
  conv_rounded,    // src/ops/conv: the generated operand's backing tensor rounded to the array format
  count
};

// 64-byte aligned, at least n floats.
float* scratch_floats(ScratchSlot slot, int64_t n);

}  // namespace st
