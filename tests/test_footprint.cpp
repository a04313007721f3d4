// The fast model's footprint counting (src/cost/footprint.h: set algebra on the generator's tables)
// against the reference's (src/costref/fetch.h: every element through AddressGenerator::index), on
// random tiles of every generated operand of random convolutions, both halo policies: equal
// exactly. And hand-counted footprints of a small im2col, so the pair is not merely consistent.
#include <gtest/gtest.h>

#include <random>

#include "kernels/address_gen.h"
#include "src/cost/footprint.h"
#include "src/costref/fetch.h"
#include "src/ops/conv.h"
#include "src/spec/spec_toml.h"

namespace st {
namespace {

ConvDesc random_conv(std::mt19937_64& rng) {
  auto in = [&](int lo, int hi) { return int64_t(lo + int(rng() % uint64_t(hi - lo + 1))); };
  ConvDesc d;
  d.N = in(1, 3);
  d.C = in(1, 6);
  d.K = in(1, 6);
  d.R = in(1, 5);
  d.S = rng() % 2 ? d.R : in(1, 5);
  d.H = in(d.R, 14);
  d.W = in(d.S, 14);
  d.sh = in(1, 3);
  d.sw = rng() % 2 ? d.sh : in(1, 3);
  d.pt = d.pb = in(0, d.R - 1);
  d.pl = d.pr = in(0, d.S - 1);
  return d;
}

// Every generated operand of every direction and lowering of `d` (under `mapping`: channel-tap's
// operands are tap-major, each tap's channels padded to the array rows on WS / IS).
std::vector<OperandDesc> generated_operands(const ConvDesc& d, ConvMapping mapping = ConvMapping::im2col,
                                            int rows = 32, Dataflow df = Dataflow::ws) {
  Spec spec = load_spec("tpu-like");
  spec.array.conv_mapping = mapping;
  spec.array.rows = rows;
  spec.array.dataflow = df;
  std::vector<OperandDesc> out;
  for (Direction dir : {Direction::fwd, Direction::bwd_data, Direction::bwd_weights})
    for (Lowering l : kAllLowerings)
      for (const GemmWork& w : conv_work(d, dir, l, spec, "x"))
        for (const OperandDesc* o : {&w.a, &w.b})
          if (o->generator) out.push_back(*o);
  return out;
}

void set_algebra_equals_enumeration(ConvMapping mapping, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t tilings = 0, kinds_seen = 0, tap_major = 0;
  bool seen[5] = {};
  for (int i = 0; i < 150; ++i) {
    const ConvDesc d = random_conv(rng);
    // Channel-tap: array rows 1..8 (channels 1..6: padded or not) and every dataflow (OS: no padding).
    const int rows = 1 + i % 8;
    const Dataflow df = static_cast<Dataflow>(i % 3);
    for (const OperandDesc& o : generated_operands(d, mapping, rows, df)) {
      tap_major += o.generator->tap_major;
      seen[int(o.generator->kind)] = true;
      const AddressGenerator gen = generator_of(o);
      FootprintCounter counter(gen);
      for (int rep = 0; rep < 3; ++rep) {
        const int64_t tr = 1 + int64_t(rng() % uint64_t(o.rows)), tc = 1 + int64_t(rng() % uint64_t(o.cols));
        const int64_t cr = (o.rows + tr - 1) / tr, cc = (o.cols + tc - 1) / tc;
        const bool t = o.generator_transposed;
        for (Halo h : {Halo::keep, Halo::refetch}) {
          const std::vector<int64_t> ref = costref::tile_fetches(o, o.rows, o.cols, tr, tc, h);
          ASSERT_EQ(int64_t(ref.size()), cr * cc);
          int64_t sum = 0;
          for (int64_t x : ref) sum += x;
          // One pass over the tiles: the same total both ways.
          ASSERT_EQ(counter.pass_elements(t ? tc : tr, t ? tr : tc, h), sum)
              << d.str() << " kind " << int(o.generator->kind) << " tiles " << tr << "x" << tc << " "
              << to_string(h);
          if (h == Halo::keep) continue;
          // Refetch: every tile's footprint on its own.
          for (int64_t a = 0; a < cr; ++a)
            for (int64_t b = 0; b < cc; ++b) {
              const int64_t r0 = a * tr, r1 = std::min(o.rows, r0 + tr), c0 = b * tc, c1 = std::min(o.cols, c0 + tc);
              const int64_t fast = t ? counter.footprint(c0, c1, r0, r1) : counter.footprint(r0, r1, c0, c1);
              ASSERT_EQ(fast, ref[size_t(a * cc + b)]) << d.str() << " tile " << a << "," << b;
            }
        }
        ++tilings;
      }
    }
  }
  for (bool s : seen) kinds_seen += s;
  EXPECT_EQ(kinds_seen, 5);  // im2col, dx_bp, dx_explicit, dx_phase, dilated_dy all covered
  EXPECT_GT(tilings, 1000);
  if (mapping == ConvMapping::channel_tap) EXPECT_GT(tap_major, 1000);
  else EXPECT_EQ(tap_major, 0);
}

TEST(Footprint, SetAlgebraEqualsEnumerationOnRandomTiles) {
  set_algebra_equals_enumeration(ConvMapping::im2col, 20261129);
}

// The channel-tap mapping's tap-major (and padded) rows: the per-class set algebra against the
// reference's enumeration through row_coords.
TEST(Footprint, ChannelTapSetAlgebraEqualsEnumerationOnRandomTiles) {
  set_algebra_equals_enumeration(ConvMapping::channel_tap, 20261208);
}

// Hand-counted: 1 image, 2 channels, 3x3 input, 2x2 kernel, stride 1, no padding (output 2x2),
// channel-tap on a 4-row WS array: rows (tap, channel) padded to 4 per tap, 16 rows. Rows 0..3 =
// tap (0,0) for channels 0, 1 and two padding rows: over all 4 pixels, input rows 0..1 x columns 0..1
// of each channel: 8 elements. Rows 2..5 = padding, then tap (0,1) for channels 0 and 1: columns 1..2
// of rows 0..1: 8. Rows 3..4: padding and tap (0,1) channel 0: 4. Rows 2..3 (padding only): 0.
TEST(Footprint, HandCountedChannelTap) {
  const ConvDesc d{1, 2, 3, 3, 1, 2, 2, 1, 1, 0, 0, 0, 0};
  AddressGenerator g = AddressGenerator::im2col(d, 2, 2, 1, 1);
  g.set_tap_major(4);
  ASSERT_EQ(g.rows(), 16);
  FootprintCounter c(g);
  EXPECT_EQ(c.footprint(0, 4, 0, 4), 8);
  EXPECT_EQ(c.footprint(2, 6, 0, 4), 8);
  EXPECT_EQ(c.footprint(3, 5, 0, 4), 4);
  EXPECT_EQ(c.footprint(2, 4, 0, 4), 0);
  EXPECT_EQ(c.footprint(0, 16, 0, 4), 18);  // every tap, both channels: all of X
  int64_t a, r, t;
  EXPECT_TRUE(g.row_coords(5, a, r, t));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(r, 0);
  EXPECT_EQ(t, 1);
  EXPECT_FALSE(g.row_coords(6, a, r, t));
  EXPECT_EQ(g.index(5, 0), 9 + 1);   // channel 1, input (0, 1)
  EXPECT_EQ(g.index(6, 0), -1);      // padding row
}

// A 1-image, 1-channel 4x4 input, 3x3 kernel, pad 1, stride 1 (output 4x4): im2col A is 16 x 9.
// Tile of output pixels 0..3 (the first output row) x all 9 taps touches input rows 0..1 (row -1
// is padding), all 4 columns: 8 elements. Pixels 4..7 (row 1): input rows 0..2: 12. The keep
// policy then loads only row 2 for the second tile: 4. A 2x2-tap tile (taps 0..1 = r 0, t 0..1)
// over pixel 5 (y 1, x 1): input (0, 0), (0, 1): 2.
TEST(Footprint, HandCountedIm2col) {
  ConvDesc d;
  d.N = 1, d.C = 1, d.H = 4, d.W = 4, d.K = 1, d.R = 3, d.S = 3, d.pt = d.pb = d.pl = d.pr = 1;
  const AddressGenerator g = AddressGenerator::im2col(d, 4, 4, 1, 1);
  FootprintCounter c(g);
  EXPECT_EQ(c.footprint(0, 9, 0, 4), 8);
  EXPECT_EQ(c.footprint(0, 9, 4, 8), 12);
  EXPECT_EQ(c.footprint(0, 2, 5, 6), 2);
  EXPECT_EQ(c.footprint(0, 9, 0, 16), 16);
  // Keep, pixel tiles of 4: 8 + 4 + 4 + 0 = 16 (each input element once); refetch: 8 + 12 + 12 + 8.
  EXPECT_EQ(c.pass_elements(9, 4, Halo::keep), 16);
  EXPECT_EQ(c.pass_elements(9, 4, Halo::refetch), 40);
  GemmWork w = conv_work(d, Direction::fwd, Lowering::bp_im2col, load_spec("tpu-like"), "x")[0];
  const std::vector<int64_t> keep = costref::tile_fetches(w.a, 16, 9, 4, 9, Halo::keep);
  EXPECT_EQ(keep, (std::vector<int64_t>{8, 4, 4, 0}));
  const std::vector<int64_t> refetch = costref::tile_fetches(w.a, 16, 9, 4, 9, Halo::refetch);
  EXPECT_EQ(refetch, (std::vector<int64_t>{8, 12, 12, 8}));
}

// A 1x1 stride-2 convolution reads a quarter of its input: the footprint, not the backing store.
TEST(Footprint, StridedOneByOneReadsAQuarter) {
  ConvDesc d;
  d.N = 2, d.C = 3, d.H = 8, d.W = 8, d.K = 4, d.R = 1, d.S = 1, d.sh = 2, d.sw = 2;
  const GemmWork w = conv_work(d, Direction::fwd, Lowering::bp_im2col, load_spec("tpu-like"), "x")[0];
  const AddressGenerator g = generator_of(w.a);
  FootprintCounter c(g);
  EXPECT_EQ(c.pass_elements(3, 32, Halo::keep), 2 * 3 * 4 * 4);
  EXPECT_EQ(w.a.dram_elems, 2 * 3 * 8 * 8);  // the backing store stays what it is
}

}  // namespace
}  // namespace st
