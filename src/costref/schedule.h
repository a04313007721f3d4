#pragma once
// The schedule's static facts (docs/cost-schedule.md "Steps", "Bytes of a tile", "The DMA program"):
// the tiling of a GEMM, the integer byte shares of a tile, the steps in loop order with what each
// loads, which C visit it belongs to, what that visit reads and writes, and the program of DMA
// requests of one link in program order. Nothing here knows about time: the simulator
// (gemm_ref.cpp) walks these streams and decides when things happen.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/systolic.h"
#include "src/cost/work.h"

namespace st::costref {

enum Dim : int { kM = 0, kN = 1, kK = 2 };
enum Operand : int { kA = 0, kB = 1, kC = 2 };
constexpr int kAccBytes = 4;  // partial sums are fp32 / int32

// How an operand is held on chip.
enum class Buffering : uint8_t { single, twin, resident };  // twin: double-buffered

// The tiling of one (sub-)GEMM by a plan.
struct Tiling {
  int64_t ext[3] = {0, 0, 0};    // extents of m, n, k
  int64_t tile[3] = {0, 0, 0};   // tile sizes of the plan
  int64_t count[3] = {0, 0, 0};  // tiles per dim (full ones plus a remainder)
  int order[3] = {kM, kN, kK};   // dims, outermost first
  int64_t steps = 0;             // S
  int64_t begin(int d, int64_t i) const { return i * tile[d]; }
  int64_t end(int d, int64_t i) const { return i + 1 < count[d] ? (i + 1) * tile[d] : ext[d]; }
  int64_t size(int d, int64_t i) const { return end(d, i) - begin(d, i); }
};

// Checks the plan (tiles in [1, extent], loop order a permutation of m,n,k) and tiles `g` with it.
// Throws std::invalid_argument otherwise.
Tiling make_tiling(const GemmShape& g, const GemmPlan& plan);

// Everything the rules need to know about the operands besides the tiling.
struct Layout {
  Buffering buf[3] = {Buffering::twin, Buffering::twin, Buffering::twin};
  int64_t backing[3] = {0, 0, 0};  // D: elements of each backing store
  int elem_bytes[3] = {2, 2, 4};   // bytes per element in SRAM (the array format; C: accumulator)
  int dram_bytes[3] = {2, 2, 4};   // bytes per element of each backing store in DRAM (its format)
  bool accumulate = false;         // accumulate_into_c
  int link[3] = {0, 0, 0};         // link of each operand's buffer: 0 shared, 1 + operand own
  double fetched_fraction[2] = {1, 1};  // A / B: the share of their edge elements read from SRAM
  // A / B read through a generator: the elements each tile's load moves (fetch.h), tile (i0, i1)
  // at [i0 * count of the col dim + i1]; empty: the tile's share of the backing store.
  std::vector<int64_t> fetched[2];
};

// The integer share of a backing store of D elements for rows [r0, r1) x cols [c0, c1) of a R x Q
// virtual matrix: D x the tile's fraction of the virtual elements, rounded up
// (docs/cost-schedule.md "Bytes of a tile").
int64_t share(int64_t D, int64_t R, int64_t Q, int64_t r0, int64_t r1, int64_t c0, int64_t c1);

// Elements of operand `op`'s tile at (i0, i1) of its (row, col) dims: A (m, k), B (k, n), C (m, n):
// its fetched elements for a generated operand (fetch.h), else its share of the backing store. In
// DRAM they take dram_bytes each, in SRAM elem_bytes.
int64_t tile_elems(const Tiling& t, const Layout& l, int op, int64_t i0, int64_t i1);

// One step of the schedule and what the rules say about it.
struct StepInfo {
  int64_t s = -1;
  int64_t idx[3] = {0, 0, 0};   // tile indices m, n, k
  int64_t size[3] = {0, 0, 0};  // tile sizes tm, tn, tk
  int64_t tile[3] = {0, 0, 0};  // tile ids: A m*count_k + k, B k*count_n + n, C m*count_n + n
  bool load[2] = {false, false};      // the step loads its A / B tile
  int64_t ordinal[2] = {-1, -1};      // ordinal of the load that brought the A / B tile (0, 1, ...)
  bool last_use[2] = {false, false};  // the next step uses another A / B tile (or there is none)
  int64_t visit = -1;                 // the C visit (0, 1, ...) the step belongs to
  bool visit_start = false, visit_end = false;
  bool needs_input = false;     // visit_start: the visit reads C in
  bool input_partial = false;   //   partial sums (tm*tn*4 bytes) rather than C's share (accumulate)
  bool stores = false;          // visit_end: the visit writes C out
  bool store_output = false;    //   the output (its share of C) rather than a spill of partial sums
};

// The steps in loop order (innermost loop fastest), one at a time.
class StepStream {
 public:
  StepStream(const Tiling& t, const Layout& l);
  bool next(StepInfo& out);  // false after the last step

 private:
  const Tiling& t_;
  const Layout& l_;
  int64_t s_ = 0;                  // the step next() returns
  int64_t idx_[3] = {0, 0, 0};     // its indices
  int64_t prev_[3] = {-1, -1, -1};
  int64_t loads_[2] = {0, 0};
  int64_t visits_ = 0;
  std::vector<bool> used_[2];      // resident operands: tiles loaded already
  std::vector<int64_t> ordinal_of_[2];  // resident operands: ordinal of each tile's load
};

enum class RequestKind : uint8_t { load, input, spill, store, mat_read, mat_write };

// A DMA request as the program describes it (what moves where for which step); its timeline lives
// in the simulator.
struct RequestDesc {
  RequestKind kind = RequestKind::load;
  int operand = kA;
  int link = 0;
  int64_t bytes = 0;           // DRAM bytes (what the link moves)
  int64_t sram_bytes = 0;      // bytes it writes into / reads out of the operand's buffer
  int64_t casts = 0;           // elements the DMA converts between the DRAM and SRAM formats
  int64_t step = -1;          // step a load feeds, the first step of a visit an input feeds, the
                              // last step of a visit a store follows; -1 for materialization
  int64_t m = -1, n = -1, k = -1;
  int64_t ordinal = -1;       // load ordinal (A / B) or visit index (C)
  int64_t tile = -1;          // tile id (see StepInfo::tile)
};

// The program of one link: its requests in program order (materialization, then rounds
// r = -1 .. S of items a..e), those of the other links skipped.
class LinkProgram {
 public:
  LinkProgram(const Tiling& t, const Layout& l, int link, std::vector<RequestDesc> materialization);
  bool next(RequestDesc& out);  // false when the program has no more requests for this link

 private:
  bool item(int which, RequestDesc& out);
  const Tiling& t_;
  const Layout& l_;
  int link_;
  std::vector<RequestDesc> mat_;
  size_t mat_pos_ = 0;
  StepStream stream_;
  StepInfo win_[3];             // steps r-1, r, r+1
  bool have_[3] = {false, false, false};
  int64_t r_ = -1;
  int item_ = 0;
};

}  // namespace st::costref
