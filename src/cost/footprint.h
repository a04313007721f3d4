#pragma once
// The fast model's count of what the tiles of a generated operand (im2col, BP-im2col, zero-skip
// phases, U_pad: OperandDesc::generator) fetch from DRAM (docs/cost-schedule.md "Generated
// operands"). It never enumerates elements: it works on the generator's separable tables
//   index = n * n_stride + a * a_stride + h_offset(r, y) + w_offset(t, x)
// A tile's generator rows [q0, q1) (channel a, tap r, t) and columns [v0, v1) (image n, pixel y, x)
// split into runs of whole and partial channels and images; for one (channel, image) pair the
// touched backing elements are a union of at most 9 products H x W (a rectangle of taps against a
// rectangle of pixels: H the backing rows their h_offsets hit, W the backing columns their
// w_offsets hit), counted with bitsets. The reference (src/costref/fetch.cpp) enumerates every
// element instead; tests/test_footprint.cpp holds the two equal on random tiles.
#include <array>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kernels/address_gen.h"
#include "src/cost/work.h"
#include "src/spec/spec.h"

namespace st {

class FootprintCounter {
 public:
  explicit FootprintCounter(const AddressGenerator& g);
  // Distinct backing elements of generator rows [q0, q1) x columns [v0, v1).
  int64_t footprint(int64_t q0, int64_t q1, int64_t v0, int64_t v1);
  // Elements one pass over every tile of the operand moves, the generator's rows cut into tiles of
  // `tile_g` and its columns into tiles of `tile_p`: keep: per row tile, the footprint over all
  // columns; refetch: the sum of every tile's footprint.
  int64_t pass_elements(int64_t tile_g, int64_t tile_p, Halo halo);
  // The part of pass_elements that generator rows [q0, q1) (one row tile) move.
  int64_t row_tile_elements(int64_t q0, int64_t q1, int64_t tile_p, Halo halo);

 private:
  // footprint() of a generator whose rows are tap-major (AddressGenerator::set_tap_major).
  int64_t footprint_tap_major(int64_t q0, int64_t q1, int64_t v0, int64_t v1);
  // One channel and one image: taps [u0, u1) of R x S, pixels [v0, v1) of out_h x out_w.
  int64_t one_pair(int64_t u0, int64_t u1, int64_t v0, int64_t v1);
  void row_set(int64_t r0, int64_t r1, int64_t y0, int64_t y1, uint64_t* bits) const;
  void col_set(int64_t t0, int64_t t1, int64_t x0, int64_t x1, uint64_t* bits) const;

  const AddressGenerator& g_;
  int64_t taps_ = 1, pixels_ = 1;  // R S, out_h out_w
  int64_t rows_ = 1;               // backing rows one (channel, image) spans (h_offset / row_pitch < rows_)
  int64_t hw_ = 1, ww_ = 1;        // 64-bit words of a row set / column set
  struct KeyHash {
    size_t operator()(const std::array<int64_t, 4>& k) const {
      uint64_t h = 1469598103934665603ull;
      for (int64_t x : k) h = (h ^ uint64_t(x)) * 1099511628211ull;
      return size_t(h);
    }
  };
  std::unordered_map<std::array<int64_t, 4>, int64_t, KeyHash> memo_;
  std::vector<uint64_t> scratch_;
};

// The generator of `o` (which must have one) as a counter's input, checked: its extent must match
// the operand's (rows x cols, or cols x rows when transposed).
AddressGenerator generator_of(const OperandDesc& o);

}  // namespace st
