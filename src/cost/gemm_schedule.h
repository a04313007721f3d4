#pragma once
// The fast model's timing of one GEMM plan: a specialised recurrence over the plan's steps that
// implements docs/cost-schedule.md (program order, eligibility, in-order links, the array, stall
// attribution) without an event queue. The reference (src/costref) steps the same rules as a
// discrete-event simulation; tests/test_cost_reference.cpp holds the two equal.
#include <array>
#include <cstdint>
#include <vector>

#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

// Deliberate errors, for the mutation tests only (tests/test_cost_reference.cpp proves that each one
// makes the fast model disagree with the reference). Never set outside tests.
enum class CostMutation : uint8_t {
  none,
  average_edge_tiles,     // every step computes and moves the average tile instead of its own
  ws_preload_per_m_tile,  // charge the weight-stationary preload (R cycles) again on every step
  round_transfer_bytes,   // round every DMA request up to whole 64-byte bursts
  latency_once_per_step,  // the old model: one latency per step's burst, not per request
  drop_halo,              // generated operands move their share of the backing store (no footprint)
  ignore_dram_format,     // count DRAM bytes in the SRAM format (elem_bytes), not dram_elem_bytes
  wide_array,             // several arrays timed as one array of count x cols columns (a wrong split)
  no_broadcast,           // several arrays: each reads the shared operand from SRAM on its own
  ignore_ports,           // steps last their compute only, however narrow the buffers' ports
};

enum StallCause : int { kStallMaterialize, kStallSlot, kStallQueue, kStallLatency, kStallBandwidth,
                        kStallDrain, kStallPort, kStallCauses };
// Counter names of the causes ("stall.slot", ...), in StallCause order.
extern const std::array<const char*, kStallCauses> kStallCounter;

struct ScheduleTiming {
  int64_t total = 0, compute = 0;
  std::array<int64_t, kStallCauses> stall{};   // sums to total - compute
};

// How the schedule sizes the loads of a generated operand (docs/cost-schedule.md "Generated
// operands"): the tile at pixel-tile index 0 of each generator-row tile moves `first[g]` elements
// (exact: the start of every pass carries the whole halo), every other tile its share of `rest`
// (the remaining elements of one pass) over the other pixel tiles.
struct GeneratedLoads {
  bool on = false;
  int pixel_dim = 0, row_dim = 0;  // the GEMM dims (0 m, 1 n, 2 k) of the generator's columns / rows
  std::vector<int64_t> first;
  int64_t rest = 0;
  // Tap-major generators (the channel-tap mapping): the rest per generator-row tile instead (a row
  // tile's fresh elements per pixel follow its channels, not its rows: one tap of 64 channels moves
  // as much as four), each non-first tile its share over that row tile's other pixel tiles; the
  // middle row tiles their mean, like `first`. Empty: `rest` as above.
  std::vector<int64_t> rest_rows;
  // Every tile's own elements, (row tile g, pixel tile j) at g * exact_pixel_tiles + j, when the
  // loads are too irregular for shares: a strided BP-im2col dX under channel-tap, where one tap
  // reaches only the pixels of its stride phase, so a pixel tile loads dY rows or none. The schedule
  // then steps every tile (no steady-state jump). Empty: first / rest as above.
  std::vector<int64_t> exact;
  int64_t exact_pixel_tiles = 0;
};

// Cycles the buffers' ports need to feed one tile step of g = (tm, tn, tk) to the arrays and take its
// partial sums (docs/cost-schedule.md "Ports"): a step lasts max(compute, this).
int64_t step_port_cycles(const GemmWork& w, const Spec& spec, const GemmShape& g);

// Times one copy of the GEMM (the sub-GEMM when w.sub_gemms > 1: the caller passes it) under the
// tiles (m, n, k) and loop order (dims 0 = m, 1 = n, 2 = k, outermost first).
// `generated` (A, B): loads of generated operands as above; absent: every tile its share.
ScheduleTiming time_gemm_schedule(const GemmWork& w, const Spec& spec, const std::array<int64_t, 3>& tile,
                                  const std::array<int, 3>& order, CostMutation mutation = CostMutation::none,
                                  const std::array<GeneratedLoads, 2>* generated = nullptr);

// The integer share of a backing store of `backing` elements for a tile of tile_rows x tile_cols of
// a rows x cols virtual matrix: its fraction, rounded up (docs/cost-schedule.md "Bytes of a
// tile"). Dense (backing = rows x cols): the tile's element count.
int64_t tile_share(int64_t backing, int64_t rows, int64_t cols, int64_t tile_rows, int64_t tile_cols);

}  // namespace st
