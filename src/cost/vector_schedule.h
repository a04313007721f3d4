#pragma once
// Deliberate errors of the vector unit's fast cost model (src/cost/vector_cost.cpp), for the mutation
// tests only: tests/test_vector_cost_reference.cpp proves that each one makes the fast model disagree
// with the reference (src/costref/vector_ref.cpp). Never set outside tests.
#include <cstdint>

namespace st {

enum class VectorCostMutation : uint8_t {
  none,
  latency_once_per_op,   // the old model's spirit: one DRAM latency for the op, not one per request
  average_last_tile,     // the last tile moves and computes the average tile, not its real size
  ignore_replay,         // later passes always re-read DRAM, even when a reduction group fits a bank
  fill_once_per_tile,    // the pipeline fills and drains once per tile, not once per pass over it
};

}  // namespace st
