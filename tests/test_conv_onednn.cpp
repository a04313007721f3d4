// Convolution on the modeled array against oneDNN 2.6 (fp32, NCHW, direct) for every direction x
// lowering x format, on 160+ benchdnn-named problems, plus the PE-level array reference (bitwise)
// and the equality of the three lowerings.
//
// Evidence rules (DESIGN.md "Verification"):
// - small integers in [-3, 3]: every operand is exact in fp32/bf16/fp16 and every partial sum is an
//   integer far below 2^24, so any accumulation order gives the exact result: bitwise equality.
// - uniform reals in [-1, 1), first rounded to the array format so both sides multiply the same
//   operands; products are exact in fp32, only the order of the sums differs. Each side's error is
//   at most gamma_n * sum|a_i b_i| with n the reduction length (Higham, recursive summation, any
//   bracketing of n terms has depth <= n), so |emu - onednn| <= 2 n u sum|a_i b_i|, u = 2^-24,
//   checked per element with sum|a_i b_i| from the fp64 naive conv on |inputs|.
#include <gtest/gtest.h>

#include <random>

#include "src/ops/conv.h"
#include "tests/util/compare.h"
#include "tests/util/conv_ref.h"
#include "tests/util/onednn_util.h"

namespace st {
namespace {

using test::CompareOptions;

std::vector<ConvDesc> problems() {
  std::vector<ConvDesc> v;
  auto add = [&](int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
                 int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
    ConvDesc d{N, C, H, W, K, R, S, sh, sw, pt, pl, pb, pr};
    d.validate();
    v.push_back(d);
  };
  // Named cases: the example, 1x1 (shortcuts), the 7x7 stride-2 stem, leftover rows.
  add(2, 3, 7, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1);
  add(1, 4, 8, 8, 6, 1, 1, 1, 1, 0, 0, 0, 0);
  add(3, 5, 9, 9, 4, 1, 1, 2, 2, 0, 0, 0, 0);
  add(2, 3, 15, 15, 4, 7, 7, 2, 2, 3, 3, 3, 3);
  add(1, 2, 16, 13, 3, 7, 7, 2, 2, 3, 3, 2, 3);
  add(4, 3, 8, 8, 5, 3, 3, 2, 2, 1, 1, 0, 0);
  add(1, 2, 6, 6, 2, 3, 3, 3, 3, 2, 2, 2, 2);
  add(8, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1);
  add(2, 2, 11, 7, 3, 5, 3, 3, 2, 3, 1, 2, 0);
  add(1, 1, 4, 4, 1, 4, 4, 1, 1, 3, 3, 3, 3);
  // A deterministic sweep: strides 1-3 (sometimes 4 along w), paddings 0..R-1 (often asymmetric),
  // odd sizes, batch 1-8.
  std::mt19937_64 rng(20261121);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int64_t kKernels[] = {1, 2, 3, 3, 3, 4, 5, 7};
  while (v.size() < 165) {
    const int64_t R = kKernels[pick(0, 7)], S = pick(0, 3) == 0 ? kKernels[pick(0, 7)] : R;
    const int64_t sh = pick(1, 3), sw = pick(0, 5) == 0 ? pick(1, 4) : sh;
    const int64_t pt = pick(0, R - 1), pl = pick(0, S - 1);
    const bool asym = pick(0, 2) == 0;
    const int64_t pb = asym ? pick(0, R - 1) : pt, pr = asym ? pick(0, S - 1) : pl;
    const int64_t H = std::max<int64_t>(pick(R, R + 9) - pt - pb, 1), W = std::max<int64_t>(pick(S, S + 9) - pl - pr, 1);
    ConvDesc d{pick(1, 8), pick(1, 5), H, W, pick(1, 6), R, S, sh, sw, pt, pl, pb, pr};
    try {
      d.validate();
    } catch (const UserError&) {
      continue;
    }
    if (d.N * d.C * d.H * d.W > 2500) d.N = 1;
    v.push_back(d);
  }
  return v;
}

const std::vector<ConvDesc>& all_problems() {
  static const std::vector<ConvDesc> v = problems();
  return v;
}

constexpr Format kFormats[] = {Format::fp32, Format::bf16, Format::fp16};
constexpr Direction kDirs[] = {Direction::fwd, Direction::bwd_data, Direction::bwd_weights};

Spec spec_for(Format f, Dataflow df, int rows, int cols, ConvMapping mapping = ConvMapping::im2col) {
  Spec s = test::test_spec(32, f);
  s.array.dataflow = df;
  s.array.rows = rows;
  s.array.cols = cols;
  s.array.conv_mapping = mapping;
  return s;
}

Tensor run(const Spec& spec, const ConvDesc& d, Direction dir, Lowering l, const Tensor& in0,
           const Tensor& in1) {
  ExecContext ctx{&spec, nullptr, "t"};
  Tensor out;
  switch (dir) {
    case Direction::fwd: conv_fwd(ctx, d, l, in0, in1, out); break;
    case Direction::bwd_data: conv_bwd_data(ctx, d, l, in0, in1, out); break;
    case Direction::bwd_weights: conv_bwd_weights(ctx, d, l, in0, in1, out); break;
  }
  return out;
}

// Inputs of a direction: fwd (src, wei), bwd_data (diff_dst, wei), bwd_weights (src, diff_dst).
std::pair<Tensor, Tensor> inputs(const ConvDesc& d, Direction dir, std::mt19937_64& rng, bool ints,
                                 Format f) {
  Tensor src({d.N, d.C, d.H, d.W}), wei({d.K, d.C, d.R, d.S}), dy({d.N, d.K, d.P(), d.Q()});
  test::fill_conv_input(src, rng, ints);
  test::fill_conv_input(wei, rng, ints);
  test::fill_conv_input(dy, rng, ints);
  src = test::rounded(src, f);
  wei = test::rounded(wei, f);
  dy = test::rounded(dy, f);
  switch (dir) {
    case Direction::fwd: return {src, wei};
    case Direction::bwd_data: return {dy, wei};
    case Direction::bwd_weights: return {src, dy};
  }
  return {};
}

Tensor onednn(const ConvDesc& d, Direction dir, const Tensor& a, const Tensor& b) {
  switch (dir) {
    case Direction::fwd: return test::onednn_conv_fwd(d, a, b);
    case Direction::bwd_data: return test::onednn_conv_bwd_data(d, a, b);
    case Direction::bwd_weights: return test::onednn_conv_bwd_weights(d, a, b);
  }
  return {};
}

// Minimum non-zero fraction the reference must have to count as evidence: most of the positions
// that receive at least one product (1x1 stride-2 dX leaves 3/4 of dX structurally zero).
double min_nonzero(const std::vector<double>& abs_terms) {
  int64_t reached = 0;
  for (double t : abs_terms) reached += t > 0;
  return 0.5 * double(reached) / double(abs_terms.size());
}

class ConvOnednn : public ::testing::TestWithParam<int> {};

// Small integers (exact in every format and order): every format and lowering on the array
// (`df`, `rows` x 8, `mapping`) bitwise equal to oneDNN, every direction.
void integers_exact(const ConvDesc& d, Dataflow df, int rows, ConvMapping mapping, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Direction dir : kDirs) {
    auto [a, b] = inputs(d, dir, rng, true, Format::fp32);
    const Tensor want = onednn(d, dir, a, b);
    CompareOptions o;
    o.exact = true;
    o.min_nonzero_fraction = min_nonzero(test::naive(d, dir, a, b, true));
    for (Format f : kFormats)
      for (Lowering l : kAllLowerings) {
        const Spec spec = spec_for(f, df, rows, 8, mapping);
        const Tensor got = run(spec, d, dir, l, a, b);
        EXPECT_TRUE(test::compare_arrays(got.data(), want.data(), got.size(), o,
                                         std::string(to_string(mapping)) + " " + std::string(to_string(dir)) + " " +
                                             std::string(to_string(l)) + " " + std::string(to_string(f))));
      }
  }
}

void integers_bitwise(int idx) {
  integers_exact(all_problems()[idx], static_cast<Dataflow>(idx % 3), 4 + idx % 5, ConvMapping::im2col, 1000 + idx);
}

void random_within_bound_and_modes_agree(int idx) {
  const ConvDesc& d = all_problems()[idx];
  const Dataflow df = static_cast<Dataflow>((idx + 1) % 3);
  const int rows = 4 + idx % 7;
  std::mt19937_64 rng(5000 + idx);
  for (Direction dir : kDirs)
    for (Format f : kFormats) {
      auto [a, b] = inputs(d, dir, rng, false, f);
      const Tensor want = onednn(d, dir, a, b);
      const auto abs_terms = test::naive(d, dir, a, b, true);
      const int64_t kred = test::reduction_length(d, dir);
      const Spec spec = spec_for(f, df, rows, 8);
      Tensor got[3];
      for (Lowering l : kAllLowerings) {
        got[int(l)] = run(spec, d, dir, l, a, b);
        EXPECT_TRUE(test::within_bound(got[int(l)], want, abs_terms, kred, 2.0,
                                       std::string(to_string(dir)) + " " + std::string(to_string(l)) +
                                           " " + std::string(to_string(f))));
      }
      // explicit and bp-im2col consume the same virtual matrices: same bits for every dataflow.
      EXPECT_TRUE(test::bitwise_equal(got[0], got[1])) << to_string(dir) << " " << to_string(f);
      // zero-skip drops only exact zero products: same bits when the chunking cannot regroup
      // (OS: one chain; WS/IS: the explicit reduction fits one chunk of the array rows).
      const int64_t kfull = dir == Direction::bwd_data ? d.K * d.R * d.S
                          : dir == Direction::bwd_weights ? d.N * d.Pd() * d.Qd() : d.C * d.R * d.S;
      if (df == Dataflow::os || kfull <= rows) {
        EXPECT_TRUE(test::bitwise_equal(got[0], got[2])) << to_string(dir) << " " << to_string(f);
      }
    }
}

// The fast kernel against the PE-level reference on `spec`, every direction and lowering, bitwise.
void equals_pe_level_reference(const ConvDesc& d, const Spec& spec, Format f, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (Direction dir : kDirs) {
    auto [a, b] = inputs(d, dir, rng, false, f);
    for (Lowering l : kAllLowerings) {
      const Tensor got = run(spec, d, dir, l, a, b);
      const Tensor want = test::array_ref_conv(spec.array, d, dir, l, a, b);
      EXPECT_TRUE(test::bitwise_equal(got, want))
          << to_string(spec.array.conv_mapping) << " " << to_string(dir) << " " << to_string(l);
    }
  }
}

// The PE-level reference runs on every 4th problem (it is slow).
void fast_kernel_equals_pe_level_reference(int idx) {
  const Format f = kFormats[(idx / 4) % 3];
  equals_pe_level_reference(all_problems()[idx],
                            spec_for(f, static_cast<Dataflow>((idx / 4) % 3), 4 + idx % 3, 4 + idx % 5), f, 9000 + idx);
}

// The channel-tap mapping (kernels/lowering.h "Mappings") on every 4th problem: small integers
// bitwise against oneDNN, random reals within the bound, and the equalities the mapping promises:
// explicit == bp-im2col (same virtual matrices), zero-skip == explicit for EVERY dataflow (the
// skipped products are whole taps, i.e. whole chunks of zero products), dW == im2col's dW (only its
// columns are reordered), and fwd / dX == im2col's when there is one tap (1x1: the same order).
void channel_tap_against_onednn(int idx) {
  const ConvDesc& d = all_problems()[idx];
  const Dataflow df = static_cast<Dataflow>((idx / 4) % 3);
  const int rows = 2 + (idx / 4) % 5;  // small, so that channels take several chunks per tap
  integers_exact(d, df, rows, ConvMapping::channel_tap, 7000 + idx);
  std::mt19937_64 rng(7500 + idx);
  for (Direction dir : kDirs) {
    for (Format f : kFormats) {
      auto [a, b] = inputs(d, dir, rng, false, f);
      const Tensor want = onednn(d, dir, a, b);
      const auto abs_terms = test::naive(d, dir, a, b, true);
      const int64_t kred = test::reduction_length(d, dir);
      const Spec ct = spec_for(f, df, rows, 8, ConvMapping::channel_tap), im = spec_for(f, df, rows, 8);
      Tensor got[3];
      for (Lowering l : kAllLowerings) {
        got[int(l)] = run(ct, d, dir, l, a, b);
        EXPECT_TRUE(test::within_bound(got[int(l)], want, abs_terms, kred, 2.0,
                                       "channel_tap " + std::string(to_string(dir)) + " " +
                                           std::string(to_string(l)) + " " + std::string(to_string(f))));
      }
      const std::string what = std::string(to_string(dir)) + " " + std::string(to_string(f));
      EXPECT_TRUE(test::bitwise_equal(got[0], got[1])) << what;
      if (dir != Direction::bwd_weights) {
        EXPECT_TRUE(test::bitwise_equal(got[0], got[2])) << what;
      }
      if (dir == Direction::bwd_weights || d.R * d.S == 1) {
        for (Lowering l : kAllLowerings) {
          EXPECT_TRUE(test::bitwise_equal(got[int(l)], run(im, d, dir, l, a, b))) << what << " vs im2col";
        }
      }
    }
  }
}

// Channel-tap on the PE-level reference (the virtual matrices permuted tap-major, one fold per tap
// and channel chunk), every 4th problem, format and dataflow varying independently.
void channel_tap_equals_pe_level_reference(int idx) {
  const Format f = kFormats[(idx / 4) % 3];
  const Dataflow df = static_cast<Dataflow>((idx / 12) % 3);
  equals_pe_level_reference(all_problems()[idx], spec_for(f, df, 2 + idx % 4, 3 + idx % 5, ConvMapping::channel_tap), f,
                            11000 + idx);
}

// One test per problem (ctest runs each test in its own process; three per problem cost more in
// process start-up than in work).
TEST_P(ConvOnednn, AllDirectionsModesFormats) {
  const int idx = GetParam();
  {
    SCOPED_TRACE("small integers, bitwise vs oneDNN");
    integers_bitwise(idx);
  }
  {
    SCOPED_TRACE("random reals, bounded vs oneDNN, modes agree");
    random_within_bound_and_modes_agree(idx);
  }
  if (idx % 4 == 0) {
    SCOPED_TRACE("fast kernel == PE-level reference");
    fast_kernel_equals_pe_level_reference(idx);
  }
  if (idx % 4 == 1) {
    SCOPED_TRACE("channel-tap mapping vs oneDNN, modes agree");
    channel_tap_against_onednn(idx);
  }
  if (idx % 4 == 2) {
    SCOPED_TRACE("channel-tap: fast kernel == PE-level reference");
    channel_tap_equals_pe_level_reference(idx);
  }
}

// The comparison can fail: on a 3x3 conv whose channels take two chunks per tap, channel-tap's
// order gives other bits than im2col's (so a fast path that ignored the mapping would be caught by
// the PE-level reference), while both equal their own PE-level reference.
TEST(ConvChannelTap, OrderDiffersFromIm2colAndEachEqualsItsReference) {
  const ConvDesc d{2, 5, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1};
  for (Dataflow df : {Dataflow::os, Dataflow::ws, Dataflow::is}) {
    const Spec ct = spec_for(Format::fp32, df, 4, 4, ConvMapping::channel_tap), im = spec_for(Format::fp32, df, 4, 4);
    std::mt19937_64 rng(42);
    for (Direction dir : {Direction::fwd, Direction::bwd_data}) {
      const auto [a, b] = inputs(d, dir, rng, false, Format::fp32);
      const Tensor t = run(ct, d, dir, Lowering::bp_im2col, a, b), i = run(im, d, dir, Lowering::bp_im2col, a, b);
      EXPECT_FALSE(test::bitwise_equal(t, i)) << to_string(df) << " " << to_string(dir);
      EXPECT_TRUE(test::bitwise_equal(t, test::array_ref_conv(ct.array, d, dir, Lowering::bp_im2col, a, b)));
      EXPECT_TRUE(test::bitwise_equal(i, test::array_ref_conv(im.array, d, dir, Lowering::bp_im2col, a, b)));
      EXPECT_FALSE(test::bitwise_equal(t, test::array_ref_conv(im.array, d, dir, Lowering::bp_im2col, a, b)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Problems, ConvOnednn,
                         ::testing::Range(0, static_cast<int>(all_problems().size())),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return all_problems()[i.param].str() + "_" + std::to_string(i.param);
                         });

TEST(ConvOnednn, AtLeast150DistinctProblemsCoveringTheBrief) {
  const auto& v = all_problems();
  EXPECT_GE(v.size(), 150u);
  bool s3 = false, p3 = false, asym = false, one = false, stem = false, b8 = false, b1 = false;
  for (const auto& d : v) {
    s3 |= d.sh == 3;
    p3 |= d.pt == 3 || d.pl == 3;
    asym |= d.pt != d.pb || d.pl != d.pr;
    one |= d.R == 1 && d.S == 1;
    stem |= d.R == 7 && d.sh == 2;
    b8 |= d.N == 8;
    b1 |= d.N == 1;
  }
  EXPECT_TRUE(s3 && p3 && asym && one && stem && b8 && b1);
}

}  // namespace
}  // namespace st
