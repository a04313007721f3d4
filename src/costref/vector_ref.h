#pragma once
// The vector unit's cost reference: a plain discrete-event simulator of an op's tile schedule
// (docs/vector-schedule.md). It takes the same work description and spec as the fast model
// (src/cost/vector_cost.cpp) and steps the schedule request by request: the event queue and the
// in-order DMA engine of the GEMM reference (event_queue.h, dma.h) on the vector link, bank objects
// that free when their occupant's compute and store are done, the vector unit computing one pass
// over one tile at a time, every tile with its real size (the last one included). It shares no code
// with the fast model: it includes only the description types.
#include <cstdint>

#include "src/costref/gemm_ref.h"
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st::costref {

// The integer facts of one op (docs/vector-schedule.md "Inputs", "Tiles", "Passes").
struct VectorTiling {
  int64_t E = 1, P = 1, G = 1;           // elements, passes, reduction groups
  int64_t Q = 0, Pr = 0, W = 0;          // one pass: own input bytes, producer input bytes, output bytes
  int64_t S = 0;                         // issue slots of the whole op
  int64_t bank = 1;                      // bytes of a bank
  int64_t e = 1, T = 1;                  // elements of a full tile, tiles
  bool fused = false, replay = true;
};

// One tile (i in 0..T-1): its real size.
struct VectorTile {
  int64_t elements = 0, q = 0, pr = 0, w = 0, slots = 0;
  int64_t issue = 0;                     // c_i: issue cycles over all passes
};

VectorTiling vector_tiling(const VectorWork& w, const Spec& spec);
VectorTile vector_tile(const VectorTiling& t, const Spec& spec, int64_t i);

// Simulates `w` on `spec`. Counters carry the fast model's names (cycles.*, stall.*, vector.*,
// bytes.dram.*.vector, bytes.sram.vector.*, energy.*). With `want_trace`, the slices: "load" /
// "store" on the vector link track, "compute" on the vector unit's; Slice::m is the tile, Slice::k
// the pass (compute), Slice::step the step (compute, and the first / last step a load / store
// serves). Throws std::invalid_argument on a spec whose link cannot carry the op's bytes.
Result simulate_vector(const VectorWork& w, const Spec& spec, bool want_trace = false);

}  // namespace st::costref
